// The service's engine thread: owns the Restorer (decode, detection, alignment, GPEN, paste, encode) and the
// FaceBatcher that shares inferences across concurrent jobs, so that none of that work, synchronous ONNX runs
// included, holds the HTTP thread's event loop. Jobs come from engine.ts and go back as results or coded errors.
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { GpenLabError } from '../errors.js';
import { sharedBytes } from '../face/face-workers.js';
import { Restorer } from '../face/restore.js';
import { decodeImageBuffer } from '../io/image.js';
import { FaceBatcher } from './batcher.js';
import { prepareInWorker } from './prepare.js';
import type { EngineConfig, FromEngine, ToEngine } from './protocol.js';
import { toWire } from './protocol.js';

const cfg = workerData as EngineConfig;
const port = parentPort!;
const post = (m: FromEngine, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

/** A counting semaphore: take() resolves when one of `n` slots is free, in arrival order. */
class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];
  constructor(n: number) {
    this.free = n;
  }
  take(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  give(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

// images in the pipeline at once (decode to encode); the other jobs wait for a slot without work of their own
const slots = new Slots(cfg.pipelineSlots);
/** Jobs in hand (waiting for a slot or in the pipeline), and whether each was cancelled. */
const jobs = new Map<number, { cancelled: boolean; done: Promise<void> }>();
let restorer: Restorer | null = null;
let batcher: FaceBatcher | null = null;
let lastWaiting = -1;

const postWaiting = () => {
  const faces = batcher?.waitingFaces ?? 0;
  if (faces !== lastWaiting) post({ type: 'waiting', faces });
  lastWaiting = faces;
};

const loading = (async () => {
  holdIfAsked(cfg.holdLoad);
  // each candidate's model prepared in its own worker, as before the engine thread existed
  const r = await Restorer.create({
    model: cfg.model,
    prepare: prepareInWorker,
    provider: cfg.provider ?? 'auto',
    route: cfg.route ?? 'fast',
    ...(cfg.runtime ? { runtime: cfg.runtime } : {}),
    workload: 'service',
    ...(cfg.precision ? { precision: cfg.precision } : {}),
    ...(cfg.maxBatch !== undefined ? { batch: cfg.maxBatch } : {}),
    outDir: os.tmpdir(),
    write: false,
    ...(cfg.maxPixels !== undefined ? { maxPixels: cfg.maxPixels } : {}),
    // one core kept for the other threads (the HTTP thread's event loop, decode, paste) while inference holds the rest
    session: {
      ...(cfg.deviceId !== undefined ? { deviceId: cfg.deviceId } : {}),
      intraOpNumThreads: Math.max(1, os.availableParallelism() - 1),
      ...(cfg.cudaOptions ? { cudaOptions: cfg.cudaOptions } : {}),
    },
  });
  const per = 3 * r.size * r.size;
  await r.inferCrops(new Float32Array(per), 1); // warm-up: the first run pays for allocation and algorithm search
  batcher = new FaceBatcher({
    maxBatch: r.choice.batch,
    maxWaitMs: cfg.maxWaitMs,
    perFace: per,
    // the batcher has taken this run's faces off its count when it calls run
    run: (x, n) => {
      postWaiting();
      return r.inferCrops(x, n);
    },
    onBatch: (faces, requests, ms) => {
      post({ type: 'batch', faces, requests, ms });
      postWaiting();
    },
  });
  restorer = r;
  post({ type: 'ready', info: r.info, choice: r.choice, label: r.label, maxBatch: r.choice.batch });
})();
loading.catch((e: unknown) => post({ type: 'load-failed', error: toWire(e) }));

/** The test seams of EngineConfig.hold and holdLoad: blocks this thread while h[0] is 0. */
function holdIfAsked(h: Int32Array | undefined): void {
  while (h && Atomics.load(h, 0) === 0) Atomics.wait(h, 0, 0);
}

async function runJob(m: Extract<ToEngine, { type: 'job' }>, job: { cancelled: boolean }): Promise<void> {
  // the HTTP thread answers the client itself (504, or nobody to answer); this only stops the work
  const stop = () =>
    job.cancelled
      ? new GpenLabError(
          'E_TIMEOUT',
          'The job was cancelled: its request timed out or its client went away',
          'Nothing to do: the work was dropped.',
        )
      : null;
  try {
    if (!restorer || !batcher)
      throw new GpenLabError(
        'E_NOT_READY',
        'The model is not loaded',
        'Retry after the time in Retry-After; GET /readyz says when it is ready.',
      );
    const [r, b] = [restorer, batcher];
    await slots.take();
    try {
      post({ type: 'started', id: m.id });
      holdIfAsked(cfg.hold);
      const early = stop();
      if (early) throw early;
      const img = await decodeImageBuffer(
        Buffer.from(m.body),
        m.name,
        cfg.maxPixels !== undefined ? { maxPixels: cfg.maxPixels } : {},
      );
      // the Restorer's face workers read the photo in shared memory and copy it there unless it already is: moved
      // once here, the detection, warp, paste and encode use that copy, and none holds a second (3 bytes a pixel)
      img.rgb = sharedBytes(img.rgb);
      const { result, images } = await r.restoreDecoded(
        img,
        m.name,
        m.opts,
        (x, n) => {
          const out = b.infer(x, n);
          postWaiting();
          return out;
        },
        stop,
      );
      // each output's memory moves to the HTTP thread: whole buffers as they are, views of a larger one copied first
      const sent = images.map(([f, buf]): [string, Uint8Array] => {
        const whole =
          buf.buffer instanceof ArrayBuffer && buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength;
        return [f, whole ? new Uint8Array(buf.buffer, 0, buf.byteLength) : new Uint8Array(buf)];
      });
      try {
        post(
          { type: 'result', id: m.id, result, images: sent },
          sent.map(([, u]) => u.buffer as ArrayBuffer),
        );
      } catch {
        // a buffer that cannot be transferred (nothing is detached then) goes as a copy
        post({ type: 'result', id: m.id, result, images: sent });
      }
    } finally {
      slots.give();
    }
  } catch (e) {
    post({ type: 'error', id: m.id, ...toWire(e) });
  }
}

port.on('message', (m: ToEngine) => {
  if (m.type === 'job') {
    const job = { cancelled: false, done: Promise.resolve() };
    job.done = runJob(m, job).finally(() => jobs.delete(m.id));
    jobs.set(m.id, job);
  } else if (m.type === 'cancel') {
    const job = jobs.get(m.id);
    if (job) job.cancelled = true;
  } else if (m.type === 'close') {
    void (async () => {
      await loading.catch(() => undefined);
      await Promise.all([...jobs.values()].map((j) => j.done));
      await restorer?.release();
      post({ type: 'closed' });
    })();
  }
});
