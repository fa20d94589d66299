// Golden tests: the official PyTorch GPEN outputs (seeded weights, ../shared/fixtures/gpen) reproduced by our graph
// and by the upstream export, run by onnxruntime-node on CPU. Tolerance: max abs error <= 1e-4 on every case.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { psnrFloat } from '../src/metrics/quality.js';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readNpy } from '../src/io/npy.js';
import { convertPth, describeModel, prepareModel } from '../src/model/registry.js';
import { ModelSession } from '../src/runtime/session.js';
import { fixture, fixtureConfig, maxAbsDiff } from './fixtures.js';

const TOL = 1e-4;
/** fp16 variant: 45 dB PSNR over the [-1, 1] range (the fp16 agreement bar). */
const FP16_MIN_PSNR = 45;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-golden-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

async function runCases(
  model: string | Uint8Array,
  name: string,
  batched: boolean,
): Promise<{ out: Float32Array; ref: Float32Array }[]> {
  const cfg = fixtureConfig(name);
  const s = await ModelSession.create(model, { provider: 'cpu', label: name });
  try {
    const ins = await Promise.all(cfg.cases.map((c) => readNpy(fixture(c.input))));
    const refs = await Promise.all(cfg.cases.map((c) => readNpy(fixture(c.output))));
    const per = 3 * cfg.size * cfg.size;
    if (batched) {
      const x = new Float32Array(per * ins.length);
      ins.forEach((t, i) => x.set(t.data as Float32Array, i * per));
      const r = await s.run(x, [ins.length, 3, cfg.size, cfg.size]);
      assert.deepEqual(r.dims, [ins.length, 3, cfg.size, cfg.size]);
      return refs.map((ref, i) => ({ out: r.data.subarray(i * per, (i + 1) * per), ref: ref.data as Float32Array }));
    }
    const res = [];
    for (let i = 0; i < ins.length; i++) {
      const r = await s.run(ins[i].data as Float32Array, ins[i].dims);
      res.push({ out: r.data, ref: refs[i].data as Float32Array });
    }
    assert.deepEqual(s.placement?.ran, ['cpu']);
    return res;
  } finally {
    await s.release();
  }
}

const psnr = (a: Float32Array, b: Float32Array): number => psnrFloat(a, b, 2);

for (const name of ['gpen-tiny-64', 'gpen-128']) {
  describe(`golden ${name}`, () => {
    const cfg = fixtureConfig(name);

    it('infers the architecture from the checkpoint alone', async () => {
      const m = await describeModel(fixture(`${name}.pth`));
      assert.equal(m.format, 'pth');
      assert.equal(m.size, cfg.size);
      assert.equal(m.channelMultiplier, cfg.channel_multiplier);
      assert.equal(m.narrow, cfg.narrow);
      assert.equal(m.params, cfg.params);
      assert.equal(m.sha256, cfg.sha256[`${name}.pth`]);
      assert.equal(m.synthetic, false);
    });

    it(`converted .pth reproduces the official outputs (max abs <= ${TOL}), one by one and batched`, async () => {
      const out = path.join(tmp, `${name}.onnx`);
      const info = await convertPth(fixture(`${name}.pth`), out, { precision: 'fp32' });
      assert.equal(info.origin, 'gpen-lab');
      assert.equal(info.size, cfg.size);
      assert.deepEqual(info.onnx?.inputDims, ['batch', 3, cfg.size, cfg.size]);
      // weights stored once: the file is about 4 bytes per parameter
      const { statSync } = await import('node:fs');
      const bytes = statSync(out).size;
      assert.ok(
        bytes > cfg.params * 4 && bytes < cfg.params * 4 * 1.02,
        `file ${bytes} bytes for ${cfg.params} params`,
      );
      for (const batched of [false, true]) {
        for (const { out: o, ref } of await runCases(out, name, batched)) {
          const err = maxAbsDiff(o, ref);
          assert.ok(err <= TOL, `max abs error ${err} > ${TOL} (batched=${batched})`);
        }
      }
    });

    it(`fp16 variant agrees with the official outputs (PSNR >= ${FP16_MIN_PSNR} dB over [-1,1])`, async () => {
      const p = await prepareModel({ type: 'file', file: fixture(`${name}.pth`) }, 'fp16');
      for (const { out: o, ref } of await runCases(p.model, name, false)) {
        const db = psnr(o, ref);
        assert.ok(db >= FP16_MIN_PSNR, `fp16 PSNR ${db.toFixed(1)} dB`);
        if (process.env.GPEN_LAB_PRINT_PSNR) process.stderr.write(`${name} fp16 PSNR ${db.toFixed(2)} dB\n`);
        assert.ok(maxAbsDiff(o, ref) > 0, 'fp16 output identical to fp32: the fp16 path did not run');
      }
    });
  });
}

describe('golden: the NHWC form (for CUDA sessions with prefer_nhwc=1)', () => {
  for (const name of ['gpen-tiny-64', 'gpen-128']) {
    it(`${name}: fp32 reproduces the official outputs (max abs <= ${TOL}), fp16 within ${FP16_MIN_PSNR} dB`, async () => {
      const fp32 = await prepareModel({ type: 'file', file: fixture(`${name}.pth`) }, 'fp32', { nhwc: true });
      for (const { out, ref } of await runCases(fp32.model, name, true)) {
        const err = maxAbsDiff(out, ref);
        assert.ok(err <= TOL, `max abs error ${err} > ${TOL}`);
      }
      const fp16 = await prepareModel({ type: 'file', file: fixture(`${name}.pth`) }, 'fp16', { nhwc: true });
      for (const { out, ref } of await runCases(fp16.model, name, false))
        assert.ok(psnr(out, ref) >= FP16_MIN_PSNR, `fp16 NHWC form PSNR ${psnr(out, ref).toFixed(1)} dB`);
    });
  }
});

describe('golden gpen-tiny-64 other sources', () => {
  it(`the legacy-format .pth converts to the same graph (max abs <= ${TOL})`, async () => {
    const p = await prepareModel({ type: 'file', file: fixture('gpen-tiny-64.legacy.pth') });
    assert.equal(p.info.pth?.format, 'legacy');
    for (const { out, ref } of await runCases(p.model, 'gpen-tiny-64', false)) assert.ok(maxAbsDiff(out, ref) <= TOL);
  });

  it(`the upstream torch.onnx export runs and reproduces the official outputs (max abs <= ${TOL})`, async () => {
    const p = await prepareModel({ type: 'file', file: fixture('gpen-tiny-64.upstream.onnx') });
    assert.equal(p.info.origin, 'upstream-export');
    assert.equal(p.info.onnx?.fixedBatch, 1);
    for (const { out, ref } of await runCases(p.model, 'gpen-tiny-64', false)) assert.ok(maxAbsDiff(out, ref) <= TOL);
  });
});
