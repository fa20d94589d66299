// Pure resampling over interleaved RGB uint8 buffers (no sharp under src/face): 2x2 halving for image pyramids,
// area-weighted resizing for arbitrary downscales, and the detector's inputs: windows and crops as NHWC bytes (the
// graph maps them to [-1, 1]).
import type { RgbImage } from '../io/image.js';

/** Halves an image with a 2x2 box filter; output pixel (x, y) covers source [2x, 2x+2) x [2y, 2y+2). */
export function halve(img: RgbImage): RgbImage {
  const { width: w, height: h, data: src } = img;
  const ow = Math.max(1, w >> 1);
  const oh = Math.max(1, h >> 1);
  const out = new Uint8Array(ow * oh * 3);
  const stride = w * 3;
  for (let y = 0; y < oh; y++) {
    const r0 = Math.min(2 * y, h - 1) * stride;
    const r1 = Math.min(2 * y + 1, h - 1) * stride;
    let o = y * ow * 3;
    if (w < 2) {
      // one source column: it counts twice
      for (let c = 0; c < 3; c++) out[o++] = (2 * src[r0 + c] + 2 * src[r1 + c] + 2) >> 2;
      continue;
    }
    // both source columns of every output pixel exist (an odd last column is left out): no clamping per pixel
    for (let x = 0, a = r0, b = r1; x < ow; x++, a += 6, b += 6) {
      out[o++] = (src[a] + src[a + 3] + src[b] + src[b + 3] + 2) >> 2;
      out[o++] = (src[a + 1] + src[a + 4] + src[b + 1] + src[b + 4] + 2) >> 2;
      out[o++] = (src[a + 2] + src[a + 5] + src[b + 2] + src[b + 5] + 2) >> 2;
    }
  }
  return { width: ow, height: oh, data: out };
}

/** resampleFloat's rows pass, kept between calls (each face worker has its own). */
let midScratch = new Float32Array(0);

/** Per output index along one axis: the first source index read and its weights (flat, from `offset`). */
interface AxisTaps {
  start: Int32Array;
  count: Int32Array;
  offset: Int32Array;
  weights: Float32Array;
}

/**
 * Output sample i covers source [origin + i*step, origin + (i+1)*step): area (box) weights when shrinking (step >= 1),
 * linear interpolation when enlarging. Source samples outside [0, src) are black: they keep their weight but
 * contribute nothing, so the weights in range may sum to less than 1.
 */
function axisTaps(src: number, origin: number, step: number, dst: number): AxisTaps {
  const start = new Int32Array(dst);
  const count = new Int32Array(dst);
  const offset = new Int32Array(dst);
  const all: number[] = [];
  for (let i = 0; i < dst; i++) {
    let first: number;
    let w: number[];
    if (step >= 1) {
      const a = origin + i * step;
      const b = a + step;
      first = Math.floor(a);
      w = [];
      for (let k = first; k < b; k++) w.push((Math.min(b, k + 1) - Math.max(a, k)) / step);
    } else {
      const c = origin + (i + 0.5) * step - 0.5;
      first = Math.floor(c);
      w = [first + 1 - c, c - first];
      // inside the image, edge pixels extend to its border (no darkening from the half pixel beyond the last centre)
      if (first === -1 && origin >= 0) {
        first = 0;
        w = [1];
      }
      if (first === src - 1 && origin + dst * step <= src) w = [1];
    }
    const lo = Math.max(first, 0);
    const hi = Math.min(first + w.length, src);
    start[i] = lo;
    count[i] = Math.max(0, hi - lo);
    offset[i] = all.length;
    for (let k = lo; k < hi; k++) all.push(w[k - first]);
  }
  return { start, count, offset, weights: Float32Array.from(all) };
}

/**
 * Resamples the source rectangle starting at (ox, oy), `stepX` x `stepY` source pixels per output pixel, into
 * outW x outH float RGB in [0, 255]: exact area averaging when shrinking (no aliasing at any factor), bilinear when
 * enlarging, black outside the source. Each value v is written as v * scale + bias (the detector's [-1, 1] in the
 * same pass).
 */
function resampleFloat<T extends Float32Array | Uint8ClampedArray>(
  img: RgbImage,
  ox: number,
  oy: number,
  stepX: number,
  stepY: number,
  outW: number,
  outH: number,
  out: T,
  scale = 1,
  bias = 0,
): T {
  const { width: w, data: src } = img;
  const tx = axisTaps(w, ox, stepX, outW);
  const ty = axisTaps(img.height, oy, stepY, outH);
  // Only the source rows some output row reads.
  let rowLo = img.height,
    rowHi = 0;
  for (let y = 0; y < outH; y++) {
    if (ty.count[y] > 0) {
      rowLo = Math.min(rowLo, ty.start[y]);
      rowHi = Math.max(rowHi, ty.start[y] + ty.count[y]);
    }
  }
  if (rowHi <= rowLo) {
    out.fill(bias, 0, outW * outH * 3);
    return out;
  }
  // Rows first into a float buffer (outW x rows, reused from call to call), then columns.
  const midLength = outW * (rowHi - rowLo) * 3;
  if (midScratch.length < midLength) midScratch = new Float32Array(midLength);
  const mid = midScratch;
  const { start: xs, count: xn, offset: xo, weights: xw } = tx;
  for (let y = rowLo; y < rowHi; y++) {
    const row = y * w * 3;
    let o = (y - rowLo) * outW * 3;
    for (let x = 0; x < outW; x++, o += 3) {
      let p = row + xs[x] * 3;
      let q = xo[x];
      const n = xn[x];
      if (n === 2) {
        // bilinear taps (every enlargement's inner samples): no loop
        const w0 = xw[q],
          w1 = xw[q + 1];
        mid[o] = src[p] * w0 + src[p + 3] * w1;
        mid[o + 1] = src[p + 1] * w0 + src[p + 4] * w1;
        mid[o + 2] = src[p + 2] * w0 + src[p + 5] * w1;
        continue;
      }
      let r = 0,
        g = 0,
        b = 0;
      for (let k = n; k > 0; k--, p += 3, q++) {
        const wt = xw[q];
        r += src[p] * wt;
        g += src[p + 1] * wt;
        b += src[p + 2] * wt;
      }
      mid[o] = r;
      mid[o + 1] = g;
      mid[o + 2] = b;
    }
  }
  // Columns: every output value written once (taps summed in a local, then scaled), no clearing pass before
  const stride = outW * 3;
  for (let y = 0; y < outH; y++) {
    const n = ty.count[y];
    const o = y * stride;
    if (n === 0) {
      out.fill(bias, o, o + stride);
      continue;
    }
    const base = (ty.start[y] - rowLo) * stride;
    const w0 = ty.weights[ty.offset[y]];
    if (n === 1) {
      for (let x = 0; x < stride; x++) out[o + x] = mid[base + x] * w0 * scale + bias;
    } else if (n === 2) {
      const w1 = ty.weights[ty.offset[y] + 1];
      const b1 = base + stride;
      for (let x = 0; x < stride; x++) out[o + x] = (mid[base + x] * w0 + mid[b1 + x] * w1) * scale + bias;
    } else {
      for (let x = 0; x < stride; x++) {
        let acc = 0;
        for (let k = 0, m = base + x; k < n; k++, m += stride) acc += mid[m] * ty.weights[ty.offset[y] + k];
        out[o + x] = acc * scale + bias;
      }
    }
  }
  return out;
}

/** Like resampleFloat, rounded to 8 bits. */
export function resample(
  img: RgbImage,
  ox: number,
  oy: number,
  stepX: number,
  stepY: number,
  outW: number,
  outH: number,
): RgbImage {
  const f = resampleFloat(img, ox, oy, stepX, stepY, outW, outH, new Float32Array(outW * outH * 3));
  const data = new Uint8Array(f.length);
  for (let i = 0; i < f.length; i++) data[i] = Math.min(255, Math.round(f[i]));
  return { width: outW, height: outH, data };
}

/** Resizes the whole image to outW x outH (area when shrinking, bilinear when enlarging). */
export function resize(img: RgbImage, outW: number, outH: number): RgbImage {
  return resample(img, 0, 0, img.width / outW, img.height / outH, outW, outH);
}

/**
 * Copies the window of `img` whose top-left is (x0, y0) into NHWC bytes of size x size; pixels outside the image are
 * black (0), like MediaPipe's zero-border letterbox.
 */
export function windowToBytes(
  img: RgbImage,
  x0: number,
  y0: number,
  size: number,
  out: Uint8Array = new Uint8Array(size * size * 3),
): Uint8Array {
  const { width: w, height: h, data } = img;
  const xa = Math.max(0, x0);
  const xb = Math.min(w, x0 + size);
  const ya = Math.max(0, y0);
  const yb = Math.min(h, y0 + size);
  if (xa > x0 || xb < x0 + size || ya > y0 || yb < y0 + size) out.fill(0, 0, size * size * 3);
  if (xb <= xa) return out;
  for (let y = ya; y < yb; y++)
    out.set(data.subarray((y * w + xa) * 3, (y * w + xb) * 3), ((y - y0) * size + (xa - x0)) * 3);
  return out;
}

/** Where a crop came from: image pixel = origin + crop pixel * step. */
export interface CropMap {
  ox: number;
  oy: number;
  step: number;
}

/**
 * Samples the square of side `side` (image pixels) centred at (cx, cy) into NHWC bytes of out x out (rounded), black
 * outside the image. `levels` is a pyramid (level L = image / 2^L); the coarsest level that still has `out` pixels
 * across the square is read, so shrinking costs about the output's size whatever the square's.
 */
export function cropToBytes(
  levels: readonly RgbImage[],
  cx: number,
  cy: number,
  side: number,
  out: number,
  bytes: Uint8Array = new Uint8Array(out * out * 3),
): { bytes: Uint8Array; map: CropMap } {
  let L = 0;
  while (L + 1 < levels.length && side / 2 ** (L + 1) >= out) L++;
  const f = 2 ** L;
  const map = cropMap(cx, cy, side, out);
  // a clamped view rounds each sample as it is stored (values are in [0, 255] already)
  const clamped = new Uint8ClampedArray(bytes.buffer, bytes.byteOffset, out * out * 3);
  resampleFloat(levels[L], map.ox / f, map.oy / f, map.step / f, map.step / f, out, out, clamped);
  return { bytes, map };
}

/** Where cropToBytes's square of `side` centred at (cx, cy), sampled to out x out, lies in the image. */
export function cropMap(cx: number, cy: number, side: number, out: number): CropMap {
  return { ox: cx - side / 2, oy: cy - side / 2, step: side / out };
}

/** A detector input: the window of pyramid level `level` at (x, y), or the square of `side` centred at (cx, cy). */
export type DetectorInput =
  { kind: 'window'; level: number; x: number; y: number } | { kind: 'crop'; cx: number; cy: number; side: number };

/** Writes one detector input (NHWC bytes, size x size) into `out`: the calling thread and the face workers alike. */
export function fillDetectorInput(levels: readonly RgbImage[], size: number, d: DetectorInput, out: Uint8Array): void {
  if (d.kind === 'window') windowToBytes(levels[d.level], d.x, d.y, size, out);
  else cropToBytes(levels, d.cx, d.cy, d.side, size, out);
}
