// The messages between the service's HTTP thread (engine.ts) and its engine thread (engine-worker.ts), and how a
// coded error crosses between them: as its code, message, fix and details, made a GpenLabError again on arrival.
import { GpenLabError, toGpenLabError } from '../errors.js';
import type { ErrorCode, ErrorDetails } from '../errors.js';
import type { FinishOptions, RestoreResult } from '../face/restore.js';
import type { Precision } from '../model/gpen-graph.js';
import type { ModelInfo, ModelSpec } from '../model/registry.js';
import type { RuntimeBuild } from '../runtime/builds.js';
import type { ProviderChoice, Route, RouteChoice } from '../runtime/routes.js';

/** What the engine thread is started with (workerData): everything Restorer.create and the batcher take. */
export interface EngineConfig {
  model: ModelSpec;
  provider?: ProviderChoice;
  route?: Route;
  runtime?: RuntimeBuild;
  precision?: Precision;
  maxBatch?: number;
  maxWaitMs: number;
  maxPixels?: number;
  /** Images in the pipeline at once; the other jobs wait in the engine thread for a slot. */
  pipelineSlots: number;
  cudaOptions?: Record<string, string>;
  /** The GPU of this engine (serve --devices: one engine thread a GPU). */
  deviceId?: number;
  /**
   * For tests: while hold[0] is 0, the engine thread blocks (Atomics.wait) right after acknowledging each job, as a
   * synchronous inference blocks it. A shared Int32Array; set hold[0] to 1 and notify to let the jobs go on.
   */
  hold?: Int32Array;
  /** For tests: while holdLoad[0] is 0, the engine thread blocks (Atomics.wait) before it loads the model. */
  holdLoad?: Int32Array;
}

/** A GpenLabError as it crosses the thread boundary. */
export interface WireError {
  code: ErrorCode;
  message: string;
  fix: string;
  details: ErrorDetails;
}

export type ToEngine =
  /** `body` is the upload's bytes, transferred. */
  | { type: 'job'; id: number; body: ArrayBuffer; name: string; opts: FinishOptions }
  /** The request timed out or its client went away: the job stops at its next stage. */
  | { type: 'cancel'; id: number }
  /** Finish the jobs in hand, release the session, then say 'closed'. */
  | { type: 'close' };

export type FromEngine =
  | { type: 'ready'; info: ModelInfo; choice: RouteChoice; label: string; maxBatch: number }
  | { type: 'load-failed'; error: WireError }
  /** The job has a pipeline slot: it is being decoded and restored now. */
  | { type: 'started'; id: number }
  /** `images` are the encoded outputs (result, comparison, faces), their buffers transferred. */
  | { type: 'result'; id: number; result: RestoreResult; images: [string, Uint8Array][] }
  | ({ type: 'error'; id: number } & WireError)
  | { type: 'batch'; faces: number; requests: number; ms: number }
  /** Faces waiting for a batch, each time the count changes. */
  | { type: 'waiting'; faces: number }
  | { type: 'closed' };

/** Any thrown value as a wire error: a coded error as it is (details made cloneable), anything else E_INTERNAL. */
export function toWire(thrown: unknown): WireError {
  const e = toGpenLabError(thrown);
  let details: ErrorDetails = {};
  try {
    details = JSON.parse(JSON.stringify(e.details ?? {})) as ErrorDetails;
  } catch {
    // details that do not serialise are dropped: code, message and fix are what the client sees
  }
  return { code: e.code, message: e.message, fix: e.fix, details };
}

export function fromWire(w: WireError): GpenLabError {
  return new GpenLabError(w.code, w.message, w.fix, w.details);
}
