// The face workers (src/face/face-workers.ts): warping and pasting on worker threads gives exactly what the one-thread
// path gives (same floats, same pixels), for faces that shrink, enlarge, rotate and cross the photo's border; a
// worker's failure is a rejected call, not a crash; the Restorer's output does not depend on its thread count.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Affine } from '../src/face/align.js';
import { Compositor, pasteMask, pasteReduction, smoothSmallFace } from '../src/face/paste.js';
import { FaceWorkers, sharedBytes } from '../src/face/face-workers.js';
import { Restorer } from '../src/face/restore.js';
import { GpenLabError } from '../src/errors.js';
import { warpToTensor } from '../src/face/warp.js';
import { decodeImage } from '../src/io/image.js';
import { IMAGES } from './fixtures.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-workers-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** photo -> crop maps: rotation r, scale s (crop px per photo px), centre (cx, cy) in the photo. */
function toCrop(S: number, s: number, r: number, cx: number, cy: number): Affine {
  const a = s * Math.cos(r),
    b = s * Math.sin(r);
  return [a, b, S / 2 - (a * cx + b * cy), -b, a, S / 2 - (-b * cx + a * cy)];
}

describe('face workers', () => {
  it('warp and paste on 3 threads equal the one-thread path exactly', async () => {
    const W = 300,
      H = 200,
      S = 128;
    const data = new Uint8Array(W * H * 3);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7919 + (i >> 5) * 31) & 255;
    const img = { width: W, height: H, data };
    // enlarged, rotated, shrunk by 3 (box-reduced), across the left border, and pasted smaller (reduced + smoothed)
    const T: Affine[] = [
      toCrop(S, 4, 0.2, 150, 100),
      toCrop(S, 1.2, -0.5, 60, 80),
      toCrop(S, 0.3, 0, 150, 100),
      toCrop(S, 2.5, 0.1, 5, 100),
      toCrop(S, 5, 0, 250, 150),
    ];
    const per = 3 * S * S;
    const want = new Float32Array(per * T.length);
    T.forEach((m, i) => warpToTensor(img, m, S, want, i * per));
    const got = new Float32Array(new SharedArrayBuffer(per * T.length * 4));
    const w = new FaceWorkers(3);
    try {
      await w.warp(
        { ...img, data: sharedBytes(data) },
        S,
        got,
        T.map((m, i) => ({ toCrop: m, offset: i * per })),
      );
      assert.deepEqual(got, want, 'the crops');
      // paste them back (as if restored): the smoothing rides in the reduction where the paste reduces
      const smooth = T.map((m) => pasteReduction(m) > 1);
      for (let i = 0; i < T.length; i++) if (!smooth[i]) smoothSmallFace(want, S, i * per);
      const one = new Compositor(W, H);
      T.forEach((m, i) => one.add(want, S, m, pasteMask(S), i * per, smooth[i]));
      for (let i = 0; i < T.length; i++) if (!smooth[i]) smoothSmallFace(got, S, i * per);
      const many = new Compositor(W, H);
      for (const p of await w.patches(
        got,
        S,
        W,
        H,
        T.map((m, i) => ({ toCrop: m, offset: i * per, smooth: smooth[i] })),
      ))
        many.merge(p);
      assert.ok(
        one.mask.some((v) => v > 0),
        'the faces reach the photo',
      );
      assert.deepEqual(many.mask, one.mask, 'the mask plane');
      assert.deepEqual(many.composite(data), one.composite(data), 'the composited photo');
    } finally {
      await w.close();
    }
  });

  it('the paste warm-up (queued behind the jobs sent before it, once per pool) leaves every patch exactly as the one-thread path makes it', async () => {
    const W = 240,
      H = 160,
      S = 128;
    const data = new Uint8Array(W * H * 3);
    for (let i = 0; i < data.length; i++) data[i] = (i * 104729 + (i >> 4) * 17) & 255;
    const img = { width: W, height: H, data };
    const T: Affine[] = [toCrop(S, 3.2, 0.1, 60, 60), toCrop(S, 0.8, 0, 120, 80), toCrop(S, 6, -0.2, 200, 120)];
    const per = 3 * S * S;
    const crops = new Float32Array(new SharedArrayBuffer(per * T.length * 4));
    const w = new FaceWorkers(2);
    try {
      const warped = w.warp(
        { ...img, data: sharedBytes(data) },
        S,
        crops,
        T.map((m, i) => ({ toCrop: m, offset: i * per })),
      );
      w.warmPaste(S);
      w.warmPaste(S);
      await warped;
      const want = new Float32Array(per * T.length);
      T.forEach((m, i) => warpToTensor(img, m, S, want, i * per));
      assert.deepEqual(crops, want, 'the warp sent before the warm-up');
      const smooth = T.map((m) => pasteReduction(m) > 1);
      const one = new Compositor(W, H);
      T.forEach((m, i) => one.add(want, S, m, pasteMask(S), i * per, smooth[i]));
      const many = new Compositor(W, H);
      for (const p of await w.patches(
        crops,
        S,
        W,
        H,
        T.map((m, i) => ({ toCrop: m, offset: i * per, smooth: smooth[i] })),
      ))
        many.merge(p);
      assert.ok(one.mask.some((v) => v > 0));
      assert.deepEqual(many.mask, one.mask, 'the mask plane');
      assert.deepEqual(many.composite(data), one.composite(data), 'the composited photo');
    } finally {
      await w.close();
    }
  });

  it("a failing job rejects with the worker's message, and the workers go on", async () => {
    const S = 64;
    const crops = new Float32Array(new SharedArrayBuffer(3 * S * S * 4));
    const w = new FaceWorkers(2);
    try {
      // smoothing inside the paste needs a reduction: an enlarging paste with smooth is an internal error
      await assert.rejects(
        w.patches(crops, S, 100, 100, [{ toCrop: toCrop(S, 0.5, 0, 50, 50), offset: 0, smooth: true }]),
        /face worker: .*smooth/,
      );
      const ok = await w.patches(crops, S, 100, 100, [{ toCrop: toCrop(S, 2, 0, 50, 50), offset: 0, smooth: false }]);
      assert.equal(ok.length, 1);
      assert.ok(ok[0].w > 0 && ok[0].h > 0);
    } finally {
      await w.close();
    }
  });

  it('a thread count out of range is refused before anything loads', async () => {
    for (const bad of [-1, 1.5, 65]) {
      await assert.rejects(
        Restorer.create({ model: { type: 'identity', size: 64 }, outDir: tmp, faceThreads: bad }),
        (e: unknown) =>
          e instanceof GpenLabError &&
          e.code === 'E_ARGUMENT' &&
          e.details.option === 'faceThreads' &&
          /for faceThreads/.test(e.message) &&
          e.message.includes(String(bad)),
      );
    }
  });

  it('the Restorer writes the same Solvay photo with 2 and 4 face threads (PNGs in stripes) as with none', async () => {
    const outs: Uint8Array[] = [];
    const comps: Uint8Array[] = [];
    for (const faceThreads of [0, 2, 4]) {
      const dir = path.join(tmp, `t${faceThreads}`);
      const r = await Restorer.create({
        model: { type: 'identity', size: 256 },
        outDir: dir,
        batch: 8,
        faceThreads,
        outputs: ['gpen', 'comp'],
      });
      try {
        const res = await r.restoreFile(path.join(IMAGES, 'Solvay_conference_1927.png'));
        assert.equal(res.error, undefined);
        assert.ok(res.faces.length >= 25, `faces found: ${res.faces.length}`);
        outs.push((await decodeImage(res.outputs.gpen!)).rgb);
        comps.push((await decodeImage(res.outputs.comp!)).rgb);
      } finally {
        await r.release();
      }
    }
    assert.deepEqual(outs[1], outs[0]);
    assert.deepEqual(outs[2], outs[0]);
    assert.deepEqual(comps[1], comps[0]);
    assert.deepEqual(comps[2], comps[0]);
  });
});
