// Image agreement: PSNR and SSIM (Wang, Bovik, Sheikh, Simoncelli 2004: Gaussian window 11x11, sigma 1.5,
// K1 = 0.01, K2 = 0.03, mean over the windows that fit inside the image, averaged over channels), and a difference
// heat map. Hand-written: a few separable sums over interleaved 8-bit pixels, no image library needed.

export interface Rgb8 {
  width: number;
  height: number;
  /** Interleaved, `channels` per pixel, 8-bit. */
  data: Uint8Array;
  channels: number;
}

export interface Region {
  x: number;
  y: number;
  width: number;
  height: number;
}

function checkSame(a: Rgb8, b: Rgb8): void {
  if (a.width !== b.width || a.height !== b.height || a.channels !== b.channels) {
    throw new Error(
      `images differ in shape: ${a.width}x${a.height}x${a.channels} vs ${b.width}x${b.height}x${b.channels}`,
    );
  }
}

/** Clamps a region to the image (rounded outwards); null when nothing is left. */
export function clampRegion(r: Region, width: number, height: number): Region | null {
  const x0 = Math.max(0, Math.floor(r.x)),
    y0 = Math.max(0, Math.floor(r.y));
  const x1 = Math.min(width, Math.ceil(r.x + r.width)),
    y1 = Math.min(height, Math.ceil(r.y + r.height));
  return x1 > x0 && y1 > y0 ? { x: x0, y: y0, width: x1 - x0, height: y1 - y0 } : null;
}

export function crop(img: Rgb8, r: Region): Rgb8 {
  const c = img.channels;
  const out = new Uint8Array(r.width * r.height * c);
  for (let y = 0; y < r.height; y++)
    out.set(
      img.data.subarray(((r.y + y) * img.width + r.x) * c, ((r.y + y) * img.width + r.x + r.width) * c),
      y * r.width * c,
    );
  return { width: r.width, height: r.height, channels: c, data: out };
}

/** PSNR in dB over all samples (Infinity when identical); `peak` is the largest value (255 for 8-bit). */
export function psnr(a: Rgb8, b: Rgb8, peak = 255): number {
  checkSame(a, b);
  return psnrFloat(a.data, b.data, peak);
}

/** PSNR of two numeric arrays over a value range (2 for [-1, 1], 255 for 8-bit); Infinity when equal. */
export function psnrFloat(a: ArrayLike<number>, b: ArrayLike<number>, range = 2): number {
  if (a.length !== b.length) throw new Error(`arrays differ in length: ${a.length} vs ${b.length}`);
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i] - b[i]) ** 2;
  return se === 0 ? Infinity : 10 * Math.log10((range * range) / (se / a.length));
}

export const SSIM_WINDOW = 11;
export const SSIM_SIGMA = 1.5;

function gaussian(size: number, sigma: number): Float64Array {
  const g = new Float64Array(size);
  const c = (size - 1) / 2;
  let s = 0;
  for (let i = 0; i < size; i++) s += g[i] = Math.exp(-((i - c) ** 2) / (2 * sigma * sigma));
  for (let i = 0; i < size; i++) g[i] /= s;
  return g;
}

/** Separable 'valid' filtering of a w x h plane: (w-k+1) x (h-k+1). */
function filterValid(src: Float64Array, w: number, h: number, g: Float64Array): Float64Array {
  const k = g.length,
    ow = w - k + 1,
    oh = h - k + 1;
  const tmp = new Float64Array(ow * h);
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let x = 0; x < ow; x++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += g[i] * src[row + x + i];
      tmp[y * ow + x] = s;
    }
  }
  const out = new Float64Array(ow * oh);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += g[i] * tmp[(y + i) * ow + x];
      out[y * ow + x] = s;
    }
  }
  return out;
}

/**
 * Mean SSIM (Wang et al. 2004) over the channels; images smaller than the window use a window of their smaller
 * side (odd), as the reference code does for tiny crops.
 */
export function ssim(a: Rgb8, b: Rgb8, peak = 255): number {
  checkSame(a, b);
  const { width: w, height: h, channels: ch } = a;
  let k = Math.min(SSIM_WINDOW, w, h);
  if (k % 2 === 0) k--;
  const g = gaussian(k, SSIM_SIGMA);
  const c1 = (0.01 * peak) ** 2,
    c2 = (0.03 * peak) ** 2;
  const n = w * h;
  let total = 0;
  for (let c = 0; c < ch; c++) {
    const x = new Float64Array(n),
      y = new Float64Array(n),
      xx = new Float64Array(n),
      yy = new Float64Array(n),
      xy = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const p = a.data[i * ch + c],
        q = b.data[i * ch + c];
      x[i] = p;
      y[i] = q;
      xx[i] = p * p;
      yy[i] = q * q;
      xy[i] = p * q;
    }
    const mx = filterValid(x, w, h, g),
      my = filterValid(y, w, h, g);
    const sxx = filterValid(xx, w, h, g),
      syy = filterValid(yy, w, h, g),
      sxy = filterValid(xy, w, h, g);
    let s = 0;
    for (let i = 0; i < mx.length; i++) {
      const ux = mx[i],
        uy = my[i];
      const vx = sxx[i] - ux * ux,
        vy = syy[i] - uy * uy,
        cxy = sxy[i] - ux * uy;
      s += ((2 * ux * uy + c1) * (2 * cxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
    }
    total += s / mx.length;
  }
  return total / ch;
}

/** A heat map of |a - b| (mean over channels), `gain` times amplified: black (equal) to red to yellow to white. */
export function diffHeatmap(a: Rgb8, b: Rgb8, gain = 8): Rgb8 {
  checkSame(a, b);
  const n = a.width * a.height,
    ch = a.channels;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    let d = 0;
    for (let c = 0; c < ch; c++) d += Math.abs(a.data[i * ch + c] - b.data[i * ch + c]);
    const v = Math.min(1, (d / ch / 255) * gain) * 3;
    out[i * 3] = Math.round(Math.min(1, v) * 255);
    out[i * 3 + 1] = Math.round(Math.min(1, Math.max(0, v - 1)) * 255);
    out[i * 3 + 2] = Math.round(Math.min(1, Math.max(0, v - 2)) * 255);
  }
  return { width: a.width, height: a.height, channels: 3, data: out };
}
