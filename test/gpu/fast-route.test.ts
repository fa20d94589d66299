// The GPU tier (`npm run test:gpu`, on a machine with CUDA and `gpen-lab setup cuda` done): the fast route's outputs
// against the CPU's on the Solvay photo (29 faces), seeded synthetic GPEN-512. Tolerances: detections the same faces
// with boxes within 1 px; the whole photo >= 45 dB PSNR and >= 0.99 SSIM (the lab's agreement bar for passing cells);
// each face's crop pair (NAME_faceNN: the aligned crop beside its restoration) >= 40 dB in fp32 and >= 30 dB in fp16.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { RestoreOptions, RestoreResult } from '../../src/face/restore.js';
import { Restorer } from '../../src/face/restore.js';
import { createBlazeFace } from '../../src/face/blazeface.js';
import { decodeImage } from '../../src/io/image.js';
import type { Rgb8 } from '../../src/metrics/quality.js';
import { psnr, ssim } from '../../src/metrics/quality.js';

const rgb8 = async (file: string): Promise<Rgb8> => {
  const d = await decodeImage(file);
  return { width: d.width, height: d.height, data: d.rgb, channels: 3 };
};

const PHOTO = path.resolve(import.meta.dirname, '../../assets/Solvay_conference_1927.png');
const FACES = 29;
const BOX_PX = 1;
const PHOTO_DB = 45;
const PHOTO_SSIM = 0.99;
const FACE_DB = { fp32: 40, fp16: 30 } as const;

const tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-gpu-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

async function restore(name: string, o: Partial<RestoreOptions>): Promise<RestoreResult> {
  const outDir = path.join(tmp, name);
  const r = await Restorer.create({
    model: { type: 'synthetic', size: 512, seed: 0 },
    outDir,
    outputs: ['gpen', 'faces'],
    ...o,
  });
  try {
    const [res] = await r.restoreFiles([PHOTO]);
    assert.equal(res.error, undefined, `${name}: ${res.error?.code} ${res.error?.message}`);
    return res;
  } finally {
    await r.release();
  }
}

const boxDiff = (a: readonly number[], b: readonly number[]): number =>
  Math.max(...a.map((v, k) => Math.abs(v - b[k])));

const maxBoxDiff = (a: RestoreResult, b: RestoreResult): number =>
  Math.max(...a.faces.map((f, i) => Math.max(...f.box.map((v, k) => Math.abs(v - b.faces[i].box[k])))));

describe('the CUDA fast route against the CPU (Solvay photo, synthetic GPEN-512)', () => {
  let cpu: RestoreResult;
  before(async () => {
    cpu = await restore('cpu-fp32', { provider: 'cpu', precision: 'fp32' });
    assert.equal(cpu.faces.length, FACES);
  });

  it(`the detector on CUDA finds the CPU's ${FACES} faces, boxes within ${BOX_PX} px`, async (t) => {
    const img = await decodeImage(PHOTO);
    const runs = await Promise.all(
      (['cpu', 'cuda'] as const).map(async (provider) => {
        const d = await createBlazeFace({ provider });
        try {
          return await d.detect({ data: img.rgb, width: img.width, height: img.height });
        } finally {
          await d.release();
        }
      }),
    );
    const [onCpu, onCuda] = runs;
    assert.equal(onCuda.length, onCpu.length);
    // the two lists may order faces of near-equal score differently: each CPU face against its nearest CUDA face
    const diff = Math.max(...onCpu.map((f) => Math.min(...onCuda.map((g) => boxDiff(f.box, g.box)))));
    t.diagnostic(`${onCuda.length} faces; largest box difference ${diff.toFixed(3)} px`);
    assert.ok(diff <= BOX_PX, `box difference ${diff} px > ${BOX_PX}`);
  });

  for (const precision of ['fp16', 'fp32'] as const) {
    it(`restore with provider cuda, fast route, ${precision}, agrees with cpu fp32`, async (t) => {
      const gpu = await restore(`cuda-${precision}`, { provider: 'cuda', route: 'fast', precision });
      assert.equal(gpu.provider.chosen, 'cuda');
      assert.equal(gpu.route.binding, 'capi');
      assert.equal(gpu.route.precision, precision);
      assert.equal(gpu.faces.length, cpu.faces.length);
      const boxes = maxBoxDiff(cpu, gpu);
      assert.ok(boxes <= BOX_PX, `box difference ${boxes} px > ${BOX_PX}`);
      const [a, b] = await Promise.all([rgb8(cpu.outputs.gpen!), rgb8(gpu.outputs.gpen!)]);
      const photoDb = psnr(a, b);
      const photoSsim = ssim(a, b);
      const faceDb: number[] = [];
      for (let i = 0; i < cpu.outputs.faces.length; i++) {
        const [fa, fb] = await Promise.all([rgb8(cpu.outputs.faces[i]), rgb8(gpu.outputs.faces[i])]);
        faceDb.push(psnr(fa, fb));
      }
      const worst = Math.min(...faceDb);
      t.diagnostic(
        `${gpu.route.set ?? 'custom'} set, batch ${gpu.route.batch}: photo ${photoDb.toFixed(2)} dB / SSIM ` +
          `${photoSsim.toFixed(5)}; face crops worst ${worst.toFixed(2)} dB, median ${median(faceDb).toFixed(2)} dB; boxes ${boxes.toFixed(3)} px`,
      );
      assert.ok(photoDb >= PHOTO_DB, `photo ${photoDb} dB < ${PHOTO_DB}`);
      assert.ok(photoSsim >= PHOTO_SSIM, `photo SSIM ${photoSsim} < ${PHOTO_SSIM}`);
      assert.ok(worst >= FACE_DB[precision], `worst face crop ${worst} dB < ${FACE_DB[precision]}`);
    });
  }
});

function median(v: number[]): number {
  const s = [...v].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
