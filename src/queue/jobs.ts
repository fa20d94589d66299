// What travels on a queue: a restore job (one input on storage every worker sees, where its outputs go, the model and
// options it is for) or a lab cell, their ids, the Redis keys beside BullMQ's, and failures as coded errors.
import { createHash } from 'node:crypto';
import { UnrecoverableError } from 'bullmq';
import { FAILURE_KINDS, GpenLabError, isGpenLabError, type ErrorCode } from '../errors.js';
import { sha256File } from '../io/hash.js';
import type { OutputExt } from '../io/image.js';
import type { OutputKind } from '../face/restore.js';
import type { ModelSpec } from '../model/registry.js';
import type { CellSpec, LabConfig } from '../lab/types.js';

/** BullMQ's key prefix: its keys of a queue start with gpen-lab:QUEUE:, ours (keys) with gpen-lab-queue:QUEUE: */
export const PREFIX = 'gpen-lab';

/** The options a restore job is for: part of its id. */
export interface JobOptions {
  alpha: number;
  aligned: boolean;
  outputs: OutputKind[];
  ext: OutputExt | null;
  overwrite: boolean;
}

export interface RestoreJobData {
  kind: 'restore';
  input: string;
  inputSha256: string;
  outDir: string;
  /** Its outputs' NAME (NAME_GPEN.ext), unique in the submission. */
  name: string;
  /** The NAME_GPEN file it writes, when `outputs` has gpen: what completion is checked against. */
  gpen: string | null;
  /** The model's id (modelId): a worker serving another model refuses the job. */
  model: string;
  options: JobOptions;
  submission: string;
}

export interface CellJobData {
  kind: 'cell';
  cell: CellSpec;
  /** The lab's config less its cells; its inputs are this cell's and travel as bytes. */
  config: Omit<LabConfig, 'cells'>;
  inputs: { name: string; base64: string }[];
  /** A model file's content hash: the worker uses a file of that hash (the path given, or its own --model). */
  modelSha256: string | null;
}

export type JobData = RestoreJobData | CellJobData;

/** What a finished cell job returns: the cell's result and the files of its folder. */
export interface CellJobResult {
  /** The cell's result as JSON, its paths the worker's (outRoot, inputs) until the lab makes them its own. */
  result: string;
  outRoot: string;
  inputs: string[];
  host: string;
  /** The cell's folder there, relative to it. */
  files: { path: string; base64: string }[];
  worker: string;
}

export interface RestoreJobResult {
  worker: string;
  output: string | null;
  faces: number;
  ms: number;
  /** The output was already in place from an earlier run of this job (its worker stopped before recording it). */
  already: boolean;
}

/** Redis keys beside BullMQ's, per queue: under a prefix of their own, never one of BullMQ's names. */
const OWN = `${PREFIX}-queue`;
export const keys = (queue: string) => ({
  /** jobId -> {output, worker, at}: completed restores; outlives BullMQ's trimming of completed jobs. */
  done: `${OWN}:${queue}:done`,
  /** jobId -> code: restores failed for good (counted once; taken back when retried). */
  failed: `${OWN}:${queue}:failed`,
  /** jobId -> worker: a restore under way; an output found later with a claim is that job's own. */
  claims: `${OWN}:${queue}:claims`,
  /** workerId -> what it is (model, provider, host) and when it was last seen. */
  workers: `${OWN}:${queue}:workers`,
  workerStats: (id: string) => `${OWN}:${queue}:worker:${id}`,
  submission: (id: string) => `${OWN}:${queue}:submission:${id}`,
  submissions: `${OWN}:${queue}:submissions`,
});

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/** A restore job's id: the same input bytes, model, options and output place give the same id. */
export function restoreJobId(d: Pick<RestoreJobData, 'inputSha256' | 'model' | 'options' | 'outDir' | 'name'>): string {
  return `r-${sha(JSON.stringify([d.inputSha256, d.model, d.options, d.outDir, d.name])).slice(0, 40)}`;
}

/** What a model is for a queue: a file by its content hash (and key), seeded weights by size and seed. */
export async function modelId(spec: ModelSpec): Promise<string> {
  if (spec.type === 'file')
    return `sha256:${(await sha256File(spec.file)).slice(0, 32)}${spec.key ? `#${spec.key}` : ''}`;
  if (spec.type === 'synthetic') return `synthetic-${spec.size}-seed${spec.seed ?? 0}`;
  return `identity-${spec.size}`;
}

/** Whether a failure of this code may pass on a second try (the runtime or the environment), or never (the input). */
export function retryable(code: ErrorCode): boolean {
  return FAILURE_KINDS[code] === 'runtime';
}

/** The error a processor throws for a coded failure: retried where it may pass, else failed at once. */
export function jobError(e: unknown): Error {
  const g = isGpenLabError(e) ? e : null;
  const body = JSON.stringify(
    g ? g.toJSON() : { code: 'E_INTERNAL', message: e instanceof Error ? e.message : String(e), fix: '' },
  );
  return g && retryable(g.code) ? new Error(body) : new UnrecoverableError(body);
}

export interface JobFailure {
  code: ErrorCode | 'unknown';
  message: string;
  fix: string;
}

/** A failed job's reason read back as the coded error it was (BullMQ's own, a stall, reads as unknown). */
export function failureOf(reason: string | undefined): JobFailure {
  try {
    const j = JSON.parse(reason ?? '') as JobFailure;
    if (typeof j.code === 'string' && typeof j.message === 'string')
      return { code: j.code, message: j.message, fix: j.fix ?? '' };
  } catch {
    // not one of ours
  }
  return { code: 'unknown', message: reason ?? 'no reason recorded', fix: '' };
}

/** The coded error a worker refuses a job's model with. */
export function wrongModel(jobModel: string, mine: string, id: string): GpenLabError {
  return new GpenLabError(
    'E_CONFIG',
    `job ${id} is for model ${jobModel}; this worker serves ${mine}`,
    "Submit with the weights the queue's workers load (or no --model: submit takes the workers' own), or start workers with that model on another queue.",
    { input: id },
  );
}
