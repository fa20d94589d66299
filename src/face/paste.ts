// Paste back: the official soft mask, small-face smoothing, and a compositor that inverse-warps every restored face
// into the photo, resolving overlaps by mask strength (the stronger mask wins, as in GPEN's FaceEnhancement).
import type { FloatPool } from './pool.js';
import type { Affine } from './align.js';
import { affineScale, invertAffine } from './align.js';
import { cropFootprint } from './warp.js';

const maskCache = new Map<number, Float32Array>();

function gaussianKernel(radius: number, sigma: number): Float32Array {
  const k = new Float32Array(2 * radius + 1);
  let sum = 0;
  for (let i = -radius; i <= radius; i++) sum += k[i + radius] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i] /= sum;
  return k;
}

/** 1-D Gaussian blur with cv2's default border (reflect-101). */
function blur1d(src: Float64Array, k: Float32Array): Float64Array {
  const n = src.length;
  const r = (k.length - 1) >> 1;
  const refl = (i: number) => {
    let j = i;
    while (j < 0 || j >= n) j = j < 0 ? -j : 2 * (n - 1) - j;
    return j;
  };
  const out = new Float64Array(n);
  for (let x = 0; x < n; x++) {
    let s = 0;
    for (let t = -r; t <= r; t++) s += src[refl(x + t)] * k[t + r];
    out[x] = s;
  }
  return out;
}

/**
 * GPEN's paste mask: a filled square inset 26/512 of the crop, Gaussian-blurred twice (kernel 101, sigma 11 at 512),
 * scaled to the crop size. Cached per size. The square is the product of two intervals and the blur is separable
 * with the same border on rows and columns, so the mask is the outer product of one blurred 1-D profile: O(size x
 * kernel) instead of four 2-D passes (which cost ~0.7 s of a cold start at 512).
 */
export function pasteMask(size: number): Float32Array {
  const hit = maskCache.get(size);
  if (hit) return hit;
  const s = size / 512;
  const lo = Math.round(26 * s),
    hi = Math.min(Math.round(486 * s), size - 1);
  const k = gaussianKernel(Math.max(1, Math.round(50 * s)), 11 * s);
  const step = new Float64Array(size);
  step.fill(1, lo, hi + 1);
  const f = blur1d(blur1d(step, k), k);
  const out = new Float32Array(size * size);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) out[y * size + x] = f[y] * f[x];
  maskCache.set(size, out);
  return out;
}

let smoothRows = new Float32Array(0);

/** Horizontal [1 2 1] pass of one row (reflect-101 edges) into `out` at `o`. */
function hPass(t: Float32Array, row: number, size: number, out: Float32Array, o: number): void {
  out[o] = 2 * t[row] + 2 * t[row + 1];
  for (let x = 1; x < size - 1; x++) out[o + x] = t[row + x - 1] + 2 * t[row + x] + t[row + x + 1];
  out[o + size - 1] = 2 * t[row + size - 2] + 2 * t[row + size - 1];
}

/**
 * The official small-face smoothing: a 3x3 [1 2 1]^T[1 2 1]/16 filter (cv2.filter2D, reflect-101 edges) on the
 * restored crop, planar, in place. Separable, over a ring of three filtered rows: no plane-sized scratch.
 */
export function smoothSmallFace(t: Float32Array, size: number, offset = 0): void {
  const plane = size * size;
  if (smoothRows.length < 3 * size) smoothRows = new Float32Array(3 * size);
  const h = smoothRows;
  const refl = (i: number) => (i < 0 ? 1 : i >= size ? size - 2 : i);
  for (let c = 0; c < 3; c++) {
    const base = offset + c * plane;
    // ring slots: row r lives in slot r % 3; row -1 reflects to row 1
    hPass(t, base, size, h, 0);
    hPass(t, base + size, size, h, size);
    for (let y = 0; y < size; y++) {
      const next = refl(y + 1);
      if (y + 1 < size && y + 1 > 1) hPass(t, base + next * size, size, h, ((y + 1) % 3) * size);
      const pa = (refl(y - 1) % 3) * size,
        pc = (y % 3) * size,
        pn = (next % 3) * size;
      const o = base + y * size;
      for (let x = 0; x < size; x++) t[o + x] = (h[pa + x] + 2 * h[pc + x] + h[pn + x]) * 0.0625;
    }
  }
}

/** Blends the restored crop with the aligned original: alpha * restored + (1 - alpha) * original (in place). */
export function blendAlpha(
  restored: Float32Array,
  original: Float32Array,
  alpha: number,
  n: number,
  rOff = 0,
  oOff = 0,
): void {
  if (alpha === 1) return;
  for (let i = 0; i < n; i++) restored[rOff + i] = alpha * restored[rOff + i] + (1 - alpha) * original[oOff + i];
}

let reduceRows = new Float32Array(0);

/**
 * Reduces a planar crop by k (for pasting a face that shrinks by k or more): a box of k, or with `smooth` the box
 * convolved with the small-face filter [1 2 1]/4 (taps [1/4, 3/4, 1, ..., 1, 3/4, 1/4]/k, reflect-101 edges), which
 * is exactly smoothing at full size and then box-reducing, for the cost of the reduction alone.
 */
export function reducePlanar(
  t: Float32Array,
  size: number,
  offset: number,
  k: number,
  smooth = false,
): { data: Float32Array; size: number } {
  const s = Math.floor(size / k);
  const out = new Float32Array(3 * s * s);
  const inv = 1 / k;
  const refl = (i: number) => (i < 0 ? -i : i >= size ? 2 * size - 2 - i : i);
  if (reduceRows.length < size * s) reduceRows = new Float32Array(size * s);
  const h = reduceRows;
  for (let c = 0; c < 3; c++) {
    const base = offset + c * size * size;
    // horizontal: every row to s columns
    for (let y = 0; y < size; y++) {
      const row = base + y * size;
      const hr = y * s;
      for (let i = 0; i < s; i++) {
        const x0 = i * k;
        let sum = 0;
        for (let x = x0; x < x0 + k; x++) sum += t[row + x];
        if (smooth) sum += 0.25 * (t[row + refl(x0 - 1)] - t[row + x0] - t[row + x0 + k - 1] + t[row + refl(x0 + k)]);
        h[hr + i] = sum * inv;
      }
    }
    // vertical: s rows from the size filtered ones
    const ob = c * s * s;
    for (let j = 0; j < s; j++) {
      const y0 = j * k;
      const orow = ob + j * s;
      for (let y = y0; y < y0 + k; y++) {
        const hr = y * s;
        for (let i = 0; i < s; i++) out[orow + i] += h[hr + i];
      }
      if (smooth) {
        const a = refl(y0 - 1) * s,
          b = y0 * s,
          cc = (y0 + k - 1) * s,
          d = refl(y0 + k) * s;
        for (let i = 0; i < s; i++) out[orow + i] += 0.25 * (h[a + i] - h[b + i] - h[cc + i] + h[d + i]);
      }
      for (let i = 0; i < s; i++) out[orow + i] *= inv;
    }
  }
  return { data: out, size: s };
}

/** The reduction factor the paste uses for a crop mapped by `toCrop` (1: sampled directly). */
export function pasteReduction(toCrop: Affine): number {
  const scale = affineScale(toCrop);
  return scale >= 2 ? Math.floor(scale) : 1;
}

/** One face sampled into the photo's pixel grid over its footprint: mask (0 outside the crop) and RGB in [0, 255]. */
export interface FacePatch {
  x0: number;
  y0: number;
  w: number;
  h: number;
  mask: Float32Array;
  face: Float32Array;
}

/**
 * Samples one restored crop (planar [-1, 1]) at every photo pixel of its footprint: the mask at full crop
 * resolution, the face from the crop (box-reduced first when the paste shrinks it by 2x or more, so that it does not
 * alias; bicubic when it enlarges it). Pure: the face workers run it for several faces at once.
 */
export function facePatch(
  crop: Float32Array,
  size: number,
  toCrop: Affine,
  mask: Float32Array,
  width: number,
  height: number,
  offset = 0,
  smooth = false,
): FacePatch {
  const [x0, y0, x1, y1] = cropFootprint(invertAffine(toCrop), size, width, height);
  const w = Math.max(0, x1 - x0),
    h = Math.max(0, y1 - y0);
  const pm = new Float32Array(w * h);
  const pf = new Float32Array(w * h * 3);
  const scale = affineScale(toCrop);
  const k = pasteReduction(toCrop);
  if (smooth && k === 1) throw new Error('internal: smooth in a paste needs a reduction; smooth the crop first');
  let src = crop,
    ss = size,
    so = offset;
  let m = toCrop;
  if (k > 1) {
    const red = reducePlanar(crop, size, offset, k, smooth);
    src = red.data;
    ss = red.size;
    so = 0;
    const sh = (k - 1) / 2;
    m = [toCrop[0] / k, toCrop[1] / k, (toCrop[2] - sh) / k, toCrop[3] / k, toCrop[4] / k, (toCrop[5] - sh) / k];
  }
  const plane = ss * ss;
  // a crop pasted larger than it is (faces bigger than the crop) is read bicubically: bilinear would blur it further
  const enlarge = scale < 1;
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const u = toCrop[0] * x + toCrop[1] * y + toCrop[2];
      const v = toCrop[3] * x + toCrop[4] * y + toCrop[5];
      if (u < 0 || v < 0 || u > size - 1 || v > size - 1) continue;
      const q = (y - y0) * w + (x - x0);
      pm[q] = bilinear(mask, size, 0, u, v);
      const su = k > 1 ? Math.min(Math.max(m[0] * x + m[1] * y + m[2], 0), ss - 1) : u;
      const sv = k > 1 ? Math.min(Math.max(m[3] * x + m[4] * y + m[5], 0), ss - 1) : v;
      if (enlarge) for (let c = 0; c < 3; c++) pf[q * 3 + c] = (bicubic(src, ss, so + c * plane, su, sv) + 1) * 127.5;
      else for (let c = 0; c < 3; c++) pf[q * 3 + c] = (bilinear(src, ss, so + c * plane, su, sv) + 1) * 127.5;
    }
  }
  return { x0, y0, w, h, mask: pm, face: pf };
}

export class Compositor {
  readonly mask: Float32Array;
  private readonly face: Float32Array;
  /** Per row, the columns [spanLo, spanHi) that patches reached: the composite reads only those. */
  private readonly spanLo: Int32Array;
  private readonly spanHi: Int32Array;

  /** With a pool, the two planes come from it (give them back with release()). */
  constructor(
    readonly width: number,
    readonly height: number,
    private readonly pool?: FloatPool,
  ) {
    this.mask = pool ? pool.take(width * height).fill(0) : new Float32Array(width * height);
    this.face = pool ? pool.take(width * height * 3) : new Float32Array(width * height * 3);
    this.spanLo = new Int32Array(height).fill(width);
    this.spanHi = new Int32Array(height);
  }

  release(): void {
    this.pool?.give(this.mask);
    this.pool?.give(this.face);
  }

  /**
   * Inverse-warps one restored crop (planar [-1, 1]) into the photo with its mask; where its mask is stronger than
   * what is there, it replaces it. `toCrop` maps photo pixels to crop pixels. `smooth` applies the small-face filter
   * within the reduction (only where pasteReduction(toCrop) > 1; otherwise smooth the crop first).
   */
  add(crop: Float32Array, size: number, toCrop: Affine, mask: Float32Array, offset = 0, smooth = false): void {
    this.merge(facePatch(crop, size, toCrop, mask, this.width, this.height, offset, smooth));
  }

  /**
   * Merges a patch from facePatch(): where its mask is stronger than what is there, it replaces it (patches merged in
   * face order give what add() in face order gives, wherever the patches were sampled).
   */
  merge(patch: FacePatch): void {
    const { x0, y0, w, h, mask, face } = patch;
    const W = this.width;
    for (let j = 0; j < h && w > 0; j++) {
      this.spanLo[y0 + j] = Math.min(this.spanLo[y0 + j], x0);
      this.spanHi[y0 + j] = Math.max(this.spanHi[y0 + j], x0 + w);
    }
    for (let j = 0; j < h; j++) {
      for (let i = 0; i < w; i++) {
        const q = j * w + i;
        const mv = mask[q];
        const p = (y0 + j) * W + x0 + i;
        if (!(mv > this.mask[p])) continue;
        this.mask[p] = mv;
        this.face[p * 3] = face[q * 3];
        this.face[p * 3 + 1] = face[q * 3 + 1];
        this.face[p * 3 + 2] = face[q * 3 + 2];
      }
    }
  }

  /**
   * out = photo * (1 - mask) + faces * mask; pixels no mask reaches are returned unchanged, bit for bit. Only the
   * rows' spans that patches reached are read: a large photo with a few faces costs their footprints, not its size.
   * The result goes into `into` when given (shared memory for the face workers' PNG encoder).
   */
  composite(rgb: Uint8Array, into?: Uint8Array): Uint8Array {
    const out = into ?? new Uint8Array(rgb.length);
    compositeRows({
      rgb,
      mask: this.mask,
      face: this.face,
      spanLo: this.spanLo,
      spanHi: this.spanHi,
      width: this.width,
      y0: 0,
      y1: this.height,
      out,
    });
    return out;
  }

  /**
   * composite() on the face workers, in bands of rows of about equal work (the photo, the planes and `into` in shared
   * memory: the Compositor's pool must be a shared one): the same bytes.
   */
  async compositeOn(
    workers: { composite(jobs: CompositeJob[]): Promise<void>; threads: number },
    rgb: Uint8Array,
    into: Uint8Array,
  ): Promise<Uint8Array> {
    // a row costs its copy (~1/8 of a composited pixel per pixel) and its span
    const cost = (y: number) => this.width / 8 + Math.max(0, this.spanHi[y] - this.spanLo[y]);
    let total = 0;
    for (let y = 0; y < this.height; y++) total += cost(y);
    const jobs: CompositeJob[] = [];
    let y0 = 0,
      acc = 0;
    for (let y = 0; y < this.height; y++) {
      acc += cost(y);
      if (acc >= (total * (jobs.length + 1)) / workers.threads || y === this.height - 1) {
        jobs.push({
          rgb,
          mask: this.mask,
          face: this.face,
          spanLo: this.spanLo.subarray(y0, y + 1),
          spanHi: this.spanHi.subarray(y0, y + 1),
          width: this.width,
          y0,
          y1: y + 1,
          out: into,
          spansFrom: y0,
        });
        y0 = y + 1;
      }
    }
    await workers.composite(jobs);
    return into;
  }
}

/** Rows [y0, y1) of a composite; the spans are given for those rows (spanLo[y - spansFrom]). */
export interface CompositeJob {
  rgb: Uint8Array;
  mask: Float32Array;
  face: Float32Array;
  spanLo: Int32Array;
  spanHi: Int32Array;
  width: number;
  y0: number;
  y1: number;
  out: Uint8Array;
  /** The row whose spans spanLo[0] and spanHi[0] are (default 0: the whole image's spans). */
  spansFrom?: number;
}

/** out = photo * (1 - mask) + faces * mask over rows [y0, y1): the rows copied, then their spans blended (any thread). */
export function compositeRows(j: CompositeJob): void {
  const { rgb, mask, face, spanLo, spanHi, width: W, y0, y1, out } = j;
  const from = j.spansFrom ?? 0;
  out.set(rgb.subarray(y0 * W * 3, y1 * W * 3), y0 * W * 3);
  for (let y = y0; y < y1; y++) {
    const end = y * W + spanHi[y - from];
    for (let p = y * W + spanLo[y - from]; p < end; p++) {
      const a = mask[p];
      if (a === 0) continue;
      for (let c = 0; c < 3; c++) {
        const v = rgb[p * 3 + c] * (1 - a) + face[p * 3 + c] * a;
        out[p * 3 + c] = v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v);
      }
    }
  }
}

/**
 * Runs facePatch's and compositeRows' paths once or twice on a blank crop of `size` (its mask made and cached): the
 * work a thread's first paste would spend in unoptimised code (~35 ms a face for a 512 crop), spent beforehand.
 */
export function warmPaste(size: number): void {
  const crop = new Float32Array(3 * size * size);
  const mask = pasteMask(size);
  const W = Math.ceil(size / 1.5) + 16;
  // a small face (reduced, with and without the small-face filter) twice, and one sampled directly
  const faces: [number, boolean][] = [
    [size / 12, true],
    [size / 12, true],
    [size / 12, false],
    [size / 1.5, false],
  ];
  const rgb = new Uint8Array(W * W * 3);
  const comp = new Compositor(W, W);
  for (const [face, smooth] of faces) {
    const k = size / face;
    comp.merge(facePatch(crop, size, [k, 0, -8 * k, 0, k, -8 * k], mask, W, W, 0, smooth));
  }
  comp.composite(rgb);
}

/** Keys' cubic convolution weight (a = -0.5, as Catmull-Rom). */
function cubic(x: number): number {
  const t = Math.abs(x);
  if (t <= 1) return (1.5 * t - 2.5) * t * t + 1;
  if (t < 2) return ((-0.5 * t + 2.5) * t - 4) * t + 2;
  return 0;
}

/** Bicubic sample of a size x size plane at (u, v), edges clamped. */
function bicubic(t: Float32Array, size: number, base: number, u: number, v: number): number {
  const xf = Math.floor(u),
    yf = Math.floor(v);
  const fx = u - xf,
    fy = v - yf;
  let acc = 0;
  for (let j = -1; j <= 2; j++) {
    const yy = Math.min(Math.max(yf + j, 0), size - 1);
    const wy = cubic(j - fy);
    const row = base + yy * size;
    let r = 0;
    for (let i = -1; i <= 2; i++) r += t[row + Math.min(Math.max(xf + i, 0), size - 1)] * cubic(i - fx);
    acc += r * wy;
  }
  return acc;
}

function bilinear(t: Float32Array, size: number, base: number, u: number, v: number): number {
  const x = Math.min(Math.floor(u), size - 2),
    y = Math.min(Math.floor(v), size - 2);
  const fx = u - x,
    fy = v - y;
  const p = base + y * size + x;
  return (
    t[p] * (1 - fx) * (1 - fy) + t[p + 1] * fx * (1 - fy) + t[p + size] * (1 - fx) * fy + t[p + size + 1] * fx * fy
  );
}
