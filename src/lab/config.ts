// Lab configs: JSON or YAML checked against schema/lab.schema.json (ajv), defaults applied, the matrix expanded into
// cells, paths made absolute; and the default lab this machine can run when no config is given.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import type { ValidateFunction } from 'ajv';
import YAML from 'yaml';
import { GpenLabError } from '../errors.js';
import type { ModelSpec } from '../model/registry.js';
import type { Provider } from '../runtime/providers.js';
import { PROVIDERS } from '../runtime/providers.js';
import type { CellSpec, LabConfig, LabConfigInput } from './types.js';

export const SCHEMA_FILE = fileURLToPath(new URL('../../schema/lab.schema.json', import.meta.url));
export const DEFAULTS = { coldRuns: 3, warmRuns: 5, timeoutSec: 300 } as const;

let validator: ValidateFunction | null = null;

function validate(value: unknown, file: string): asserts value is LabConfigInput {
  if (!validator) validator = new Ajv({ allErrors: true, useDefaults: false }).compile(JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')) as object);
  if (validator(value)) return;
  const errs = (validator.errors ?? []).slice(0, 5).map((e) => `${e.instancePath || '(top)'} ${e.message}${e.params && 'allowedValues' in e.params ? ` (${(e.params.allowedValues as unknown[]).join(', ')})` : ''}${e.params && 'additionalProperty' in e.params ? `: ${String(e.params.additionalProperty)}` : ''}`);
  throw new GpenLabError('E_CONFIG', `${file} is not a valid lab config: ${errs.join('; ')}`, `Fix the config against ${SCHEMA_FILE} (README: "Lab config").`, { input: file });
}

export function modelSpecOf(m: LabConfig['model'], cacheDir?: string): ModelSpec {
  if (m.file) return { type: 'file', file: m.file };
  if (m.identity) return { type: 'identity', size: m.identity };
  return { type: 'synthetic', size: m.synthetic ?? 512, seed: m.seed ?? 0, ...(cacheDir ? { cacheDir } : {}) };
}

const cellId = (p: Provider, precision: string, envName?: string): string => [p, precision, envName].filter(Boolean).join('-');

/** Defaults, the matrix expanded, ids checked unique, relative paths resolved against `baseDir`. */
export function normalizeConfig(input: LabConfigInput, baseDir: string, file = '(config)'): LabConfig {
  validate(input, file);
  const abs = (p: string) => path.resolve(baseDir, p);
  const cells: CellSpec[] = [];
  for (const c of input.cells ?? []) {
    cells.push({ ...c, id: c.id ?? cellId(c.provider, c.precision ?? 'fp32', undefined), precision: c.precision ?? 'fp32', ...(c.inputs ? { inputs: c.inputs.map(abs) } : {}) });
  }
  if (input.matrix) {
    const m = input.matrix;
    for (const provider of m.provider ?? ['cpu']) {
      for (const precision of m.precision ?? ['fp32']) {
        for (const env of m.env ?? [undefined]) {
          cells.push({ id: cellId(provider, precision, env?.name), provider, precision, ...(m.session ? { session: m.session } : {}), ...(env ? { env: env.vars } : {}) });
        }
      }
    }
  }
  const seen = new Set<string>();
  for (const c of cells) {
    if (seen.has(c.id)) throw new GpenLabError('E_CONFIG', `${file} has two cells with the id "${c.id}"`, 'Give each cell a unique "id".', { input: file });
    seen.add(c.id);
  }
  if (input.reference && !seen.has(input.reference)) {
    throw new GpenLabError('E_CONFIG', `${file}: reference "${input.reference}" is not a cell (cells: ${[...seen].join(', ')})`, 'Set "reference" to one of the cell ids.', { input: file });
  }
  const model = { ...input.model } as LabConfig['model'];
  if (model.file) model.file = abs(model.file);
  return {
    ...(input.name ? { name: input.name } : {}),
    inputs: (input.inputs ?? []).map(abs),
    ...(input.gpuInputs ? { gpuInputs: input.gpuInputs.map(abs) } : {}),
    model,
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
    throw new GpenLabError('E_FILE_MISSING', `Cannot read the lab config ${file}: ${(e as Error).message}`, 'Pass an existing .json or .yaml file, or no config for the default lab.', { input: file });
  }
  let value: unknown;
  try {
    value = /\.ya?ml$/i.test(file) ? YAML.parse(text) : JSON.parse(text);
  } catch (e) {
    throw new GpenLabError('E_CONFIG', `${file} is not valid ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'}: ${(e as Error).message}`, 'Fix the syntax (a .yaml/.yml file is read as YAML, anything else as JSON).', { input: file });
  }
  return normalizeConfig(value as LabConfigInput, path.dirname(path.resolve(file)), file);
}

/** The inputs a cell restores: its own, else the GPU inputs for a GPU provider, else the lab's. */
export function inputsOf(cfg: LabConfig, c: CellSpec): string[] {
  return c.inputs ?? (c.provider !== 'cpu' && cfg.gpuInputs ? cfg.gpuInputs : cfg.inputs);
}

/**
 * The lab this machine runs without a config: every provider the binary knows (and tensorrt/cuda, whose files
 * `setup cuda` adds), fp32 and fp16, synthetic GPEN-512; CPU cells restore one face, GPU cells the whole photo.
 */
export function defaultConfig(face: string, photo: string, knownByBinary: Provider[]): LabConfig {
  const providers = PROVIDERS.filter((p) => p === 'cpu' || p === 'cuda' || p === 'tensorrt' || knownByBinary.includes(p));
  const cells: CellSpec[] = [];
  for (const provider of providers) {
    // fp16 on the CPU provider runs through casts around every node: slower than fp32 and never chosen; one cell
    // keeps it measured
    for (const precision of ['fp32', 'fp16'] as const) cells.push({ id: cellId(provider, precision), provider, precision });
  }
  return { name: 'default', inputs: [face], gpuInputs: [photo], model: { synthetic: 512, seed: 0 }, coldRuns: 3, warmRuns: 5, timeoutSec: 300, reference: 'cpu-fp32', cells };
}
