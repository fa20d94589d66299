// What a `restore` command line will ask of CUDA, read from argv before the command line's modules load (warm-start.ts):
// whether to warm CUDA up, and the C API session restore will create (model file, options), so it can start now. It
// must ask for exactly what Restorer.create will ask (face/choose.ts), or the early session is not taken.
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { catalogEntry, modelsDir } from '../model/catalog.js';
import { findConverted, formForCuda } from '../model/converted.js';
import { DEFAULT_BUILD, RUNTIME_BUILDS, providerDir, type RuntimeBuild } from '../runtime/builds.js';
import { missingProviderFiles } from '../runtime/providers.js';
import type { Workload } from '../runtime/routes.js';
import { ROUTES, defaultPrecision, fastCudaOptions } from '../runtime/routes.js';
import { chooseRuntime, machineProbe, type RuntimeProbe } from '../runtime/runtime-choice.js';

/** restore's options that take a value (the rest are switches); a test checks it against the command's definition. */
export const RESTORE_VALUE_FLAGS = [
  '-o',
  '--out',
  '--model',
  '--synthetic',
  '--seed',
  '--key',
  '--provider',
  '--route',
  '--runtime',
  '--precision',
  '--alpha',
  '--outputs',
  '--ext',
  '--batch',
  '--max-pixels',
  '--detector-provider',
  '--cuda-options',
  '--face-threads',
] as const;

export interface RestoreArgv {
  inputs: string[];
  flags: Map<string, string | true>;
}

/** The command word and, for restore, its inputs and flags (`--name VALUE` and `--name=VALUE`). */
export function readRestoreArgv(argv: readonly string[]): RestoreArgv | null {
  const args = argv.slice(2);
  const flags = new Map<string, string | true>();
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a.startsWith('-')) {
      const eq = a.indexOf('=');
      const name = eq > 0 ? a.slice(0, eq) : a;
      if (eq > 0) flags.set(name, a.slice(eq + 1));
      else if ((RESTORE_VALUE_FLAGS as readonly string[]).includes(name) && i + 1 < args.length)
        flags.set(name, args[++i]);
      else flags.set(name, true);
    } else {
      positional.push(a);
    }
  }
  if (positional[0] !== 'restore') return null;
  return { inputs: positional.slice(1), flags };
}

/** One image file is a cold start; several inputs or a folder take the set fastest per image (cli/restore.ts says the same). */
export function workloadOf(inputs: string[]): Workload {
  if (inputs.length !== 1) return 'batch';
  try {
    return statSync(inputs[0]).isDirectory() ? 'batch' : 'single';
  } catch {
    return 'single';
  }
}

/** A catalog name (`--model GPEN-BFR-512`) as the file `models get` fetched (model/fetched.ts locateModel, without its checks). */
export function fetchedFile(model: string): string {
  if (existsSync(model) || model.includes('/')) return model;
  const entry = catalogEntry(model);
  const file = entry ? path.join(modelsDir(), entry.file) : null;
  return file && existsSync(file) ? file : model;
}

/** Splits `k=v,k=v` loosely (restore's own parsing reports malformed options). */
function looseOptions(s: string): Record<string, string> {
  return Object.fromEntries(
    s
      .split(',')
      .map((p) => p.trim().split('='))
      .filter((kv) => kv.length === 2 && kv[0] && kv[1])
      .map(([k, v]) => [k, v]),
  );
}

export interface EarlyPlan {
  /** The runtime build restore will run (runtime-choice.ts, as face/choose.ts chooses it): the CUDA it warms up. */
  build: RuntimeBuild;
  /** The C API session to start now: the ONNX file, its label (the --model argument), and the options as restore will pass them. */
  session: { model: string; label: string; cudaOptions: Record<string, string>; userOptions: string | null } | null;
}

/**
 * Whether a restore will run on CUDA (asked for, or auto with CUDA's provider installed) and so warm it up now; and the
 * early session where restore's model is a file the session can load at once (an .onnx, or a .pth converted by an
 * earlier run). Both for the runtime build restore will choose (--runtime, else the one that fits the driver); a
 * command line restore will refuse starts neither. GPEN_LAB_CUDA_WARMUP=0 turns both off.
 */
export function earlyPlan(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  cudaInstalled = (b: RuntimeBuild = DEFAULT_BUILD) => missingProviderFiles('cuda', providerDir(b)).length === 0,
  probe: RuntimeProbe = machineProbe,
): EarlyPlan | null {
  if (env.GPEN_LAB_CUDA_WARMUP === '0') return null;
  const r = readRestoreArgv(argv);
  if (!r) return null;
  const get = (name: string): string | undefined => {
    const v = r.flags.get(name);
    return typeof v === 'string' ? v : undefined;
  };
  const provider = get('--provider') ?? 'auto';
  if (provider !== 'cuda' && provider !== 'auto') return null;
  const route = get('--route') ?? 'fast';
  const runtime = get('--runtime');
  if (!(ROUTES as readonly string[]).includes(route)) return null;
  if (runtime !== undefined && !(RUNTIME_BUILDS as readonly string[]).includes(runtime)) return null;
  let build: RuntimeBuild;
  try {
    build = chooseRuntime(
      { runtime: runtime as RuntimeBuild | undefined, provider, route: route as (typeof ROUTES)[number] },
      probe,
    ).build;
  } catch {
    return null; // restore says why
  }
  if (provider === 'auto' && !cudaInstalled(build)) return null;
  const user = get('--cuda-options');
  const model = get('--model');
  if (route !== 'fast' || !model || r.flags.has('--help') || r.flags.has('-h')) return { build, session: null };
  const workload = workloadOf(r.inputs);
  const file = fetchedFile(model);
  if (file !== model)
    return earlyPlan(
      [
        ...argv.slice(0, 2),
        ...argv.slice(2).map((a) => (a === model ? file : a === `--model=${model}` ? `--model=${file}` : a)),
      ],
      env,
      cudaInstalled,
      probe,
    );
  if (/\.onnx$/i.test(model)) {
    return {
      build,
      session: {
        model,
        label: model,
        cudaOptions: user !== undefined ? looseOptions(user) : fastCudaOptions(workload, false),
        userOptions: user ?? null,
      },
    };
  }
  if (!/\.(pth|pt|ckpt)$/i.test(model)) return { build, session: null };
  const cudaOptions = user !== undefined ? looseOptions(user) : fastCudaOptions(workload, true);
  const form = formForCuda(cudaOptions);
  const asked = get('--precision');
  const precision = asked === 'fp32' || asked === 'fp16' ? asked : defaultPrecision('cuda');
  const key = get('--key');
  const converted = findConverted(model, {
    ...(key !== undefined ? { key } : {}),
    precision,
    nhwc: form.nhwc === true,
    fusedAct: form.fusedAct === true,
  });
  return {
    build,
    session: converted ? { model: converted, label: model, cudaOptions, userOptions: user ?? null } : null,
  };
}
