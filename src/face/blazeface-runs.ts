// The detector's model runs: inputs (tiles and crops of the pyramid) filled `batch` at a time, on this thread or by
// the face workers, the next run's inputs filled while a run goes, and each input's outputs decoded in order.
import type { RgbImage } from '../io/image.js';
import type { DetectorSession } from './blazeface-capi.js';
import type { Candidate, Frame, RunOutputs } from './blazeface-decode.js';
import { ANYWHERE, BACK, FIRST_LAYER, N_ANCHORS, blend, decode } from './blazeface-decode.js';
import type { FaceWorkers } from './face-workers.js';
import type { CropMap, DetectorInput } from './resample.js';
import { cropMap, fillDetectorInput } from './resample.js';

/** Calls of fewer crops than this are filled on the calling thread (a message round trip costs more). */
const INPUT_WORKERS_FROM = 8;

/** A detection's pyramid, as it is and (made on first use) in shared memory for the face workers. */
export interface Levels {
  plain: RgbImage[];
  shared: () => RgbImage[];
}

export interface RunnerOptions {
  /** Inputs per model run. */
  batch: number;
  /** Pad every run to the full batch (one input shape for the model). */
  fixedShape: boolean;
  /** The face workers that may fill a call's crops (null: this thread); asked at each call. */
  inputWorkers: () => FaceWorkers | null;
}

export interface DetectorRuns {
  /**
   * Runs `count` inputs of size x size x 3, `batch` at a time: `input(k)` says what input k is (a window or a crop of
   * the pyramid), `each(k, outputs)` gets its outputs (in order).
   */
  runBatched(
    session: DetectorSession,
    size: number,
    count: number,
    levels: Levels,
    input: (k: number) => DetectorInput,
    each: (k: number, outputs: RunOutputs) => void,
  ): Promise<void>;
  /** Runs a model on the square of `side` image pixels centred at (cx, cy) and decodes every anchor above `min`. */
  look(
    session: DetectorSession,
    size: number,
    levels: Levels,
    cx: number,
    cy: number,
    side: number,
    frame: Partial<Frame>,
    min: number,
  ): Promise<Candidate[]>;
  /** Each proposal seen again, centred, at the model's best scale: its score and geometry (null when not seen). */
  againAll(
    session: DetectorSession,
    size: number,
    face: number,
    levels: Levels,
    ps: Candidate[],
  ): Promise<(Candidate | null)[]>;
}

/** One detector's runs, with the input buffers its calls reuse. */
export function detectorRuns({ batch, fixedShape, inputWorkers }: RunnerOptions): DetectorRuns {
  // input buffers, one per call in flight: concurrent detect() calls (the service) must not share one
  const free: Uint8Array<ArrayBuffer>[] = [];
  // and the face workers' shared staging buffers beside them, kept the same way (not allocated again per call)
  const freeStaging: Uint8Array[] = [];

  async function runBatched(
    session: DetectorSession,
    size: number,
    count: number,
    levels: Levels,
    input: (k: number) => DetectorInput,
    each: (k: number, outputs: RunOutputs) => void,
  ): Promise<void> {
    if (count === 0) return;
    const per = size * size * 3;
    const runs = Math.ceil(count / batch);
    // two input buffers when there are several runs: the next run's inputs are filled while this one runs
    const slots = Math.min(2, runs);
    // the face workers fill runs of 8 crops or more into shared memory; tiles are row copies, done here (a round trip
    // to the workers costs more than the copies)
    const workers = count >= INPUT_WORKERS_FROM && input(0).kind === 'crop' ? inputWorkers() : null;
    const bytes = batch * BACK * BACK * 3;
    const staging = workers
      ? Array.from({ length: slots }, () => freeStaging.pop() ?? new Uint8Array(new SharedArrayBuffer(bytes)))
      : null;
    // a session that reads shared memory (the C API) runs from the workers' staging buffer itself; the stock binding
    // reads a copy of it in buffers of its own
    const fromStaging = staging !== null && session.readsSharedMemory === true;
    const buffers = fromStaging ? [] : Array.from({ length: slots }, () => free.pop() ?? new Uint8Array(bytes));
    const inputOf = (slot: number) => (fromStaging ? staging![slot] : buffers[slot]);
    // on a GPU every run has the full batch (the rest zeros, their outputs ignored): one input shape, so cuDNN
    // searches its algorithms once instead of once per remainder's shape
    const fill = async (s: number, slot: number): Promise<void> => {
      const n = Math.min(batch, count - s);
      const buffer = inputOf(slot);
      if (workers && staging) {
        const jobs = Array.from({ length: n }, (_, k) => ({ input: input(s + k), offset: k * per }));
        await workers.detectorInputs(levels.shared(), size, staging[slot], jobs);
        if (!fromStaging) buffer.set(staging[slot].subarray(0, n * per));
      } else {
        for (let k = 0; k < n; k++) {
          fillDetectorInput(levels.plain, size, input(s + k), buffer.subarray(k * per, (k + 1) * per));
        }
      }
      const runN = fixedShape ? batch : n;
      if (runN > n) buffer.fill(0, n * per, runN * per);
    };
    // a fill that fails is awaited (and thrown) by its run; marked handled at once, so that its rejection never counts
    // as unhandled while the run before it is still going
    const start = (s: number, slot: number) => {
      const p = fill(s, slot);
      p.catch(() => undefined);
      return p;
    };
    let filled = start(0, 0);
    try {
      for (let r = 0; r < runs; r++) {
        const s = r * batch;
        const slot = r % slots;
        const n = Math.min(batch, count - s);
        const runN = fixedShape ? batch : n;
        await filled;
        // the next run's inputs asked for before this run: the C API's runs hold this thread until the GPU is done,
        // and the face workers fill the other buffer meanwhile
        if (r + 1 < runs) filled = start(s + batch, (r + 1) % slots);
        const running = session.runAll(inputOf(slot).subarray(0, runN * per), [runN, size, size, 3]);
        const { outputs } = await running;
        const view: RunOutputs = {
          scores0: outputs['Identity:0'].data,
          scores1: outputs['Identity_1:0'].data,
          boxes0: outputs['Identity_2:0'].data,
          boxes1: outputs['Identity_3:0'].data,
          at0: 0,
          at1: 0,
        };
        for (let k = 0; k < n; k++) {
          view.at0 = k * FIRST_LAYER;
          view.at1 = k * (N_ANCHORS - FIRST_LAYER);
          each(s + k, view);
        }
        session.recycle?.(outputs);
      }
    } finally {
      // a fill still going (a run failed) finishes before its buffer can serve another call
      await filled.catch(() => undefined);
      free.push(...buffers);
      if (staging) freeStaging.push(...staging);
    }
  }

  async function look(
    session: DetectorSession,
    size: number,
    levels: Levels,
    cx: number,
    cy: number,
    side: number,
    frame: Partial<Frame>,
    min: number,
  ): Promise<Candidate[]> {
    const map = cropMap(cx, cy, side, size);
    const got: Candidate[] = [];
    const f: Frame = { ...ANYWHERE, ...frame, size, ox: map.ox, oy: map.oy, step: map.step };
    await runBatched(
      session,
      size,
      1,
      levels,
      () => ({ kind: 'crop', cx, cy, side }),
      (_, outputs) => decode(outputs, f, min, got),
    );
    return got;
  }

  async function againAll(
    session: DetectorSession,
    size: number,
    face: number,
    levels: Levels,
    ps: Candidate[],
  ): Promise<(Candidate | null)[]> {
    const side = (k: number) => (Math.max(ps[k].w, ps[k].h) * size) / face;
    const maps: CropMap[] = ps.map((p, k) => cropMap(p.cx, p.cy, side(k), size));
    const seenAgain: (Candidate | null)[] = [];
    const crop = (k: number): DetectorInput => ({ kind: 'crop', cx: ps[k].cx, cy: ps[k].cy, side: side(k) });
    await runBatched(session, size, ps.length, levels, crop, (k, outputs) => {
      // every anchor above 0.05 that overlaps the proposal
      const got: Candidate[] = [];
      decode(outputs, { ...ANYWHERE, size, ox: maps[k].ox, oy: maps[k].oy, step: maps[k].step }, 0.05, got, ps[k]);
      if (got.length === 0) {
        seenAgain[k] = null;
        return;
      }
      const best = Math.max(...got.map((c) => c.score));
      seenAgain[k] = blend(
        got.filter((c) => c.score >= best / 2),
        best,
      );
    });
    return seenAgain;
  }

  return { runBatched, look, againAll };
}
