// What BlazeFace's outputs mean: the anchor layout both models share, the decoding of one run's scores and boxes into
// detections in image pixels, and MediaPipe's weighted NMS that merges them.

/** The back-camera model's input side (the tiles), and the front-camera model's. */
export const BACK = 256;
export const FRONT = 128;
/** MediaPipe's weighted NMS: detections overlapping by more than this are one face. */
export const NMS_IOU = 0.3;

/** Both models share one anchor layout: 16x16 cells x 2 anchors, then 8x8 cells x 6, centres in [0, 1] of the input. */
const ANCHORS: Float32Array = (() => {
  const out: number[] = [];
  for (const [grid, per] of [
    [16, 2],
    [8, 6],
  ] as const) {
    for (let y = 0; y < grid; y++) {
      for (let x = 0; x < grid; x++) for (let a = 0; a < per; a++) out.push((x + 0.5) / grid, (y + 0.5) / grid);
    }
  }
  return Float32Array.from(out);
})();
export const FIRST_LAYER = 512;
export const N_ANCHORS = 896;

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
export interface Frame {
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
export interface RunOutputs {
  scores0: Float32Array;
  scores1: Float32Array;
  boxes0: Float32Array;
  boxes1: Float32Array;
  /** This input's first anchor in the 16x16 layer's arrays, and in the 8x8 layer's. */
  at0: number;
  at1: number;
}

export const ANYWHERE: Pick<Frame, 'xs' | 'ys' | 'minW' | 'maxW'> = {
  xs: [-Infinity, Infinity],
  ys: [-Infinity, Infinity],
  minW: 0,
  maxW: Infinity,
};

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

export function iou(a: Box, b: Box): number {
  const ix = Math.min(a.cx + a.w / 2, b.cx + b.w / 2) - Math.max(a.cx - a.w / 2, b.cx - b.w / 2);
  const iy = Math.min(a.cy + a.h / 2, b.cy + b.h / 2) - Math.max(a.cy - a.h / 2, b.cy - b.h / 2);
  if (ix <= 0 || iy <= 0) return 0;
  const inter = ix * iy;
  return inter / (a.w * a.h + b.w * b.h - inter);
}

/** Score-weighted mean of the geometry of detections; the score is the caller's. */
export function blend(group: Candidate[], score: number): Candidate {
  let sw = 0,
    cx = 0,
    cy = 0,
    w = 0,
    h = 0;
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
export function decode(out: RunOutputs, f: Frame, minScore: number, into: Candidate[], near?: Candidate): void {
  const { scores0, scores1, boxes0, boxes1 } = out;
  const minLogit = Math.log(minScore / (1 - minScore));
  // the overlap test with `near` inline (no box object for the ~80% it drops)
  const nx0 = near ? near.cx - near.w / 2 : 0,
    nx1 = near ? near.cx + near.w / 2 : 0;
  const ny0 = near ? near.cy - near.h / 2 : 0,
    ny1 = near ? near.cy + near.h / 2 : 0;
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
    const bcx = f.ox + cx * f.step,
      bcy = f.oy + cy * f.step,
      bw = w * f.step,
      bh = h * f.step;
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
