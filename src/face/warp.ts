// Warps between the photo and a face crop. Hand-written over typed arrays: the crop goes straight into GPEN's
// normalised planar tensor in one pass, and only the face's own region of the photo is ever touched.
import type { Affine } from './align.js';
import { affineScale, applyAffine, invertAffine } from './align.js';

export interface PixelsRgb {
  width: number;
  height: number;
  /** Interleaved RGB, 8-bit. */
  data: Uint8Array;
}

/**
 * Box-averages the region [x0,x1)x[y0,y1) by an integer factor k (area interpolation for downscaling), rounded to 8
 * bits (at most 1/510 off): the sampler then reads one array type only, which keeps it monomorphic and fast.
 */
function boxReduce(img: PixelsRgb, x0: number, y0: number, x1: number, y1: number, k: number): PixelsRgb {
  const w = Math.max(1, Math.ceil((x1 - x0) / k));
  const h = Math.max(1, Math.ceil((y1 - y0) / k));
  const out = new Uint8Array(w * h * 3);
  const W = img.width;
  const src = img.data;
  for (let j = 0; j < h; j++) {
    const ya = y0 + j * k;
    const yb = Math.min(ya + k, img.height);
    for (let i = 0; i < w; i++) {
      const xa = x0 + i * k;
      const xb = Math.min(xa + k, W);
      let r = 0,
        g = 0,
        b = 0,
        n = 0;
      for (let y = ya; y < yb; y++) {
        let p = (y * W + xa) * 3;
        for (let x = xa; x < xb; x++, p += 3) {
          r += src[p];
          g += src[p + 1];
          b += src[p + 2];
          n++;
        }
      }
      const o = (j * w + i) * 3;
      if (n > 0) {
        out[o] = Math.round(r / n);
        out[o + 1] = Math.round(g / n);
        out[o + 2] = Math.round(b / n);
      }
    }
  }
  return { width: w, height: h, data: out };
}

/** Bounding box of a size x size crop mapped back into the photo through `toImage`, clamped to the photo. */
export function cropFootprint(
  toImage: Affine,
  size: number,
  width: number,
  height: number,
): [number, number, number, number] {
  const cs = [
    applyAffine(toImage, [0, 0]),
    applyAffine(toImage, [size - 1, 0]),
    applyAffine(toImage, [0, size - 1]),
    applyAffine(toImage, [size - 1, size - 1]),
  ];
  const xs = cs.map((p) => p[0]);
  const ys = cs.map((p) => p[1]);
  return [
    Math.max(0, Math.floor(Math.min(...xs)) - 1),
    Math.max(0, Math.floor(Math.min(...ys)) - 1),
    Math.min(width, Math.ceil(Math.max(...xs)) + 2),
    Math.min(height, Math.ceil(Math.max(...ys)) + 2),
  ];
}

/**
 * Crops the face: out[c*S*S + v*S + u] = photo(M^-1(u, v)) mapped to [-1, 1] as GPEN wants ((x/255 - 0.5)/0.5).
 * Bilinear as the official warpAffine, outside the photo black; when the crop shrinks the face by 2x or more the
 * region is first box-reduced (area), so that nothing aliases.
 */
export function warpToTensor(img: PixelsRgb, toCrop: Affine, size: number, out: Float32Array, offset = 0): void {
  const toImage = invertAffine(toCrop);
  const scale = affineScale(toCrop);
  const k = scale < 0.5 ? Math.floor(1 / scale) : 1;
  let src: Uint8Array = img.data;
  let W = img.width,
    H = img.height;
  // photo -> source coordinates: identity, or into the reduced region
  let ox = 0,
    oy = 0;
  let inv = toImage;
  if (k > 1) {
    const [x0, y0, x1, y1] = cropFootprint(toImage, size, img.width, img.height);
    const red = boxReduce(img, x0, y0, x1, y1, k);
    src = red.data;
    W = red.width;
    H = red.height;
    // reduced pixel i covers photo pixels x0 + i*k .. x0 + i*k + k-1: centre x0 + i*k + (k-1)/2
    ox = x0 + (k - 1) / 2;
    oy = y0 + (k - 1) / 2;
    inv = [
      toImage[0] / k,
      toImage[1] / k,
      (toImage[2] - ox) / k,
      toImage[3] / k,
      toImage[4] / k,
      (toImage[5] - oy) / k,
    ];
  }
  sampleBilinear(src, W, H, inv, size, out, offset);
}

/**
 * The bilinear sampler: out planes at `offset` get src(inv(u, v)) in [-1, 1]. Interior pixels take a fast path
 * (truncation instead of floor, two lerps per channel); border pixels weigh only the taps inside (black outside).
 */
function sampleBilinear(
  src: Uint8Array,
  W: number,
  H: number,
  inv: Affine,
  size: number,
  out: Float32Array,
  offset: number,
): void {
  const plane = size * size;
  const r0 = offset,
    g0 = offset + plane,
    b0 = offset + 2 * plane;
  const [a, b, c, d, e, f] = inv;
  const s = 1 / 127.5;
  const W3 = W * 3;
  const xMax = W - 1,
    yMax = H - 1;
  // The 12 taps of the last source cell: when the crop enlarges the face (small faces), several neighbouring output
  // pixels fall in one cell and reuse them.
  let cell = -1;
  let r00 = 0,
    rdx = 0,
    r01 = 0,
    rdx1 = 0,
    g00 = 0,
    gdx = 0,
    g01 = 0,
    gdx1 = 0,
    b00 = 0,
    bdx = 0,
    b01 = 0,
    bdx1 = 0;
  for (let v = 0; v < size; v++) {
    let x = b * v + c;
    let y = e * v + f;
    let o = v * size;
    for (let u = 0; u < size; u++, o++, x += a, y += d) {
      if (x >= 0 && y >= 0 && x < xMax && y < yMax) {
        const xf = x | 0,
          yf = y | 0;
        const fx = x - xf,
          fy = y - yf;
        const p = yf * W3 + xf * 3;
        if (p !== cell) {
          cell = p;
          const q = p + W3;
          r00 = src[p];
          rdx = src[p + 3] - r00;
          r01 = src[q];
          rdx1 = src[q + 3] - r01;
          g00 = src[p + 1];
          gdx = src[p + 4] - g00;
          g01 = src[q + 1];
          gdx1 = src[q + 4] - g01;
          b00 = src[p + 2];
          bdx = src[p + 5] - b00;
          b01 = src[q + 2];
          bdx1 = src[q + 5] - b01;
        }
        let t0 = r00 + fx * rdx;
        out[r0 + o] = (t0 + fy * (r01 + fx * rdx1 - t0)) * s - 1;
        t0 = g00 + fx * gdx;
        out[g0 + o] = (t0 + fy * (g01 + fx * gdx1 - t0)) * s - 1;
        t0 = b00 + fx * bdx;
        out[b0 + o] = (t0 + fy * (b01 + fx * bdx1 - t0)) * s - 1;
        continue;
      }
      let R = 0,
        G = 0,
        B = 0;
      const xf = Math.floor(x),
        yf = Math.floor(y);
      if (xf >= -1 && yf >= -1 && xf < W && yf < H) {
        // border: taps outside the photo are black (cv2.BORDER_CONSTANT, value 0)
        const fx = x - xf,
          fy = y - yf;
        for (let t = 0; t < 4; t++) {
          const xx = xf + (t & 1),
            yy = yf + (t >> 1);
          if (xx < 0 || yy < 0 || xx >= W || yy >= H) continue;
          const w = (t & 1 ? fx : 1 - fx) * (t >> 1 ? fy : 1 - fy);
          const p = (yy * W + xx) * 3;
          R += src[p] * w;
          G += src[p + 1] * w;
          B += src[p + 2] * w;
        }
      }
      out[r0 + o] = R * s - 1;
      out[g0 + o] = G * s - 1;
      out[b0 + o] = B * s - 1;
    }
  }
}

/** A planar [-1, 1] crop as 8-bit interleaved RGB (for --save-face and the side-by-side image). */
export function tensorToPixels(t: Float32Array, size: number, offset = 0): PixelsRgb {
  const n = size * size;
  const data = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) {
      const v = (t[offset + c * n + i] + 1) * 127.5;
      data[i * 3 + c] = v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v);
    }
  }
  return { width: size, height: size, data };
}
