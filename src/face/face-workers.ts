// Worker threads for the per-face work around GPEN that is pure JavaScript: the warp of each face into its crop and
// the sampling of each restored face back into the photo (the two took ~300 ms of the Solvay photo's 29 faces on
// one thread). Faces are dealt round-robin; crops live in SharedArrayBuffers (FloatPool with shared memory), so the
// workers write and read them in place; patches come back as transferred buffers and merge in face order on the
// calling thread, which gives exactly what the one-thread path gives.
import os from 'node:os';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { nodeScriptArgs } from '../io/node-script.js';
import type { Affine } from './align.js';
import type { PngStripe, PngStripeJob } from '../io/png.js';
import type { CompositeJob, FacePatch } from './paste.js';
import type { DetectorInput } from './resample.js';
import type { PixelsRgb } from './warp.js';

export type FaceJob =
  | {
      id: number;
      kind: 'warp';
      img: PixelsRgb;
      size: number;
      out: Float32Array;
      faces: { toCrop: Affine; offset: number }[];
    }
  | {
      id: number;
      kind: 'detector';
      levels: PixelsRgb[];
      size: number;
      out: Uint8Array;
      inputs: { input: DetectorInput; offset: number }[];
    }
  | {
      id: number;
      kind: 'paste';
      crops: Float32Array;
      size: number;
      width: number;
      height: number;
      faces: { toCrop: Affine; offset: number; smooth: boolean }[];
    }
  | { id: number; kind: 'png'; stripes: PngStripeJob[] }
  | { id: number; kind: 'warm'; size: number }
  | { id: number; kind: 'composite'; band: CompositeJob };
export interface FaceReply {
  id: number;
  ok: boolean;
  error?: string;
  patches: FacePatch[];
  stripes?: PngStripe[];
}

/**
 * Threads by default: the cores but one (the JavaScript thread waits for them), at least 2 and at most 16. On 2 cores
 * 2 workers nearly halve the Solvay photo's align and paste where 1 gains nothing; on a 16-core host 15 workers beat 8
 * (measured on an H200 host).
 */
export function defaultFaceThreads(): number {
  return Math.max(2, Math.min(16, os.availableParallelism() - 1));
}

/** A typed array's memory as shared memory (copied once when it is not already shared). */
export function sharedBytes(a: Uint8Array): Uint8Array {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  const s = new Uint8Array(new SharedArrayBuffer(a.byteLength));
  s.set(a);
  return s;
}

export class FaceWorkers {
  private readonly workers: Worker[] = [];
  private nextId = 1;
  private inFlight = 0;
  private readonly waiting = new Map<number, { resolve: (r: FaceReply) => void; reject: (e: Error) => void }>();
  private failure: Error | null = null;
  private closing = false;
  private pasteWarmed = false;

  constructor(readonly threads: number = defaultFaceThreads()) {
    const args = nodeScriptArgs(import.meta.url, 'face-worker');
    const script = args[args.length - 1];
    for (let i = 0; i < threads; i++) {
      // from the TypeScript sources (tests), the worker registers tsx itself: workers do not take --import
      const w =
        args.length === 1
          ? new Worker(script)
          : new Worker(
              `import('tsx/esm/api').then((t) => { t.register(); return import(${JSON.stringify(pathToFileURL(script).href)}); });`,
              { eval: true },
            );
      w.on('message', (r: FaceReply) => this.settle(r));
      w.on('error', (e) => this.fail(e));
      w.on('exit', (code) => {
        if (code !== 0 && !this.closing) this.fail(new Error(`a face worker exited with code ${code}`));
      });
      w.unref();
      this.workers.push(w);
    }
  }

  private settle(r: FaceReply): void {
    const p = this.waiting.get(r.id);
    if (!p) return;
    this.waiting.delete(r.id);
    if (--this.inFlight === 0) for (const w of this.workers) w.unref();
    if (r.ok) p.resolve(r);
    else p.reject(new Error(`face worker: ${r.error}`));
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.waiting.values()) p.reject(e);
    this.waiting.clear();
    this.inFlight = 0;
    for (const w of this.workers) w.unref();
  }

  private send(w: Worker, job: FaceJob): Promise<FaceReply> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting.set(job.id, { resolve, reject });
      // workers hold the process open only while they have work
      if (this.inFlight++ === 0) for (const x of this.workers) x.ref();
      w.postMessage(job);
    });
  }

  /** Deals `n` items round-robin: item i goes to worker i % threads. */
  private deal<T>(items: T[]): T[][] {
    const parts: T[][] = this.workers.map(() => []);
    items.forEach((it, i) => parts[i % parts.length].push(it));
    return parts;
  }

  /** Warps every face of `img` (its data in shared memory) into `out` (shared) at the given offsets. */
  async warp(
    img: PixelsRgb,
    size: number,
    out: Float32Array,
    faces: { toCrop: Affine; offset: number }[],
  ): Promise<void> {
    const parts = this.deal(faces);
    await Promise.all(
      parts.map((part, i) =>
        part.length
          ? this.send(this.workers[i], { id: this.nextId++, kind: 'warp', img, size, out, faces: part })
          : null,
      ),
    );
  }

  /**
   * Fills detector inputs (NHWC, [-1, 1]) into `out` (shared) at their offsets, from pyramid levels in shared memory:
   * exactly what fillDetectorInput writes on the calling thread.
   */
  async detectorInputs(
    levels: PixelsRgb[],
    size: number,
    out: Uint8Array,
    inputs: { input: DetectorInput; offset: number }[],
  ): Promise<void> {
    const parts = this.deal(inputs);
    await Promise.all(
      parts.map((part, i) =>
        part.length
          ? this.send(this.workers[i], { id: this.nextId++, kind: 'detector', levels, size, out, inputs: part })
          : null,
      ),
    );
  }

  /** Samples every restored face (crops in shared memory) into the photo's grid: patches in face order. */
  async patches(
    crops: Float32Array,
    size: number,
    width: number,
    height: number,
    faces: { toCrop: Affine; offset: number; smooth: boolean }[],
  ): Promise<FacePatch[]> {
    const parts = this.deal(faces);
    const replies = await Promise.all(
      parts.map((part, i) =>
        part.length
          ? this.send(this.workers[i], { id: this.nextId++, kind: 'paste', crops, size, width, height, faces: part })
          : null,
      ),
    );
    const out: FacePatch[] = new Array(faces.length);
    replies.forEach((r, i) =>
      r?.patches.forEach((p, j) => {
        out[j * this.workers.length + i] = p;
      }),
    );
    return out;
  }

  /**
   * Once per pool: every worker runs the paste's code on blank faces of `size` (warmPaste), after the jobs already
   * sent to it. Sent while a first photo's faces are inferred, so that their paste runs optimised code.
   */
  warmPaste(size: number): void {
    if (this.pasteWarmed) return;
    this.pasteWarmed = true;
    for (const w of this.workers) this.send(w, { id: this.nextId++, kind: 'warm', size }).catch(() => undefined);
  }

  /**
   * Compresses PNG stripes (their parts' pixels in shared memory), dealt round-robin: the stripes in job order. The
   * jobs of several images may come in one call (they run on all the workers at once).
   */
  async pngStripes(jobs: PngStripeJob[]): Promise<PngStripe[]> {
    const parts = this.deal(jobs);
    const replies = await Promise.all(
      parts.map((part, i) =>
        part.length ? this.send(this.workers[i], { id: this.nextId++, kind: 'png', stripes: part }) : null,
      ),
    );
    const out: PngStripe[] = new Array(jobs.length);
    replies.forEach((r, i) =>
      r?.stripes?.forEach((s, j) => {
        out[j * this.workers.length + i] = s;
      }),
    );
    return out;
  }

  /** Composites bands of rows (Compositor.compositeOn), one band a worker. */
  async composite(bands: CompositeJob[]): Promise<void> {
    await Promise.all(
      bands.map((band, i) =>
        this.send(this.workers[i % this.workers.length], { id: this.nextId++, kind: 'composite', band }),
      ),
    );
  }

  async close(): Promise<void> {
    // terminating workers exit with code 1: not a failure; held referenced until they are gone, so that the event
    // loop waits for their exit (an unreferenced worker's terminate() can leave the loop empty with it pending)
    this.closing = true;
    for (const w of this.workers) w.ref();
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
  }
}
