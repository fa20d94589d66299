// Pure geometry, tested exactly: the similarity fit, affine algebra, the reference points, and warp -> inverse warp.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Affine } from '../src/face/align.js';
import {
  FFHQ_REF_512,
  affineScale,
  alignTransform,
  applyAffine,
  invertAffine,
  referencePoints,
  umeyama,
} from '../src/face/align.js';
import type { CompositeJob } from '../src/face/paste.js';
import { Compositor, compositeRows, pasteMask, reducePlanar, smoothSmallFace } from '../src/face/paste.js';
import type { Pt } from '../src/face/types.js';
import { warpToTensor } from '../src/face/warp.js';

const similarity = (scale: number, angle: number, tx: number, ty: number): Affine => [
  scale * Math.cos(angle),
  -scale * Math.sin(angle),
  tx,
  scale * Math.sin(angle),
  scale * Math.cos(angle),
  ty,
];
const close = (a: number[], b: number[], tol: number) => a.every((v, i) => Math.abs(v - b[i]) <= tol);

describe('similarity fit (Umeyama)', () => {
  it('recovers a known similarity exactly from 3, 4 and 5 points', () => {
    const T = similarity(3.7, 0.31, -120.5, 48.25);
    const pts: Pt[] = [
      [10, 20],
      [55, 18],
      [33, 40],
      [15, 61],
      [50, 60],
    ];
    for (const n of [3, 4, 5]) {
      const src = pts.slice(0, n);
      const got = umeyama(
        src,
        src.map((p) => applyAffine(T, p)),
      );
      assert.ok(close(got, T, 1e-9), `${n} points: ${got} vs ${T}`);
    }
  });

  it('is the least-squares optimum: perturbing it raises the error', () => {
    const src: Pt[] = [
      [0, 0],
      [10, 0],
      [5, 7],
      [1, 13],
      [9, 13],
    ];
    const dst: Pt[] = [
      [100, 50],
      [121, 52],
      [110, 66],
      [101, 77],
      [119, 79],
    ];
    const m = umeyama(src, dst);
    const err = (a: Affine) =>
      src.reduce((s, p, i) => {
        const q = applyAffine(a, p);
        return s + (q[0] - dst[i][0]) ** 2 + (q[1] - dst[i][1]) ** 2;
      }, 0);
    const e0 = err(m);
    for (const d of [
      [1e-3, 0],
      [0, 1e-3],
      [-1e-3, 0],
      [0, -1e-3],
    ]) {
      const p: Affine = [m[0] + d[0], m[1] - d[1], m[2], m[3] + d[1], m[4] + d[0], m[5]];
      assert.ok(err(p) > e0);
    }
  });

  it('never reflects', () => {
    const src: Pt[] = [
      [0, 0],
      [1, 0],
      [0, 1],
    ];
    const mirrored: Pt[] = [
      [0, 0],
      [-1, 0],
      [0, 1],
    ];
    const m = umeyama(src, mirrored);
    assert.ok(m[0] * m[4] - m[1] * m[3] >= 0);
  });
});

describe('affine algebra', () => {
  it('inverts exactly and reports the scale', () => {
    const T = similarity(0.125, -1.2, 7, -3);
    const I = invertAffine(T);
    for (const p of [
      [0, 0],
      [100, -40],
      [3.5, 9.25],
    ] as Pt[])
      assert.ok(close(applyAffine(I, applyAffine(T, p)), p, 1e-9));
    assert.ok(Math.abs(affineScale(T) - 0.125) < 1e-12);
  });
});

describe('GPEN reference points', () => {
  it('are the official 512 points and scale linearly with the crop', () => {
    assert.deepEqual(referencePoints(512).left_eye, FFHQ_REF_512.left_eye);
    assert.deepEqual(referencePoints(512).mouth_right, [300.89, 366.34]);
    assert.ok(close(referencePoints(256).nose, [128.04, 151.98], 1e-9));
    assert.ok(close(referencePoints(512).mouth, [256.425, 366.585], 1e-9));
  });

  it('alignTransform maps a face placed by a known similarity back onto the reference', () => {
    const ref = referencePoints(512);
    const place = similarity(0.1, 0.2, 400, 300); // crop -> photo: a 51 px face, tilted
    const lm = {
      left_eye: applyAffine(place, ref.left_eye),
      right_eye: applyAffine(place, ref.right_eye),
      nose: applyAffine(place, ref.nose),
      mouth: applyAffine(place, ref.mouth),
    };
    assert.ok(close(alignTransform(lm, 512), invertAffine(place), 1e-7));
    const five = {
      ...lm,
      mouth: undefined,
      mouth_left: applyAffine(place, ref.mouth_left),
      mouth_right: applyAffine(place, ref.mouth_right),
    };
    assert.ok(close(alignTransform(five, 512), invertAffine(place), 1e-7));
  });
});

/** A smooth test photo (low frequencies only, so interpolation error is small and measurable). */
function smoothPhoto(w: number, h: number) {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let c = 0; c < 3; c++) {
        data[(y * w + x) * 3 + c] = Math.round(128 + 90 * Math.sin(x / (9 + c) + c) * Math.cos(y / (11 + 2 * c)));
      }
  return { width: w, height: h, data };
}

function psnr(a: Uint8Array, b: Uint8Array, where: (i: number) => boolean): number {
  let se = 0,
    n = 0;
  for (let i = 0; i < a.length; i++)
    if (where(i)) {
      se += (a[i] - b[i]) ** 2;
      n++;
    }
  return se === 0 ? Infinity : 10 * Math.log10((255 * 255 * n) / se);
}

describe('warp and inverse warp', () => {
  for (const [label, scale] of [
    ['upscaling a small face', 4.1],
    ['downscaling a large face', 0.45],
    ['near 1:1', 1.07],
  ] as const) {
    it(`crop then paste back is the identity within interpolation error (${label})`, () => {
      const img = smoothPhoto(300, 260);
      const size = 128;
      // face centred in the photo, crop covers ~size/scale photo pixels
      const toCrop = umeyama(
        [
          [150, 130],
          [150 + 10, 130],
        ],
        [
          [64, 64],
          [64 + 10 * scale * Math.cos(0.1), 64 + 10 * scale * Math.sin(0.1)],
        ],
      );
      const t = new Float32Array(3 * size * size);
      warpToTensor(img, toCrop, size, t);
      const comp = new Compositor(img.width, img.height);
      comp.add(t, size, toCrop, pasteMask(size));
      const out = comp.composite(img.data);
      // untouched outside the mask, bit for bit
      for (let p = 0; p < img.width * img.height; p++)
        if (comp.mask[p] === 0) for (let c = 0; c < 3; c++) assert.equal(out[p * 3 + c], img.data[p * 3 + c]);
      const inside = psnr(out, img.data, (i) => comp.mask[Math.floor(i / 3)] > 0.5);
      assert.ok(inside > 38, `PSNR inside the mask ${inside.toFixed(1)} dB`);
      assert.ok(
        comp.mask.some((v) => v > 0.99),
        'the mask reaches full strength',
      );
    });
  }

  it('puts the crop where the transform says', () => {
    const img = { width: 64, height: 64, data: new Uint8Array(64 * 64 * 3) };
    img.data.set([255, 255, 255], (20 * 64 + 30) * 3); // one white pixel at (30, 20)
    const toCrop: Affine = [1, 0, 2, 0, 1, 5]; // shift by (2, 5)
    const t = new Float32Array(3 * 64 * 64);
    warpToTensor(img, toCrop, 64, t);
    assert.equal(t[25 * 64 + 32], 1);
    assert.equal(t[25 * 64 + 31], -1);
  });
});

describe('compositing', () => {
  it("faces far apart in a wide photo: the composite (read over the rows' spans the patches reached) equals the blend computed over every pixel", () => {
    const img = smoothPhoto(400, 200);
    const size = 64;
    const comp = new Compositor(img.width, img.height);
    // two faces at 1:1, each crop one flat value: the face plane is (0.5 + 1) * 127.5 wherever a mask reaches
    for (const [x, y] of [
      [60, 60],
      [330, 150],
    ]) {
      const toCrop = umeyama(
        [
          [x, y],
          [x + 10, y],
        ],
        [
          [32, 32],
          [42, 32],
        ],
      );
      comp.add(new Float32Array(3 * size * size).fill(0.5), size, toCrop, pasteMask(size));
    }
    const out = comp.composite(img.data);
    let blended = 0;
    for (let p = 0; p < img.width * img.height; p++) {
      const a = comp.mask[p];
      if (a > 0) blended++;
      for (let c = 0; c < 3; c++) {
        const v = img.data[p * 3 + c] * (1 - a) + 191.25 * a;
        assert.equal(
          out[p * 3 + c],
          a === 0 ? img.data[p * 3 + c] : Math.min(255, Math.max(0, Math.round(v))),
          `pixel ${p % img.width}, ${Math.floor(p / img.width)}`,
        );
      }
    }
    assert.ok(blended > 2 * 50 * 50 && blended < 2 * 70 * 70, `${blended} pixels blended`);
  });

  it('the composite in bands of rows (as the face workers make it) gives the same bytes, bands covering every row once', async () => {
    const img = smoothPhoto(300, 211);
    const comp = new Compositor(img.width, img.height);
    for (const [x, y] of [
      [40, 30],
      [250, 180],
      [150, 100],
    ]) {
      comp.add(
        new Float32Array(3 * 64 * 64).fill(-0.25),
        64,
        umeyama(
          [
            [x, y],
            [x + 12, y],
          ],
          [
            [32, 32],
            [42, 32],
          ],
        ),
        pasteMask(64),
      );
    }
    const want = comp.composite(img.data);
    for (const threads of [1, 3, 8]) {
      const seen: CompositeJob[] = [];
      const got = await comp.compositeOn(
        {
          threads,
          composite: async (jobs) => {
            seen.push(...jobs);
            jobs.forEach(compositeRows);
          },
        },
        img.data,
        new Uint8Array(img.data.length).fill(7),
      );
      assert.deepEqual(got, want, `${threads} bands`);
      assert.ok(seen.length >= 1 && seen.length <= threads, `${seen.length} bands for ${threads} threads`);
      assert.deepEqual(seen.map((j) => [j.y0, j.y1]).flat(), [
        0,
        ...seen.slice(0, -1).flatMap((j) => [j.y1, j.y1]),
        img.height,
      ]);
    }
  });
});

describe('paste mask and smoothing', () => {
  it('the mask is 0..1, symmetric, full in the middle and faint at the edges', () => {
    const m = pasteMask(512);
    assert.ok(Math.abs(m[256 * 512 + 256] - 1) < 1e-6);
    assert.ok(m[0] < 0.02 && m[0] > 0); // the official mask keeps a faint 1-2% at the crop's corners
    assert.ok(Math.abs(m[100 * 512 + 30] - m[100 * 512 + 482]) < 1e-3); // the square spans 26..486: symmetric about 256 away from the borders
    assert.ok(m.every((v) => v >= 0 && v <= 1 + 1e-6));
  });
  it('the mask equals the official recipe: the square blurred twice in 2-D (reflect-101), at 128 and 512', () => {
    for (const size of [128, 512]) {
      const sc = size / 512;
      const r = Math.max(1, Math.round(50 * sc)),
        sigma = 11 * sc;
      const k = Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
      const ks = k.reduce((a, b) => a + b, 0);
      const refl = (i: number) => {
        let j = i;
        while (j < 0 || j >= size) j = j < 0 ? -j : 2 * (size - 1) - j;
        return j;
      };
      let m = new Float64Array(size * size);
      const lo = Math.round(26 * sc),
        hi = Math.round(486 * sc);
      for (let y = lo; y <= hi; y++) for (let x = lo; x <= hi; x++) m[y * size + x] = 1;
      const pass = (src: Float64Array, horizontal: boolean) => {
        const out = new Float64Array(size * size);
        for (let y = 0; y < size; y++)
          for (let x = 0; x < size; x++) {
            let acc = 0;
            for (let t = -r; t <= r; t++)
              acc += ((horizontal ? src[y * size + refl(x + t)] : src[refl(y + t) * size + x]) * k[t + r]) / ks;
            out[y * size + x] = acc;
          }
        return out;
      };
      for (let i = 0; i < 2; i++) m = pass(pass(m, true), false);
      const got = pasteMask(size);
      let worst = 0;
      for (let i = 0; i < m.length; i++) worst = Math.max(worst, Math.abs(got[i] - m[i]));
      assert.ok(worst < 1e-6, `size ${size}: max difference ${worst}`);
    }
  });
  it('small-face smoothing keeps a flat crop flat and softens an edge', () => {
    const size = 8;
    const t = new Float32Array(3 * size * size).fill(0.25);
    smoothSmallFace(t, size);
    assert.ok(t.every((v) => Math.abs(v - 0.25) < 1e-7));
    const e = new Float32Array(3 * size * size);
    for (let y = 0; y < size; y++) for (let x = 4; x < size; x++) e[y * size + x] = 1;
    smoothSmallFace(e, size);
    assert.ok(Math.abs(e[3 * size + 3] - 0.25) < 1e-7 && Math.abs(e[3 * size + 4] - 0.75) < 1e-7);
  });
  it('reducing with the smoothing folded in equals smoothing at full size, then box-reducing', () => {
    const size = 40;
    const plane = size * size;
    let seed = 11;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
    const t = Float32Array.from({ length: 3 + 3 * plane }, rnd);
    for (const k of [2, 3, 5, 7]) {
      const folded = reducePlanar(t, size, 3, k, true);
      const smoothed = new Float32Array(t);
      smoothSmallFace(smoothed, size, 3);
      const direct = reducePlanar(smoothed, size, 3, k, false);
      assert.equal(folded.size, Math.floor(size / k));
      let worst = 0;
      for (let i = 0; i < direct.data.length; i++) worst = Math.max(worst, Math.abs(folded.data[i] - direct.data[i]));
      assert.ok(worst < 1e-5, `k=${k}: max abs difference ${worst}`);
    }
    // and the plain box is the mean of each k x k block
    const box = reducePlanar(t, size, 3, 4);
    let m = 0;
    for (let y = 4; y < 8; y++) for (let x = 8; x < 12; x++) m += t[3 + plane + y * size + x] / 16;
    assert.ok(Math.abs(box.data[box.size * box.size + 1 * box.size + 2] - m) < 1e-6);
  });
  it('small-face smoothing equals the direct 3x3 filter with reflect-101 edges (cv2.filter2D), at an offset', () => {
    const size = 13;
    const plane = size * size;
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
    const t = Float32Array.from({ length: 5 + 3 * plane }, rnd);
    const ref = new Float32Array(t);
    const r = (i: number) => (i < 0 ? -i : i >= size ? 2 * size - 2 - i : i);
    const k = [1, 2, 1];
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < size; y++)
        for (let x = 0; x < size; x++) {
          let v = 0;
          for (let j = -1; j <= 1; j++)
            for (let i = -1; i <= 1; i++)
              v += (k[j + 1] * k[i + 1] * t[5 + c * plane + r(y + j) * size + r(x + i)]) / 16;
          ref[5 + c * plane + y * size + x] = v;
        }
    }
    smoothSmallFace(t, size, 5);
    let worst = 0;
    for (let i = 0; i < t.length; i++) worst = Math.max(worst, Math.abs(t[i] - ref[i]));
    assert.ok(worst < 1e-6, `max abs difference ${worst}`);
  });
});
