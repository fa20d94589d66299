// PSNR and SSIM against answers known in closed form, and SSIM against a direct (non-separable) evaluation of
// Wang et al.'s definition: Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, valid windows, mean over channels.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Rgb8 } from '../src/metrics/quality.js';
import { clampRegion, crop, diffHeatmap, psnr, psnrFloat, ssim } from '../src/metrics/quality.js';

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}
const img = (w: number, h: number, ch: number, f: (i: number) => number): Rgb8 => ({
  width: w,
  height: h,
  channels: ch,
  data: Uint8Array.from({ length: w * h * ch }, (_, i) => f(i)),
});

/** SSIM by its definition: a 2-D Gaussian window at every valid position, each statistic summed directly. */
function ssimDirect(a: Rgb8, b: Rgb8): number {
  const k = 11,
    s = 1.5,
    c1 = (0.01 * 255) ** 2,
    c2 = (0.03 * 255) ** 2;
  const g1 = Array.from({ length: k }, (_, i) => Math.exp(-((i - 5) ** 2) / (2 * s * s)));
  const sum = g1.reduce((x, y) => x + y, 0) ** 2;
  let total = 0;
  for (let c = 0; c < a.channels; c++) {
    let acc = 0,
      count = 0;
    for (let y0 = 0; y0 + k <= a.height; y0++) {
      for (let x0 = 0; x0 + k <= a.width; x0++) {
        let ux = 0,
          uy = 0,
          xx = 0,
          yy = 0,
          xy = 0;
        for (let j = 0; j < k; j++) {
          for (let i = 0; i < k; i++) {
            const wgt = (g1[i] * g1[j]) / sum;
            const idx = ((y0 + j) * a.width + x0 + i) * a.channels + c;
            const p = a.data[idx],
              q = b.data[idx];
            ux += wgt * p;
            uy += wgt * q;
            xx += wgt * p * p;
            yy += wgt * q * q;
            xy += wgt * p * q;
          }
        }
        acc +=
          ((2 * ux * uy + c1) * (2 * (xy - ux * uy) + c2)) /
          ((ux * ux + uy * uy + c1) * (xx - ux * ux + yy - uy * uy + c2));
        count++;
      }
    }
    total += acc / count;
  }
  return total / a.channels;
}

describe('PSNR', () => {
  it('is infinite for equal images and 10 log10(255^2 / d^2) for a uniform offset d', () => {
    const r = seeded(1);
    const a = img(16, 9, 3, () => 10 + Math.floor(r() * 200));
    assert.equal(psnr(a, a), Infinity);
    const b = { ...a, data: a.data.map((v) => v + 5) };
    assert.ok(Math.abs(psnr(a, b) - 10 * Math.log10(255 ** 2 / 25)) < 1e-12);
    assert.ok(Math.abs(psnrFloat([0, 0, 0, 0], [0.1, -0.1, 0.1, -0.1], 2) - 10 * Math.log10(4 / 0.01)) < 1e-9);
    assert.throws(
      () =>
        psnr(
          a,
          img(16, 8, 3, () => 0),
        ),
      /differ in shape/,
    );
  });
});

describe('SSIM', () => {
  it('is 1 for equal images and the luminance term alone for two constant images', () => {
    const r = seeded(2);
    const a = img(24, 20, 3, () => Math.floor(r() * 256));
    assert.ok(Math.abs(ssim(a, a) - 1) < 1e-12);
    const c1 = (0.01 * 255) ** 2;
    const got = ssim(
      img(15, 15, 1, () => 100),
      img(15, 15, 1, () => 120),
    );
    assert.ok(Math.abs(got - (2 * 100 * 120 + c1) / (100 ** 2 + 120 ** 2 + c1)) < 1e-12, `${got}`);
  });

  it('equals the direct evaluation of the definition on random and structured images', () => {
    const r = seeded(3);
    const a = img(23, 17, 3, () => Math.floor(r() * 256));
    const noisy = { ...a, data: a.data.map((v) => Math.max(0, Math.min(255, v + Math.round((r() - 0.5) * 60)))) };
    const inverted = { ...a, data: a.data.map((v) => 255 - v) };
    for (const b of [noisy, inverted]) {
      const want = ssimDirect(a, b);
      assert.ok(Math.abs(ssim(a, b) - want) < 1e-9, `${ssim(a, b)} vs ${want}`);
    }
    assert.ok(ssim(a, inverted) < 0, 'an inverted image is anti-correlated');
    const s = ssim(a, noisy);
    assert.ok(s > 0.9 && s < 0.99, `noise lowers SSIM a little: ${s}`);
  });
});

describe('regions and heat maps', () => {
  it('crops a clamped region and maps differences to heat', () => {
    const a = img(10, 8, 3, (i) => i % 256);
    const reg = clampRegion({ x: -2.5, y: 6.2, width: 5, height: 10 }, 10, 8)!;
    assert.deepEqual(reg, { x: 0, y: 6, width: 3, height: 2 });
    assert.equal(clampRegion({ x: 20, y: 0, width: 5, height: 5 }, 10, 8), null);
    const c = crop(a, reg);
    assert.deepEqual([...c.data.subarray(0, 3)], [...a.data.subarray(6 * 30, 6 * 30 + 3)]);
    const h = diffHeatmap(a, a);
    assert.ok(h.data.every((v) => v === 0));
    const far = diffHeatmap(
      img(1, 1, 3, () => 0),
      img(1, 1, 3, () => 255),
    );
    assert.deepEqual([...far.data], [255, 255, 255]);
  });
});
