// Lab configs: JSON or YAML checked against schema/lab.schema.json (ajv), defaults applied, the matrix expanded into
// cells, paths made absolute; and the default lab this machine can run when no config is given.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import type { ValidateFunction } from 'ajv';
import YAML from 'yaml';
import { GpenLabError, isGpenLabError } from '../errors.js';
import type { Precision } from '../model/gpen-graph.js';
import type { ModelSpec } from '../model/registry.js';
import { DEFAULT_BUILD, type RuntimeBuild } from '../runtime/builds.js';
import type { Provider } from '../runtime/providers.js';
import { PROVIDERS, PROVIDER_SPECS } from '../runtime/providers.js';
import type { Route } from '../runtime/routes.js';
import { COMBINATIONS, checkCapiProvider, combination } from '../runtime/routes.js';
import type { CellSpec, LabConfig, LabConfigInput } from './types.js';

export const SCHEMA_FILE = fileURLToPath(new URL('../../schema/lab.schema.json', import.meta.url));
export const DEFAULTS = { coldRuns: 3, warmRuns: 5, timeoutSec: 300 } as const;

let validator: ValidateFunction | null = null;

function validate(value: unknown, file: string): asserts value is LabConfigInput {
  if (!validator)
    validator = new Ajv({ allErrors: true, useDefaults: false }).compile(
      JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')) as object,
    );
  if (validator(value)) return;
  const errs = (validator.errors ?? [])
    .slice(0, 5)
    .map(
      (e) =>
        `${e.instancePath || '(top)'} ${e.message}${e.params && 'allowedValues' in e.params ? ` (${(e.params.allowedValues as unknown[]).join(', ')})` : ''}${e.params && 'additionalProperty' in e.params ? `: ${String(e.params.additionalProperty)}` : ''}`,
    );
  throw new GpenLabError(
    'E_CONFIG',
    `${file} is not a valid lab config: ${errs.join('; ')}`,
    `Fix the config against ${SCHEMA_FILE} (README: "Lab config").`,
    { input: file },
  );
}

export function modelSpecOf(m: LabConfig['model'], cacheDir?: string): ModelSpec {
  if (m.file) return { type: 'file', file: m.file };
  if (m.identity) return { type: 'identity', size: m.identity };
  return { type: 'synthetic', size: m.synthetic ?? 512, seed: m.seed ?? 0, ...(cacheDir ? { cacheDir } : {}) };
}

/** Whether the provider's fast route is onnxruntime-node's own binding, the stock route's (COMBINATIONS: cpu, webgpu, tensorrt). */
export function fastIsStock(p: Provider, precision: Precision): boolean {
  return COMBINATIONS.some(
    (x) => x.provider === p && x.route === 'fast' && x.precision === precision && x.binding === 'stock',
  );
}

/**
 * A cell's id: provider, route, precision, the matrix env's name and a runtime build other than onnxruntime-node's
 * by its ONNX Runtime part (cuda-fast-fp16, cuda-stock-fp32-cu12, cuda-fast-fp16-ort1.19); the route is left out of a
 * fast cell whose fast route is the stock binding (cpu-fp32, webgpu-fp16, cpu-fp32-ort1.19).
 */
export function cellId(
  p: Provider,
  route: Route,
  precision: Precision,
  envName?: string,
  runtime?: RuntimeBuild,
): string {
  const build = runtime && runtime !== DEFAULT_BUILD ? runtime.split('-')[0] : undefined;
  return [p, route === 'fast' && fastIsStock(p, precision) ? undefined : route, precision, envName, build]
    .filter(Boolean)
    .join('-');
}

const asConfigWords = (s: string): string => s.replace(/(?<![.\w])cudaOptions/g, 'session.cudaOptions');

/** A cell's provider, route, precision and CUDA options as runtime/routes.ts allows them, else E_CONFIG naming the cell and what is valid. */
function checkCombination(c: CellSpec, file: string): void {
  const build = c.runtime ?? DEFAULT_BUILD;
  try {
    combination(c.provider, c.route, c.precision, c.session?.cudaOptions, build);
    if (build !== DEFAULT_BUILD) checkCapiProvider(c.provider, build);
  } catch (e) {
    if (!isGpenLabError(e)) throw e;
    if (e.details.option === 'runtime') {
      throw new GpenLabError(
        'E_CONFIG',
        `${file}: cell "${c.id}" (provider ${c.provider}, route ${c.route}, runtime ${build}) is not a valid combination: ${e.message}`,
        `Change the cell's provider, route or runtime: ${e.fix}`,
        { input: file, cell: c.id },
      );
    }
    const valid = COMBINATIONS.filter((x) => x.provider === c.provider)
      .map((x) => `route ${x.route} with ${x.precision}`)
      .join(', ');
    throw new GpenLabError(
      'E_CONFIG',
      `${file}: cell "${c.id}" (provider ${c.provider}, route ${c.route}, ${c.precision}${c.session?.cudaOptions ? ', session.cudaOptions' : ''}) is not a valid combination: ${asConfigWords(e.message)}`,
      `Change the cell: provider ${c.provider} takes ${valid}; session.cudaOptions only with provider cuda on route fast (runtime/routes.ts).`,
      { input: file, cell: c.id },
    );
  }
}

/** Defaults, the matrix expanded, ids checked unique, relative paths resolved against `baseDir`. */
export function normalizeConfig(input: LabConfigInput, baseDir: string, file = '(config)'): LabConfig {
  validate(input, file);
  // paths may name variables of the lab's environment ($PEER_PTH, ${CUDA_SETS}/photo.png): unset is E_CONFIG
  const expand = (p: string): string =>
    p.replace(/\$\{(\w+)\}|\$(\w+)/g, (_m, a: string | undefined, b: string | undefined) => {
      const name = a ?? b!;
      const v = process.env[name];
      if (v === undefined || v === '')
        throw new GpenLabError(
          'E_CONFIG',
          `${file}: the path "${p}" names $${name}, which is not set`,
          `Set ${name} in the environment the lab runs in, or write the path out.`,
          { input: file, variable: name },
        );
      return v;
    });
  const abs = (p: string) => path.resolve(baseDir, expand(p));
  const cells: CellSpec[] = [];
  for (const c of input.cells ?? []) {
    if (c.command) {
      // a command cell: provider and route are labels (cuda where it uses the GPU), precision what it says it runs
      const gpu = c.gpu !== false;
      cells.push({
        ...c,
        id: c.id!,
        provider: gpu ? 'cuda' : 'cpu',
        route: 'fast',
        precision: c.precision ?? 'fp32',
        ...(c.inputs ? { inputs: c.inputs.map(abs) } : {}),
      });
      continue;
    }
    const route = c.route ?? 'fast',
      precision = c.precision ?? 'fp32';
    cells.push({
      ...c,
      id: c.id ?? cellId(c.provider!, route, precision, undefined, c.runtime),
      provider: c.provider!,
      route,
      precision,
      ...(c.inputs ? { inputs: c.inputs.map(abs) } : {}),
    });
  }
  if (input.matrix) {
    const m = input.matrix;
    for (const provider of m.provider ?? ['cpu']) {
      for (const route of m.route ?? ['fast']) {
        for (const precision of m.precision ?? ['fp32']) {
          for (const env of m.env ?? [undefined]) {
            for (const runtime of m.runtime ?? [undefined]) {
              cells.push({
                id: cellId(provider, route, precision, env?.name, runtime),
                provider,
                route,
                precision,
                ...(runtime ? { runtime } : {}),
                ...(m.session ? { session: m.session } : {}),
                ...(env ? { env: env.vars } : {}),
              });
            }
          }
        }
      }
    }
  }
  // a cell with devices: one cell a GPU, its id ending in -gpuN; gpen-lab's take the GPU as deviceId, a command as
  // CUDA_VISIBLE_DEVICES (and {gpu})
  for (let i = 0; i < cells.length; i++) {
    const c = cells[i];
    if (!c.devices) continue;
    if (c.provider !== 'cuda' && c.provider !== 'tensorrt')
      throw new GpenLabError(
        'E_CONFIG',
        `${file}: cell "${c.id}" has devices but runs on ${c.command ? 'no GPU (gpu: false)' : c.provider}`,
        'Give devices to a cuda or tensorrt cell (or a command cell on the GPU), or leave them out.',
        { input: file, cell: c.id },
      );
    const { devices, ...rest } = c;
    const per = devices.map((d): CellSpec =>
      c.command
        ? { ...rest, id: `${c.id}-gpu${d}`, env: { ...(c.env ?? {}), CUDA_VISIBLE_DEVICES: String(d) } }
        : { ...rest, id: `${c.id}-gpu${d}`, session: { ...(c.session ?? {}), deviceId: d } },
    );
    cells.splice(i, 1, ...per);
    i += per.length - 1;
  }
  const seen = new Set<string>();
  for (const c of cells) {
    if (seen.has(c.id))
      throw new GpenLabError(
        'E_CONFIG',
        `${file} has two cells with the id "${c.id}"`,
        'Give each cell a unique "id".',
        { input: file },
      );
    seen.add(c.id);
    if (!c.command) checkCombination(c, file);
  }
  if (input.reference && !seen.has(input.reference)) {
    throw new GpenLabError(
      'E_CONFIG',
      `${file}: reference "${input.reference}" is not a cell (cells: ${[...seen].join(', ')})`,
      'Set "reference" to one of the cell ids.',
      { input: file },
    );
  }
  const model = { ...input.model } as LabConfig['model'];
  if (model.file) model.file = abs(model.file);
  return {
    ...(input.name ? { name: input.name } : {}),
    inputs: (input.inputs ?? []).map(abs),
    ...(input.gpuInputs ? { gpuInputs: input.gpuInputs.map(abs) } : {}),
    model,
    ...(input.aligned ? { aligned: true } : {}),
    coldRuns: input.coldRuns ?? DEFAULTS.coldRuns,
    warmRuns: input.warmRuns ?? DEFAULTS.warmRuns,
    timeoutSec: input.timeoutSec ?? DEFAULTS.timeoutSec,
    ...(input.reference ? { reference: input.reference } : {}),
    cells,
  };
}

export function readConfig(file: string): LabConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new GpenLabError(
      'E_FILE_MISSING',
      `Cannot read the lab config ${file}: ${(e as Error).message}`,
      'Pass an existing .json or .yaml file, or no config for the default lab.',
      { input: file },
    );
  }
  let value: unknown;
  try {
    value = /\.ya?ml$/i.test(file) ? YAML.parse(text) : JSON.parse(text);
  } catch (e) {
    throw new GpenLabError(
      'E_CONFIG',
      `${file} is not valid ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'}: ${(e as Error).message}`,
      'Fix the syntax (a .yaml/.yml file is read as YAML, anything else as JSON).',
      { input: file },
    );
  }
  return normalizeConfig(value as LabConfigInput, path.dirname(path.resolve(file)), file);
}

/** The inputs a cell restores: its own, else the GPU inputs for a GPU provider, else the lab's. */
export function inputsOf(cfg: LabConfig, c: CellSpec): string[] {
  return c.inputs ?? (c.provider !== 'cpu' && cfg.gpuInputs ? cfg.gpuInputs : cfg.inputs);
}

/** What the default lab is made for: a pure description of the machine (cli/lab.ts reads it; tests pass their own). */
export interface LabMachine {
  /** The providers this onnxruntime-node binary knows (runtime/session.ts knownProviders). */
  knownByBinary: Provider[];
  /** The GPU providers whose files are installed (face/choose.ts availableNow: cuda, tensorrt). */
  installed: Provider[];
  /** Whether an NVIDIA GPU was found (doctor/gpu.ts readGpus). */
  gpu: boolean;
  /** The runtime builds with their CUDA provider installed (runtime/builds.ts installedBuilds); default none. */
  builds?: RuntimeBuild[];
}

const GPU_PROVIDERS = PROVIDERS.filter((p) => PROVIDER_SPECS[p].gpu);

/**
 * The lab this machine runs without a config, on synthetic GPEN-512 (CPU cells restore one face, GPU cells the whole
 * photo). With an NVIDIA GPU and an installed GPU provider (cuda and tensorrt: their files present; webgpu: known to
 * the binary, whether it has a hardware adapter is what its cell finds out): per installed GPU provider the fast route
 * in fp16 and fp32 and the stock route in fp32, the baseline (one cell where the fast route is the stock binding),
 * one cheap fp16 cell per GPU provider not installed (it shows the diagnosis), and cpu fp32; the reference is
 * cuda-stock-fp32 where cuda is installed, else cpu-fp32. Without: cpu fp32 (the reference) and fp16, and one fast
 * fp16 cell per GPU provider, each failing at its dependencies or inference with the doctor's diagnosis. Each
 * installed runtime build other than onnxruntime-node's adds a CUDA fast fp16 cell of its own (cuda-fast-fp16-ort1.19).
 */
export function defaultConfig(face: string, photo: string, m: LabMachine): LabConfig {
  const cell = (provider: Provider, route: Route, precision: Precision, runtime?: RuntimeBuild): CellSpec => ({
    id: cellId(provider, route, precision, undefined, runtime),
    provider,
    route,
    precision,
    ...(runtime ? { runtime } : {}),
  });
  const installed = GPU_PROVIDERS.filter((p) =>
    p === 'webgpu' ? m.knownByBinary.includes(p) : m.installed.includes(p),
  );
  const offered = GPU_PROVIDERS.filter((p) => p !== 'webgpu' || m.knownByBinary.includes(p));
  const cells: CellSpec[] = [cell('cpu', 'fast', 'fp32')];
  let reference = 'cpu-fp32';
  if (m.gpu && installed.length > 0) {
    for (const p of offered) {
      if (!installed.includes(p)) {
        cells.push(cell(p, 'fast', 'fp16'));
        continue;
      }
      cells.push(cell(p, 'fast', 'fp16'), cell(p, 'fast', 'fp32'));
      if (!fastIsStock(p, 'fp32')) cells.push(cell(p, 'stock', 'fp32'));
    }
    if (installed.includes('cuda')) reference = cellId('cuda', 'stock', 'fp32');
  } else {
    // fp16 on the CPU provider runs through casts around every node: slower than fp32 and never chosen; one cell
    // keeps it measured
    cells.push(cell('cpu', 'fast', 'fp16'), ...offered.map((p) => cell(p, 'fast', 'fp16')));
  }
  // each other installed build on CUDA's fast route beside onnxruntime-node's: which of them this driver runs
  for (const b of m.builds ?? []) if (b !== DEFAULT_BUILD) cells.push(cell('cuda', 'fast', 'fp16', b));
  return {
    name: 'default',
    inputs: [face],
    gpuInputs: [photo],
    model: { synthetic: 512, seed: 0 },
    coldRuns: DEFAULTS.coldRuns,
    warmRuns: DEFAULTS.warmRuns,
    timeoutSec: DEFAULTS.timeoutSec,
    reference,
    cells,
  };
}
