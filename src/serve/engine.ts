// The HTTP thread's side of the engine thread (engine-worker.ts): starts it, sends it jobs (the upload's bytes
// transferred), turns its replies back into results or GpenLabErrors, forwards cancellations, and keeps what the
// HTTP thread must know without asking it (ready or why not, faces waiting for a batch). A thread that dies fails
// its jobs and every later one with E_NOT_READY; it never takes the HTTP thread down with it.
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { GpenLabError, errorMessage } from '../errors.js';
import type { FinishOptions, RestoreResult } from '../face/restore.js';
import type { ModelInfo } from '../model/registry.js';
import type { RouteChoice } from '../runtime/routes.js';
import type { EngineConfig, FromEngine, ToEngine } from './protocol.js';
import { fromWire } from './protocol.js';

export interface EngineReady {
  info: ModelInfo;
  choice: RouteChoice;
  label: string;
  maxBatch: number;
}

export interface EngineOutput {
  result: RestoreResult;
  images: [string, Buffer][];
}

/** 'loading' until the warm-up is done; 'failed': the model did not load; 'crashed': the thread died. */
export type EngineState = 'loading' | 'ready' | 'failed' | 'crashed' | 'closed';

interface EngineEvents {
  /** The engine thread took job `id` into its pipeline. */
  started: [id: number];
  /** A cancellation of job `id` was sent to the engine thread. */
  cancel: [id: number];
  /** Job `id` is over in the engine thread: its result (null) or the code of its error. */
  settled: [id: number, code: string | null];
  batch: [faces: number, requests: number, ms: number];
}

interface Pending {
  resolve: (o: EngineOutput) => void;
  reject: (e: unknown) => void;
  /** Set when the request timed out or its client went away: the error the job then ends with. */
  cancelled: GpenLabError | null;
}

/** The worker script beside this module: built, the .js; from the sources (tests, tsx), tsx registered inside first. */
function startWorker(cfg: EngineConfig): Worker {
  const js = fileURLToPath(new URL('./engine-worker.js', import.meta.url));
  const file = existsSync(js) ? js : fileURLToPath(new URL('./engine-worker.ts', import.meta.url));
  return file.endsWith('.js')
    ? new Worker(file, { workerData: cfg })
    : new Worker(
        new URL(
          `data:text/javascript,${encodeURIComponent(`import { register } from ${JSON.stringify(import.meta.resolve('tsx/esm/api'))}; register(); await import(${JSON.stringify(pathToFileURL(file).href)});`)}`,
        ),
        { workerData: cfg },
      );
}

export class Engine extends EventEmitter<EngineEvents> {
  readonly worker: Worker;
  /** Resolves once the model is loaded and warmed up; rejects with the load's coded error, or E_NOT_READY if the thread died first. */
  readonly ready: Promise<EngineReady>;
  state: EngineState = 'loading';
  /** What ready resolved with. */
  loaded: EngineReady | null = null;
  /** Why the engine is not ready: the model's load error ('failed') or the thread's death ('crashed'). */
  failure: GpenLabError | null = null;
  /** Faces waiting for a batch in the engine thread, as it last said. */
  waitingFaces = 0;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closing: Promise<void> | null = null;
  private settleReady!: { resolve: (r: EngineReady) => void; reject: (e: unknown) => void };
  private onClosed: (() => void) | null = null;

  constructor(
    cfg: EngineConfig,
    private readonly onCrash: (e: GpenLabError) => void = () => undefined,
  ) {
    super();
    this.ready = new Promise((resolve, reject) => {
      this.settleReady = { resolve, reject };
    });
    this.ready.catch(() => undefined);
    this.worker = startWorker(cfg);
    this.worker.on('message', (m: FromEngine) => this.receive(m));
    this.worker.on('error', (e) => this.crash(`it threw ${errorMessage(e)}`));
    this.worker.on('exit', (code) => {
      if (!this.closing) this.crash(`it exited with code ${code}`);
      // jobs still in hand at the end of a shutdown (their requests timed out) have nobody waiting on their answer
      for (const p of this.pending.values())
        p.reject(
          new GpenLabError('E_NOT_READY', 'The service stopped', 'Retry on another instance or once it is back.'),
        );
      this.pending.clear();
    });
  }

  private receive(m: FromEngine): void {
    if (m.type === 'ready') {
      const { type: _type, ...r } = m;
      this.loaded = r;
      this.state = 'ready';
      this.settleReady.resolve(r);
    } else if (m.type === 'load-failed') {
      this.failure = fromWire(m.error);
      this.state = 'failed';
      this.settleReady.reject(this.failure);
    } else if (m.type === 'started') {
      this.emit('started', m.id);
    } else if (m.type === 'result' || m.type === 'error') {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      this.emit('settled', m.id, m.type === 'error' ? m.code : null);
      if (!p) return;
      if (m.type === 'result')
        p.resolve({
          result: m.result,
          images: m.images.map(([f, u]) => [f, Buffer.from(u.buffer, u.byteOffset, u.byteLength)]),
        });
      else p.reject(p.cancelled ?? fromWire(m));
    } else if (m.type === 'batch') {
      this.emit('batch', m.faces, m.requests, m.ms);
    } else if (m.type === 'waiting') {
      this.waitingFaces = m.faces;
    } else if (m.type === 'closed') {
      this.onClosed?.();
    }
  }

  /** The thread ended outside close() (an uncaught error, process.exit in it, a termination): nothing more runs there. */
  private crash(why: string): void {
    if (this.state === 'crashed' || this.state === 'closed') return;
    const wasLoading = this.state === 'loading';
    this.state = 'crashed';
    this.failure = new GpenLabError(
      'E_NOT_READY',
      `The restoration engine stopped: ${why}`,
      'Restart the service; its log says why the engine thread stopped.',
      { input: 'engine' },
    );
    this.waitingFaces = 0;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
    if (wasLoading) this.settleReady.reject(this.failure);
    this.onCrash(this.failure);
  }

  /**
   * Sends one upload to the engine thread. `body` is transferred (a view of a larger buffer is copied first) and
   * must not be used after. The promise settles when the engine thread is done with the job, whatever happened to
   * its request meanwhile.
   */
  run(body: Buffer, name: string, opts: FinishOptions): { id: number; output: Promise<EngineOutput> } {
    const id = this.nextId++;
    if (this.state !== 'ready')
      return {
        id,
        output: Promise.reject(
          this.failure ??
            new GpenLabError(
              'E_NOT_READY',
              'The model is still loading',
              'Retry after the time in Retry-After; GET /readyz says when it is ready.',
            ),
        ),
      };
    const whole =
      body.buffer instanceof ArrayBuffer && body.byteOffset === 0 && body.byteLength === body.buffer.byteLength;
    const bytes = whole ? (body.buffer as ArrayBuffer) : new Uint8Array(body).buffer;
    const output = new Promise<EngineOutput>((resolve, reject) =>
      this.pending.set(id, { resolve, reject, cancelled: null }),
    );
    this.send({ type: 'job', id, body: bytes, name, opts }, [bytes]);
    return { id, output };
  }

  /** Stops job `id` at its next stage; the job then ends with `reason` (unless it was already past its last stage). */
  cancel(id: number, reason: GpenLabError): void {
    const p = this.pending.get(id);
    if (!p || p.cancelled) return;
    p.cancelled = reason;
    this.send({ type: 'cancel', id });
    this.emit('cancel', id);
  }

  private send(m: ToEngine, transfer: ArrayBuffer[] = []): void {
    if (this.state === 'crashed' || this.state === 'closed') return;
    this.worker.postMessage(m, transfer);
  }

  /** Lets the engine thread finish the jobs it has, release the session, and end. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.state !== 'crashed') {
        const exited = new Promise<void>((r) => this.worker.once('exit', () => r()));
        const closed = new Promise<void>((r) => {
          this.onClosed = r;
        });
        this.worker.postMessage({ type: 'close' } satisfies ToEngine);
        await Promise.race([closed, exited]);
      }
      await this.worker.terminate();
      this.state = 'closed';
    })();
    return this.closing;
  }
}
