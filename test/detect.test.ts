// Face detection: the pure pieces (resampling, tiling, weighted NMS) exactly, then BlazeFace end to end on the shared
// photos (a 1927 group photo, FFHQ portraits, a grey portrait, a rotated phone selfie) and on images with no face.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { GpenLabError } from '../src/errors.js';
import type { Candidate } from '../src/face/blazeface.js';
import { createBlazeFace, iou, tilePositions, weightedNms } from '../src/face/blazeface.js';
import { FaceWorkers } from '../src/face/face-workers.js';
import { cropToBytes, halve, resize, windowToBytes } from '../src/face/resample.js';
import type { DetectedFace, FaceDetector } from '../src/face/types.js';
import type { RgbImage } from '../src/io/image.js';
import { readRgb } from '../src/io/image.js';
import { IMAGES } from './fixtures.js';

async function photo(name: string): Promise<RgbImage> {
  const p = path.join(IMAGES, name);
  if (!existsSync(p))
    throw new Error(`Shared image missing: ${p}. The detection tests need ../shared/images beside the repository.`);
  return readRgb(p);
}

const rgb = (width: number, height: number, px: (x: number, y: number) => [number, number, number]): RgbImage => {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(px(x, y), (y * width + x) * 3);
  return { width, height, data };
};

/** Deterministic PRNG (mulberry32), so the synthetic image is the same on every run. */
function prng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** No face: smooth colour gradients, pixel noise, and discs, rectangles and triangles from 6 to 150 px. */
function faceFree(width: number, height: number, seed: number): RgbImage {
  const r = prng(seed);
  const c0 = [r() * 255, r() * 255, r() * 255];
  const c1 = [r() * 255, r() * 255, r() * 255];
  const img = rgb(width, height, (x, y) => {
    const t = (x / width + y / height) / 2 + 0.1 * Math.sin(x / 37) * Math.cos(y / 53);
    return [0, 1, 2].map((c) => Math.max(0, Math.min(255, c0[c] * (1 - t) + c1[c] * t + (r() - 0.5) * 40))) as [
      number,
      number,
      number,
    ];
  });
  for (let n = 0; n < 120; n++) {
    const col = [r() * 255, r() * 255, r() * 255];
    const cx = r() * width,
      cy = r() * height,
      size = 3 + r() * r() * 75,
      kind = Math.floor(r() * 3);
    for (let y = Math.max(0, Math.floor(cy - size)); y < Math.min(height, cy + size); y++) {
      for (let x = Math.max(0, Math.floor(cx - size)); x < Math.min(width, cx + size); x++) {
        const dx = (x - cx) / size,
          dy = (y - cy) / size;
        const inside =
          kind === 0
            ? dx * dx + dy * dy < 1
            : kind === 1
              ? Math.abs(dx) < 0.8 && Math.abs(dy) < 0.5
              : dy > -0.8 && Math.abs(dx) < (dy + 0.8) / 1.6;
        if (inside) img.data.set(col, (y * width + x) * 3);
      }
    }
  }
  return img;
}

const width = (f: DetectedFace): number => f.box[2] - f.box[0];
const boxIou = (a: DetectedFace, b: DetectedFace): number => {
  const ix = Math.min(a.box[2], b.box[2]) - Math.max(a.box[0], b.box[0]);
  const iy = Math.min(a.box[3], b.box[3]) - Math.max(a.box[1], b.box[1]);
  if (ix <= 0 || iy <= 0) return 0;
  return (ix * iy) / (width(a) * (a.box[3] - a.box[1]) + width(b) * (b.box[3] - b.box[1]) - ix * iy);
};
const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const scores = (faces: DetectedFace[]): string =>
  `scores ${faces.length ? `${Math.min(...faces.map((f) => f.score)).toFixed(3)} min, ${median(faces.map((f) => f.score)).toFixed(3)} median` : 'none'}`;

/** The points of an upright face: eyes as seen, eyes above nose above mouth, all in (or near) the box. */
function assertUpright(f: DetectedFace, what: string): void {
  const { left_eye: le, right_eye: re, nose, mouth } = f.landmarks;
  assert.ok(mouth, `${what}: BlazeFace gives the mouth centre`);
  assert.ok(le[0] < re[0], `${what}: left_eye ${le} is left of right_eye ${re}`);
  assert.ok(
    Math.max(le[1], re[1]) < nose[1] && nose[1] < mouth[1],
    `${what}: eyes ${le}, ${re} above nose ${nose} above mouth ${mouth}`,
  );
  const eyes = Math.hypot(re[0] - le[0], re[1] - le[1]);
  assert.ok(
    eyes > 0.25 * width(f) && eyes < 0.65 * width(f),
    `${what}: eye distance ${eyes.toFixed(1)} for a box ${width(f).toFixed(1)} wide`,
  );
  const [x1, y1, x2, y2] = f.box;
  const slack = 0.1 * width(f);
  for (const p of [le, re, nose, mouth])
    assert.ok(
      p[0] > x1 - slack && p[0] < x2 + slack && p[1] > y1 - slack && p[1] < y2 + slack,
      `${what}: ${p} inside ${f.box}`,
    );
  assert.equal(f.raw.length, 6);
  assert.deepEqual(f.raw.slice(0, 4), [le, re, nose, mouth]);
}

describe('resampling (pure)', () => {
  const ramp = rgb(4, 2, (x, y) => [10 * (x + 4 * y + 1), 0, 255]);

  it('halves with a 2x2 box filter', () => {
    assert.deepEqual([...halve(ramp).data], [35, 0, 255, 55, 0, 255]);
    // odd and one-pixel sides: output (x, y) averages source columns 2x, 2x+1 and rows 2y, 2y+1, clamped to the image
    for (const [w, h] of [
      [1, 5],
      [5, 1],
      [3, 3],
      [7, 4],
      [6, 6],
      [2, 1],
    ]) {
      const img = rgb(w, h, (x, y) => [(x * 53 + y * 7) & 255, (x * 11 + y * 97) & 255, (x * y * 31) & 255]);
      const got = halve(img);
      const ow = Math.max(1, w >> 1),
        oh = Math.max(1, h >> 1);
      assert.deepEqual([got.width, got.height], [ow, oh]);
      const at = (x: number, y: number, c: number) => img.data[(Math.min(y, h - 1) * w + Math.min(x, w - 1)) * 3 + c];
      for (let y = 0; y < oh; y++)
        for (let x = 0; x < ow; x++)
          for (let c = 0; c < 3; c++) {
            assert.equal(
              got.data[(y * ow + x) * 3 + c],
              (at(2 * x, 2 * y, c) +
                at(2 * x + 1, 2 * y, c) +
                at(2 * x, 2 * y + 1, c) +
                at(2 * x + 1, 2 * y + 1, c) +
                2) >>
                2,
              `${w}x${h} at ${x}, ${y}, ${c}`,
            );
          }
    }
    assert.deepEqual(halve(rgb(1, 1, () => [7, 8, 9])), { width: 1, height: 1, data: Uint8Array.from([7, 8, 9]) });
  });

  it('shrinks by exact area averaging, enlarges bilinearly and keeps the size when asked', () => {
    assert.deepEqual([...resize(ramp, 2, 1).data], [35, 0, 255, 55, 0, 255]);
    assert.deepEqual([...resize(ramp, 4, 2).data], [...ramp.data]);
    // a 3 -> 2 shrink: each output pixel covers 1.5 source pixels
    assert.deepEqual(
      [
        ...resize(
          rgb(3, 1, (x) => [x * 90, 0, 0]),
          2,
          1,
        ).data,
      ],
      [30, 0, 0, 150, 0, 0],
    );
    const up = resize(ramp, 8, 4);
    assert.deepEqual([up.data[0], up.data[3], up.data[21]], [10, 13, 40]); // edge pixels held, 10*.75 + 20*.25 between
  });

  it("copies a window as bytes with black beyond the image, and over a reused buffer's old values", () => {
    const img = rgb(2, 2, (x, y) => [255, 10 * x + 100 * y, 51]);
    const t = windowToBytes(img, -1, -1, 3, new Uint8Array(27).fill(7));
    assert.deepEqual(
      [...t],
      [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 0, 51, 255, 10, 51, 0, 0, 0, 255, 100, 51, 255, 110, 51],
    );
    // inside the image: the pixels as they are; wholly outside: black
    assert.deepEqual([...windowToBytes(img, 1, 0, 1)], [255, 10, 51]);
    assert.deepEqual([...windowToBytes(img, 5, 5, 2, new Uint8Array(12).fill(9))], new Array(12).fill(0));
  });

  it('crops a square around a point, reading a coarser level when shrinking', () => {
    const img = rgb(64, 64, (x, y) => [x * 4, y * 4, 128]);
    const levels = [img, halve(img), halve(halve(img))];
    const { bytes, map } = cropToBytes(levels, 32, 32, 32, 16);
    assert.deepEqual(map, { ox: 16, oy: 16, step: 2 });
    // output pixel (0, 0) averages source x, y in [16, 18): 4 * 16.5 = 66; (1, 0) x in [18, 20): 74
    assert.deepEqual([...bytes.slice(0, 6)], [66, 66, 128, 74, 66, 128]);
    // an enlargement x2 from x = 28.5: output pixels 0 and 1 sample source x 28.25 and 28.75 (4x there: 113, 115)
    const up = cropToBytes(levels, 32.5, 32, 8, 16).bytes;
    assert.deepEqual([up[0], up[3]], [113, 115]);
    // samples between bytes are rounded, not truncated: pixels 0 and 1 enlarged x2 read 0, 0.25, 0.75, 1
    const two = rgb(2, 2, (x) => [x, 0, 0]);
    assert.deepEqual(
      [0, 1, 2, 3].map((i) => cropToBytes([two], 1, 1, 2, 4).bytes[3 * i]),
      [0, 0, 1, 1],
    );
    assert.deepEqual(
      [...cropToBytes(levels, -100, -100, 20, 4, new Uint8Array(48).fill(3)).bytes].every((v) => v === 0),
      true,
    );
  });
});

describe('tiling and weighted NMS (pure)', () => {
  it('tiles every axis from edge to edge with at least 128 px of overlap', () => {
    assert.deepEqual(tilePositions(256), [0]);
    assert.deepEqual(tilePositions(100), [-78]);
    for (const len of [257, 500, 1328, 4032]) {
      const pos = tilePositions(len);
      assert.equal(pos[0], 0);
      assert.equal(pos[pos.length - 1] + 256, len);
      for (let i = 1; i < pos.length; i++) assert.ok(pos[i] - pos[i - 1] <= 128, `${len}: step ${pos[i] - pos[i - 1]}`);
    }
  });

  it('merges overlapping detections weighted by score and keeps the best score', () => {
    const det = (cx: number, score: number): Candidate => ({
      cx,
      cy: 50,
      w: 20,
      h: 20,
      kp: new Float64Array(12).fill(cx),
      score,
    });
    const merged = weightedNms([det(50, 0.6), det(52, 0.9), det(200, 0.7)]);
    assert.equal(merged.length, 2);
    assert.equal(merged[0].score, 0.9);
    assert.ok(Math.abs(merged[0].cx - (52 * 0.9 + 50 * 0.6) / 1.5) < 1e-9);
    assert.ok(Math.abs(merged[0].kp[11] - merged[0].cx) < 1e-9);
    assert.deepEqual([merged[1].cx, merged[1].score], [200, 0.7]);
    assert.equal(iou(det(0, 1), det(10, 1)), 1 / 3);
  });
});

describe('BlazeFace on photos', () => {
  let detector: FaceDetector;
  before(async () => {
    detector = await createBlazeFace({ provider: 'cpu' });
  });
  after(async () => {
    await detector.release();
  });

  it('finds the small faces of the 1927 Solvay group photo, each once, with no false positive', async (t) => {
    const img = await photo('Solvay_conference_1927.png');
    await detector.detect(img); // warm-up: the first runs of a session are slower
    const t0 = performance.now();
    const faces = await detector.detect(img);
    const ms = performance.now() - t0;
    t.diagnostic(
      `Solvay 1927 (${img.width}x${img.height}): ${faces.length} faces of 29 in ${ms.toFixed(0)} ms; ${scores(faces)}`,
    );
    assert.ok(faces.length >= 25 && faces.length <= 29, `${faces.length} faces (29 people)`);
    for (const f of faces) {
      assert.ok(
        width(f) >= 25 && width(f) <= 120,
        `box ${f.box.map((v) => v.toFixed(0))} is ${width(f).toFixed(0)} px wide`,
      );
      // every face is a head in the three rows of people, none in the legs, hands or hats below y = 300
      assert.ok(
        f.box[3] < 300,
        `a face at ${f.box.map((v) => v.toFixed(0))}: only legs, hands and hats are below y = 300`,
      );
      assertUpright(f, `Solvay face at ${f.box.map((v) => v.toFixed(0))}`);
    }
    for (let i = 0; i < faces.length; i++)
      for (let j = i + 1; j < faces.length; j++)
        assert.ok(boxIou(faces[i], faces[j]) <= 0.3, `faces ${i} and ${j} overlap`);
    for (let i = 1; i < faces.length; i++)
      assert.ok(faces[i - 1].score >= faces[i].score, 'sorted by score, highest first');
  });

  for (const name of ['00002.png', '00005.png', '00009.png']) {
    it(`finds the one face of the FFHQ portrait ${name}, its eyes where the FFHQ alignment puts them`, async (t) => {
      const faces = await detector.detect(await photo(name));
      t.diagnostic(`${name}: ${faces.length} face; ${scores(faces)}`);
      assert.equal(faces.length, 1);
      const f = faces[0];
      assertUpright(f, name);
      const { left_eye: le, right_eye: re } = f.landmarks;
      assert.ok(Math.hypot(le[0] - 385, le[1] - 480) < 40, `left eye ${le.map((v) => v.toFixed(0))} near (385, 480)`);
      assert.ok(Math.hypot(re[0] - 640, re[1] - 480) < 40, `right eye ${re.map((v) => v.toFixed(0))} near (640, 480)`);
      assert.ok(width(f) > 450 && width(f) < 750, `box ${width(f).toFixed(0)} px wide`);
    });
  }

  it('finds the one face of a grey (R=G=B) portrait', async (t) => {
    const img = await photo('106000_gray.png');
    for (let i = 0; i < img.data.length; i += 3)
      assert.ok(img.data[i] === img.data[i + 1] && img.data[i] === img.data[i + 2], 'the image is grey');
    const faces = await detector.detect(img);
    t.diagnostic(`106000_gray.png: ${faces.length} face; ${scores(faces)}`);
    assert.equal(faces.length, 1);
    assertUpright(faces[0], '106000_gray.png');
    // a colour portrait made grey is still found, at the same place
    const colour = await photo('00005.png');
    const found = await detector.detect(colour);
    for (let i = 0; i < colour.data.length; i += 3)
      colour.data[i] =
        colour.data[i + 1] =
        colour.data[i + 2] =
          Math.round((colour.data[i] + colour.data[i + 1] + colour.data[i + 2]) / 3);
    const grey = await detector.detect(colour);
    assert.equal(grey.length, 1);
    assert.ok(boxIou(grey[0], found[0]) > 0.8);
  });

  it('finds the one face of a phone selfie stored sideways (EXIF orientation 6)', async (t) => {
    const img = await photo('selfie_20200320.jpg');
    assert.deepEqual([img.width, img.height], [3024, 4032], 'readRgb applied the orientation');
    const t0 = performance.now();
    const faces = await detector.detect(img);
    t.diagnostic(
      `selfie_20200320.jpg (${img.width}x${img.height}): ${faces.length} face in ${(performance.now() - t0).toFixed(0)} ms; ${scores(faces)}`,
    );
    assert.equal(faces.length, 1);
    assertUpright(faces[0], 'selfie');
    assert.ok(width(faces[0]) > 1000, `a face filling the frame, ${width(faces[0]).toFixed(0)} px wide`);
  });

  it('finds no face where there is none', async () => {
    for (const [w, h, seed] of [
      [800, 600, 1],
      [640, 900, 2],
      [1500, 400, 3],
    ]) {
      const faces = await detector.detect(faceFree(w, h, seed));
      assert.deepEqual(
        faces.map((f) => `${f.score.toFixed(2)} at ${f.box.map((v) => v.toFixed(0))}`),
        [],
        `synthetic ${w}x${h} (seed ${seed})`,
      );
    }
    assert.deepEqual(await detector.detect(rgb(300, 200, () => [128, 128, 128])), []);
  });

  it('returns no face, without failing, for 1x1, 3x3 and thin images', async () => {
    for (const [w, h] of [
      [1, 1],
      [3, 3],
      [2, 500],
      [500, 2],
    ]) {
      assert.deepEqual(
        await detector.detect(rgb(w, h, (x, y) => [(x * 50) % 256, (y * 30) % 256, 90])),
        [],
        `${w}x${h}`,
      );
    }
  });

  it('finds a face of about 20 px and one a tenth of a large image', async () => {
    const portrait = await photo('00009.png');
    const tiny = await detector.detect(resize(portrait, 40, 40)); // the face is ~22 px wide
    assert.equal(tiny.length, 1);
    // the portrait shrunk to 120 px and pasted into a 2000x1500 grey canvas
    const canvas = rgb(2000, 1500, () => [128, 128, 128]);
    const small = resize(portrait, 120, 120);
    for (let y = 0; y < 120; y++)
      canvas.data.set(small.data.subarray(y * 360, (y + 1) * 360), ((700 + y) * 2000 + 900) * 3);
    const faces = await detector.detect(canvas);
    assert.equal(faces.length, 1);
    assert.ok(
      faces[0].box[0] > 900 && faces[0].box[2] < 1020 && faces[0].box[1] > 700 && faces[0].box[3] < 820,
      `${faces[0].box}`,
    );
  });

  it('rejects pixel buffers that do not match their size', async () => {
    await assert.rejects(
      detector.detect({ width: 10, height: 10, data: new Uint8Array(299) }),
      (e: unknown) => e instanceof GpenLabError && e.code === 'E_ARGUMENT' && /300 bytes/.test(e.message),
    );
    await assert.rejects(
      detector.detect({ width: 0, height: 10, data: new Uint8Array(0) }),
      (e: unknown) => e instanceof GpenLabError && e.code === 'E_ARGUMENT',
    );
  });
});

describe('BlazeFace options', () => {
  it('rejects a minScore outside (0, 1) before loading anything', async () => {
    for (const bad of [0, 1, -0.5, Number.NaN]) {
      await assert.rejects(
        createBlazeFace({ minScore: bad }),
        (e: unknown) => e instanceof GpenLabError && e.code === 'E_ARGUMENT' && e.message.includes('minScore'),
      );
    }
  });

  it('refuses to run once released', async () => {
    const d = await createBlazeFace();
    assert.equal(d.name, 'blazeface');
    await d.release();
    await d.release(); // twice is harmless
    await assert.rejects(d.detect(rgb(8, 8, () => [0, 0, 0])), (e: unknown) => e instanceof GpenLabError);
  });
});

describe('BlazeFace in batches (the graphs rewritten for a dynamic batch)', () => {
  it('tiles and second looks run 16 at a time, or padded to 16, find the same faces as one at a time (Solvay 29, portraits), boxes within 1e-3 px', async () => {
    const one = await createBlazeFace({ batch: 1 });
    const many = await createBlazeFace({ batch: 16 });
    // every run padded to 16 (what a GPU provider does, for one input shape): the padding changes nothing
    const padded = await createBlazeFace({ batch: 16, padBatch: true });
    try {
      for (const name of ['Solvay_conference_1927.png', '00002.png', '106000_gray.png']) {
        const img = await readRgb(path.join(IMAGES, name));
        const a = await one.detect(img);
        if (name.startsWith('Solvay')) assert.equal(a.length, 29);
        for (const [how, b] of [
          ['batched', await many.detect(img)],
          ['padded', await padded.detect(img)],
        ] as const) {
          assert.equal(b.length, a.length, `${name} ${how}`);
          a.forEach((f, i) => {
            f.box.forEach((v, j) =>
              assert.ok(Math.abs(v - b[i].box[j]) < 1e-3, `${name} ${how} face ${i} box ${j}: ${v} vs ${b[i].box[j]}`),
            );
            assert.ok(Math.abs(f.score - b[i].score) < 1e-4, `${name} ${how} face ${i} score`);
          });
        }
      }
    } finally {
      await one.release();
      await many.release();
      await padded.release();
    }
  });

  it('crops filled by face workers (tiles stay on this thread) give exactly the faces filled on this thread (Solvay 29, a portrait)', async () => {
    const pool = new FaceWorkers(2);
    const plain = await createBlazeFace();
    const helped = await createBlazeFace({ inputWorkers: () => pool });
    try {
      for (const name of ['Solvay_conference_1927.png', '00002.png']) {
        const img = await readRgb(path.join(IMAGES, name));
        const [a, b] = [await plain.detect(img), await helped.detect(img)];
        if (name.startsWith('Solvay')) assert.equal(a.length, 29);
        assert.deepEqual(b, a, name);
      }
    } finally {
      await plain.release();
      await helped.release();
      await pool.close();
    }
  });

  it('the GPU schedule (runs side by side: tiles beside the whole-photo look, every look at once, inputs filled during runs) finds the sequential faces (Solvay 29, portraits)', async () => {
    const pool = new FaceWorkers(2);
    // padded to 16 as on a GPU, so that both schedules run one input shape
    const seq = await createBlazeFace({ padBatch: true, concurrent: false, inputWorkers: () => pool });
    const par = await createBlazeFace({ padBatch: true, concurrent: true, inputWorkers: () => pool });
    try {
      for (const name of ['Solvay_conference_1927.png', '00002.png', '106000_gray.png']) {
        const img = await readRgb(path.join(IMAGES, name));
        const [a, b] = [await seq.detect(img), await par.detect(img)];
        if (name.startsWith('Solvay')) assert.equal(a.length, 29);
        assert.equal(b.length, a.length, name);
        a.forEach((f, i) => {
          f.box.forEach((v, j) =>
            assert.ok(Math.abs(v - b[i].box[j]) < 1e-3, `${name} face ${i} box ${j}: ${v} vs ${b[i].box[j]}`),
          );
          assert.ok(Math.abs(f.score - b[i].score) < 1e-4, `${name} face ${i} score`);
        });
      }
    } finally {
      await seq.release();
      await par.release();
      await pool.close();
    }
  });

  it("through the C API (the --cuda-options route; on the CPU here) the detector finds exactly the stock binding's faces, sequential and on the GPU schedule; a C API detector on CUDA without padded runs is refused", async () => {
    const pool = new FaceWorkers(2);
    const stock = await createBlazeFace({ padBatch: true, concurrent: true, inputWorkers: () => pool });
    const capi = await createBlazeFace({ padBatch: true, concurrent: true, capi: true, inputWorkers: () => pool });
    const capiSeq = await createBlazeFace({ capi: true });
    try {
      for (const name of ['Solvay_conference_1927.png', '00002.png', '106000_gray.png']) {
        const img = await readRgb(path.join(IMAGES, name));
        const want = await stock.detect(img);
        if (name.startsWith('Solvay')) assert.equal(want.length, 29);
        assert.deepEqual(await capi.detect(img), want, name);
        assert.deepEqual(
          (await capiSeq.detect(img)).map((f) => f.box),
          want.map((f) => f.box),
          `${name}, sequential`,
        );
      }
    } finally {
      await Promise.all([stock.release(), capi.release(), capiSeq.release()]);
      await pool.close();
    }
    await assert.rejects(
      createBlazeFace({ provider: 'cuda', capi: true, padBatch: false }),
      (e: unknown) => e instanceof GpenLabError && e.code === 'E_ARGUMENT' && e.message.includes('capi'),
    );
  });

  it("concurrent detect() calls on one detector (the service) each get their own image's faces", async () => {
    const d = await createBlazeFace();
    try {
      const imgs = await Promise.all(
        ['00002.png', 'Solvay_conference_1927.png', '00009.png'].map((n) => readRgb(path.join(IMAGES, n))),
      );
      const alone: DetectedFace[][] = [];
      for (const img of imgs) alone.push(await d.detect(img));
      const together = await Promise.all(imgs.map((img) => d.detect(img)));
      assert.deepEqual(
        together.map((f) => f.length),
        alone.map((f) => f.length),
      );
      together.forEach((fs, i) => fs.forEach((f, j) => assert.deepEqual(f.box, alone[i][j].box)));
    } finally {
      await d.release();
    }
  });

  it('a graph other than the BlazeFace export is refused with a coded error, and a bad batch option too', async () => {
    const { detectorGraph } = await import('../src/face/blazeface-graph.js');
    const { synthesizeIdentity } = await import('../src/model/registry.js');
    assert.throws(
      () => detectorGraph(synthesizeIdentity(64), 'identity.onnx'),
      (e: unknown) =>
        e instanceof GpenLabError &&
        e.code === 'E_ONNX_CORRUPT' &&
        /identity\.onnx/.test(e.message) &&
        /batch 1/.test(e.message),
    );
    for (const bad of [0, 1.5, 1000])
      await assert.rejects(
        createBlazeFace({ batch: bad }),
        (e: unknown) => e instanceof GpenLabError && e.code === 'E_ARGUMENT' && e.message.includes('batch'),
      );
  });
});
