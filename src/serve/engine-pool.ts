// serve --devices: one engine thread a GPU (each its own session on its deviceId, as the C API route's per-thread
// state requires), the requests fed to whichever GPU has the fewest in flight. One engine is the pool of one.
import { EventEmitter } from 'node:events';
import { GpenLabError } from '../errors.js';
import type { FinishOptions } from '../face/restore.js';
import type { Engine, EngineOutput, EngineReady, EngineState } from './engine.js';

interface PoolEvents {
  /** A batched inference on GPU `device` (null: the default device). */
  batch: [faces: number, requests: number, ms: number, device: number | null];
}

/** A GPU as the metrics label it: its index, or "default" for the one engine without --devices. */
export const deviceLabel = (device: number | null): string => (device === null ? 'default' : String(device));

export interface DeviceFigures {
  device: number | null;
  state: EngineState;
  inFlight: number;
  done: number;
}

export class EnginePool extends EventEmitter<PoolEvents> {
  /** Resolves once every engine is loaded; rejects with the first one's load error. */
  readonly ready: Promise<EngineReady>;
  private readonly inFlight: number[];
  private readonly done: number[];
  private nextId = 1;
  private readonly jobs = new Map<number, { k: number; id: number }>();

  constructor(
    readonly engines: Engine[],
    readonly devices: (number | null)[],
  ) {
    super();
    this.inFlight = engines.map(() => 0);
    this.done = engines.map(() => 0);
    engines.forEach((e, k) => e.on('batch', (f, r, ms) => this.emit('batch', f, r, ms, devices[k])));
    this.ready = Promise.all(engines.map((e) => e.ready)).then((r) => r[0]);
  }

  /** Ready while any engine is (a GPU whose thread died leaves the others serving); else the first's state. */
  get state(): EngineState {
    const states = this.engines.map((e) => e.state);
    if (states.every((s) => s === 'ready' || s === 'crashed') && states.includes('ready')) return 'ready';
    return states.find((s) => s !== 'ready') ?? 'ready';
  }

  get loaded(): EngineReady | null {
    return this.engines.find((e) => e.state === 'ready')?.loaded ?? null;
  }

  get failure(): GpenLabError | null {
    return this.engines.find((e) => e.failure)?.failure ?? null;
  }

  get waitingFaces(): number {
    return this.engines.reduce((n, e) => n + e.waitingFaces, 0);
  }

  /** Each GPU's engine: its state, the requests it has now and has finished. */
  figures(): DeviceFigures[] {
    return this.engines.map((e, k) => ({
      device: this.devices[k],
      state: e.state,
      inFlight: this.inFlight[k],
      done: this.done[k],
    }));
  }

  run(body: Buffer, name: string, opts: FinishOptions): { id: number; output: Promise<EngineOutput> } {
    // the ready engine with the fewest requests in flight; ties to the lowest index
    let k = -1;
    for (let i = 0; i < this.engines.length; i++)
      if (this.engines[i].state === 'ready' && (k < 0 || this.inFlight[i] < this.inFlight[k])) k = i;
    if (k < 0) k = 0;
    const job = this.engines[k].run(body, name, opts);
    const id = this.nextId++;
    this.jobs.set(id, { k, id: job.id });
    this.inFlight[k]++;
    const settle = () => {
      this.inFlight[k]--;
      this.done[k]++;
      this.jobs.delete(id);
    };
    job.output.then(settle, settle);
    return { id, output: job.output };
  }

  cancel(id: number, reason: GpenLabError): void {
    const j = this.jobs.get(id);
    if (j) this.engines[j.k].cancel(j.id, reason);
  }

  async close(): Promise<void> {
    await Promise.all(this.engines.map((e) => e.close()));
  }
}
