// The session a restore runs on, chosen the way a user who names nothing expects: `auto` tries CUDA, then a hardware
// WebGPU adapter, then the CPU, and the session that will run is the probe (no extra session is made to test a
// provider). On each candidate the route's binding, precision, CUDA option set and batch come from runtime/routes.ts;
// the runtime build, one for every candidate (a process runs one), from runtime/runtime-choice.ts.
// A candidate that fails is recorded with its reason and the next one is tried; an explicit provider fails as it is.
import path from 'node:path';
import { GpenLabError, errorMessage, isGpenLabError } from '../errors.js';
import { cacheDir } from '../io/cache.js';
import type { Precision } from '../model/gpen-graph.js';
import type { GraphForm, ModelSpec, PreparedModel } from '../model/registry.js';
import { formForCuda, prepareModel, sniffFormat } from '../model/registry.js';
import { defaultArch, largestActivation, maxCudaBatch } from '../model/arch.js';
import { DEFAULT_BUILD, buildSpec, providerDir, type RuntimeBuild } from '../runtime/builds.js';
import { openSession } from '../runtime/capi-model.js';
import type { Provider } from '../runtime/providers.js';
import { missingProviderFiles, nvidiaDeviceVisible } from '../runtime/providers.js';
import { chooseRuntime, type RuntimeProbe } from '../runtime/runtime-choice.js';
import type { ProviderChoice, Route, RouteChoice, Skipped, Workload } from '../runtime/routes.js';
import {
  AUTO_ORDER,
  checkCapiProvider,
  combination,
  cudaSetFor,
  defaultBatch,
  defaultPrecision,
  detectorPlacement,
  fastCudaOptions,
} from '../runtime/routes.js';
import type { GpenRunner, SessionConfig } from '../runtime/session.js';

/** Whether a provider may be tried: null when it may, else why not (one sentence with the fix). */
export type Availability = Partial<Record<Provider, () => string | null | Promise<string | null>>>;

export interface ChooseOptions {
  model: ModelSpec;
  provider?: ProviderChoice;
  route?: Route;
  precision?: Precision;
  workload?: Workload;
  batch?: number;
  detectorProvider?: Provider;
  session?: Partial<Omit<SessionConfig, 'provider' | 'label'>>;
  /** The model already prepared (for the first candidate; another precision or form is prepared anew). */
  prepared?: PreparedModel;
  /** How a model is prepared (the service does it on a worker thread); default prepareModel. */
  prepare?: (spec: ModelSpec, precision: Precision | undefined, form: GraphForm) => Promise<PreparedModel>;
  /** A session made elsewhere for `prepared`'s model: no choice is made. */
  runner?: Promise<GpenRunner>;
  /** Availability checks for `auto` (tests fake them); missing entries use availableNow's. */
  available?: Availability;
  /** The runtime build (default: on a GPU provider the installed one that fits the driver; runtime-choice.ts). */
  runtime?: RuntimeBuild;
  /** What the runtime's choice reads of the machine (tests fake it). */
  runtimeProbe?: RuntimeProbe;
}

export interface Plan {
  choice: RouteChoice;
  prepared: PreparedModel;
  runner: Promise<GpenRunner>;
}

/** The machine's own answers: CUDA's provider files installed, a hardware WebGPU adapter found, the CPU always. */
export const availableNow: Required<Availability> = {
  cpu: () => null,
  cuda: () => notInstalled('cuda'),
  tensorrt: () => notInstalled('tensorrt'),
  webgpu: async () => {
    const { probeWebgpuAdapter } = await import('../runtime/webgpu-adapter.js');
    const probe = probeWebgpuAdapter();
    return probe.ok ? null : `no hardware adapter (${probe.reason})`;
  },
};

/**
 * Why a provider whose files are missing is skipped: without an NVIDIA device node the GPU is the cause (installing the
 * provider cannot help), else the missing files and the command that installs them. Read only when files are missing.
 */
function notInstalled(p: 'cuda' | 'tensorrt', build: RuntimeBuild = DEFAULT_BUILD): string | null {
  const dir = providerDir(build);
  const missing = missingProviderFiles(p, dir);
  if (missing.length === 0) return null;
  if (!nvidiaDeviceVisible())
    return 'no NVIDIA GPU or driver is visible (no /dev/nvidia* device): nothing to install here';
  const setup = build === DEFAULT_BUILD ? 'gpen-lab setup cuda' : `gpen-lab setup cuda --runtime ${build}`;
  return `its provider is not installed (${missing.join(', ')} missing from ${dir}): run \`${setup}\``;
}

function checkBatch(provider: Provider, batch: number, prepared: PreparedModel): void {
  if (provider !== 'cuda' && provider !== 'tensorrt') return;
  const i = prepared.info;
  const arch = defaultArch(i.size, {
    ...(i.channelMultiplier !== null ? { channelMultiplier: i.channelMultiplier } : {}),
    ...(i.narrow !== null ? { narrow: i.narrow } : {}),
  });
  const most = maxCudaBatch(arch);
  if (batch > most) {
    throw new GpenLabError(
      'E_ARGUMENT',
      `batch ${batch} with GPEN-${i.size} on ${provider} makes activations of ${batch} x ${largestActivation(arch)} elements, beyond the 2^31 that ONNX Runtime's CUDA kernels index (its Concat fails with cudaErrorInvalidValue)`,
      `Pass batch ${most} or less: per face, 32 faces at a time are as fast as any more.`,
      { input: 'batch', option: 'batch', batch, max: most },
    );
  }
}

/**
 * Chooses and opens the session. `first` is the first candidate tried, its model prepared and its session on the way
 * (a cold start goes on with decoding and detection meanwhile); `settled` is the plan whose session was created,
 * after any candidates that failed (their reasons in choice.skipped).
 */
export async function chooseSession(o: ChooseOptions): Promise<{ first: Plan; settled: Promise<Plan> }> {
  const asked = { provider: o.provider ?? 'auto', route: o.route ?? 'fast', precision: o.precision ?? null };
  // one build for every candidate: a process runs one (runtime/process-build.ts)
  const runtime = chooseRuntime({ runtime: o.runtime, provider: asked.provider, route: asked.route }, o.runtimeProbe);
  const build = runtime.build;
  const onOwn = build === DEFAULT_BUILD;
  if (!onOwn && o.detectorProvider !== undefined && o.detectorProvider !== 'cpu' && o.detectorProvider !== 'cuda') {
    throw new GpenLabError(
      'E_ARGUMENT',
      `detectorProvider ${o.detectorProvider} with the runtime ${build}: the detector runs through its C API, on cpu or cuda`,
      `Pass detectorProvider cpu or cuda, or leave it out.`,
      { input: 'detectorProvider', option: 'detectorProvider', received: o.detectorProvider },
    );
  }
  const workload = o.workload ?? 'single';
  const userOptions =
    o.session?.cudaOptions && Object.keys(o.session.cudaOptions).length > 0 ? o.session.cudaOptions : undefined;
  // with CUDA options, auto can only mean CUDA (they would be dropped elsewhere)
  const candidates: Provider[] =
    asked.provider === 'auto' ? (userOptions ? ['cuda'] : [...AUTO_ORDER]) : [asked.provider];
  const builtHere = o.model.type !== 'file' || (await sniffFormat(o.model.file)) === 'pth';
  const prepare = o.prepare ?? prepareModel;
  const skipped: Skipped[] = [];
  let usedPrepared = false;
  /** Why auto may not try a provider (null: it may): the build's providers first, then the machine's answer. */
  const unavailable = async (p: Provider): Promise<string | null> => {
    if (asked.provider !== 'auto') return null;
    if (!onOwn && !buildSpec(build).providers.includes(p))
      return `the runtime ${build} has no ${p} provider (it is onnxruntime-node ${buildSpec(DEFAULT_BUILD).ortVersion}'s)`;
    const check =
      o.available?.[p] ?? (p === 'cuda' || p === 'tensorrt' ? () => notInstalled(p, build) : availableNow[p]);
    return check();
  };

  const attempt = async (provider: Provider): Promise<Plan> => {
    // an ONNX file runs in its own precision; a model built here in the one asked for, else the provider's default
    const precision = o.precision ?? (builtHere ? defaultPrecision(provider) : undefined);
    const route = asked.route;
    const { binding } = combination(provider, route, precision ?? 'fp32', userOptions, build);
    if (!onOwn) checkCapiProvider(provider, build);
    // CUDA's option sets on the C API route; another build on the CPU runs there with none
    const capiCuda = binding === 'capi' && provider === 'cuda';
    const options = capiCuda ? { ...(userOptions ?? fastCudaOptions(workload, builtHere, build)) } : null;
    const form = formForCuda(options ?? undefined);
    const fits = o.prepared && !usedPrepared && (precision === undefined || o.prepared.info.precision === precision);
    // synthetic weights on the C API route are built once into the cache: its graph cache and early session need a file
    const spec: ModelSpec =
      binding === 'capi' && o.model.type === 'synthetic' && !o.model.cacheDir
        ? { ...o.model, cacheDir: path.join(cacheDir(), 'synthetic') }
        : o.model;
    const prepared = fits ? o.prepared! : await prepare(spec, precision, form);
    usedPrepared = true;
    let note = '';
    if (options?.graph_cache && typeof prepared.model !== 'string') {
      delete options.graph_cache;
      note = '; graph_cache left out: the model was made in memory';
    }
    const batch = o.batch ?? defaultBatch(provider, binding, workload);
    checkBatch(provider, batch, prepared);
    const choice: RouteChoice = {
      asked,
      provider,
      route,
      binding,
      precision: prepared.info.precision,
      workload,
      set: capiCuda && !userOptions ? cudaSetFor(workload) : null,
      options,
      batch,
      // on another build the detector runs through the same library's C API, whatever its provider
      detector: o.detectorProvider
        ? { provider: o.detectorProvider, capi: !onOwn || (o.detectorProvider === 'cuda' && binding === 'capi') }
        : onOwn
          ? detectorPlacement(provider, binding, workload)
          : { provider: detectorPlacement(provider, binding, workload).provider, capi: true },
      skipped,
      note:
        combination(provider, route, prepared.info.precision === 'fp16' ? 'fp16' : 'fp32', undefined, build).note +
        note,
      runtime,
    };
    const runner =
      o.runner ??
      openSession(prepared.model, {
        provider,
        label: prepared.label,
        allowSpinning: false,
        ...o.session,
        ...(options ? { cudaOptions: options } : {}),
        runtime: build,
      });
    return { choice, prepared, runner };
  };

  /** The plan of candidate i or a later one; a failure of a provider (not of the model) moves on under auto. */
  const from = async (i: number, planned?: Plan): Promise<Plan> => {
    for (let k = i; k < candidates.length; k++) {
      const p = candidates[k];
      let plan: Plan | undefined = k === i ? planned : undefined;
      if (!plan) {
        const why = await unavailable(p);
        if (why) {
          skipped.push({ provider: p, reason: why });
          continue;
        }
        plan = await attempt(p);
      }
      try {
        await plan.runner;
        return plan;
      } catch (e) {
        if (asked.provider !== 'auto' || k === candidates.length - 1 || !isProviderFailure(e)) throw e;
        skipped.push({ provider: p, reason: errorMessage(e) });
      }
    }
    throw new GpenLabError(
      'E_PROVIDER_UNAVAILABLE',
      `No execution provider could run ${o.model.type === 'file' ? o.model.file : 'the model'}: ${skipped.map((s) => `${s.provider}: ${s.reason}`).join('; ')}`,
      'Run `gpen-lab doctor` for the cause of each.',
      { skipped },
    );
  };

  // the first candidate that may be tried, prepared now (a model that cannot be prepared fails here, on any provider)
  for (let i = 0; i < candidates.length; i++) {
    const p = candidates[i];
    const why = await unavailable(p);
    if (why) {
      skipped.push({ provider: p, reason: why });
      continue;
    }
    const first = await attempt(p);
    const settled = from(i, first);
    settled.catch(() => undefined); // awaited by the Restorer; a failure is reported there
    return { first, settled };
  }
  throw new GpenLabError(
    'E_PROVIDER_UNAVAILABLE',
    `No execution provider may be tried here: ${skipped.map((s) => `${s.provider}: ${s.reason}`).join('; ')}`,
    'Run `gpen-lab doctor` for the cause of each.',
    { skipped },
  );
}

/** A session that failed because of its provider (libraries, device, driver), not because of the model or the options. */
function isProviderFailure(e: unknown): boolean {
  if (!isGpenLabError(e)) return true;
  return e.code === 'E_PROVIDER_UNAVAILABLE' || e.code === 'E_SESSION' || e.code === 'E_INFERENCE';
}
