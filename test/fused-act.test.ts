// gpen-lab's FusedAct operator (src/runtime/gpen-ops.ts) and the graph form that uses it (BuildOptions.fusedAct): the
// graph's structure, the official outputs reproduced through a C API CPU session with the operator's JavaScript
// kernel (the custom-op plumbing: the OrtCustomOp struct, the callbacks, optional inputs, the output's allocation),
// the PTX module's kernels and launch choice, the shape checks and the option's validation. The GPU kernel itself is
// checked on the device: `gpen-lab bench`'s fused sets agree with the official outputs.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readNpy } from '../src/io/npy.js';
import { psnrFloat } from '../src/metrics/quality.js';
import { GraphBuilder, TensorType, onnx } from '../src/onnx/builder.js';
import { GPEN_OPS } from '../src/onnx/custom-ops.js';
import { formForCuda, prepareModel, synthesizeGpen } from '../src/model/registry.js';
import { ACT_KERNELS, ACT_PARAMS, actLaunch, actPtx } from '../src/runtime/act-ptx.js';
import { CapiSession } from '../src/runtime/capi/session.js';
import { splitCudaOptions } from '../src/runtime/capi/options.js';
import { actShapes } from '../src/runtime/gpen-ops.js';
import { GpenLabError } from '../src/errors.js';
import { fixture, fixtureConfig, maxAbsDiff } from './fixtures.js';

const TOL = 1e-4;
const FP16_MIN_PSNR = 45;

describe('FusedAct: the graph form', () => {
  it('replaces every concatenation, bias Add and leaky ReLU of the generator and encoder, and imports its domain', () => {
    const plain = onnx.ModelProto.decode(synthesizeGpen(256, 1, 'fp16', true, false).bytes);
    const fused = onnx.ModelProto.decode(synthesizeGpen(256, 1, 'fp16', true, true).bytes);
    const count = (m: typeof plain, op: string) => m.graph!.node!.filter((n) => n.opType === op).length;
    const acts = fused.graph!.node!.filter((n) => n.opType === GPEN_OPS.fusedAct.fp16);
    assert.ok(acts.every((n) => n.domain === GPEN_OPS.domain));
    assert.deepEqual(
      fused.opsetImport!.map((o) => [o.domain, Number(o.version)]),
      [
        ['', 17],
        [GPEN_OPS.domain, GPEN_OPS.version],
      ],
    );
    // GPEN-256: 7 encoder stages (ecd0, then 256 px down to 4) and 1 + 2 x 6 styled convolutions
    assert.equal(acts.length, 7 + 13);
    assert.equal(count(plain, 'LeakyRelu') - count(fused, 'LeakyRelu'), 7 + 13);
    assert.equal(count(plain, 'Concat') - count(fused, 'Concat'), 13);
    // the first convolution of each resolution leaves its output modulated for the second: 6 Muls over activations fewer
    const withScale = acts.filter((n) => n.input![4] !== '');
    assert.equal(withScale.length, 6);
    // the encoder's have no feature and no scale; every one is wrapped in Transposes to and from NHWC
    assert.equal(acts.filter((n) => n.input![1] === '').length, 7);
    const made = new Map(fused.graph!.node!.flatMap((n) => n.output!.map((o) => [o, n] as const)));
    for (const a of acts)
      assert.deepEqual(
        Array.from(made.get(a.input![0])!.attribute!.find((x) => x.name === 'perm')!.ints!, Number),
        [0, 2, 3, 1],
      );
    // only with the NHWC form
    assert.equal(
      onnx.ModelProto.decode(synthesizeGpen(64, 1, 'fp32', false, true).bytes).graph!.node!.filter(
        (n) => n.domain === GPEN_OPS.domain,
      ).length,
      0,
    );
  });

  it('is chosen by fused_act=1 with prefer_nhwc=1, which splitCudaOptions checks', () => {
    assert.deepEqual(formForCuda({ prefer_nhwc: '1', fused_act: '1' }), { nhwc: true, fusedAct: true });
    assert.deepEqual(formForCuda({ prefer_nhwc: '1' }), { nhwc: true, fusedAct: false });
    assert.deepEqual(formForCuda(undefined), { nhwc: false, fusedAct: false });
    assert.deepEqual(splitCudaOptions({ prefer_nhwc: '1', fused_act: '1' }), {
      cuda: { prefer_nhwc: '1' },
      fusedAct: true,
    });
    assert.throws(
      () => splitCudaOptions({ fused_act: '1' }),
      (e: unknown) =>
        e instanceof GpenLabError &&
        e.code === 'E_ARGUMENT' &&
        /needs prefer_nhwc=1/.test(e.message) &&
        /prefer_nhwc=1/.test(e.fix),
    );
    assert.throws(
      () => splitCudaOptions({ prefer_nhwc: '1', fused_act: 'yes' }),
      (e: unknown) => e instanceof GpenLabError && e.code === 'E_ARGUMENT' && /fused_act to be 0 or 1/.test(e.message),
    );
  });
});

describe("FusedAct: the official outputs through a C API CPU session (the operator's JavaScript kernel)", () => {
  for (const name of ['gpen-tiny-64', 'gpen-128']) {
    it(`${name}: fp32 max abs <= ${TOL}, fp16 >= ${FP16_MIN_PSNR} dB, batched`, async () => {
      const cfg = fixtureConfig(name);
      const ins = await Promise.all(cfg.cases.map((c) => readNpy(fixture(c.input))));
      const refs = await Promise.all(cfg.cases.map((c) => readNpy(fixture(c.output))));
      const per = 3 * cfg.size * cfg.size;
      const x = new Float32Array(per * ins.length);
      ins.forEach((t, i) => x.set(t.data as Float32Array, i * per));
      for (const precision of ['fp32', 'fp16'] as const) {
        const p = await prepareModel({ type: 'file', file: fixture(`${name}.pth`) }, precision, {
          nhwc: true,
          fusedAct: true,
        });
        const s = CapiSession.create(p.model, { provider: 'cpu', gpenOps: true });
        try {
          const out = s.run(x, [ins.length, 3, cfg.size, cfg.size], x.length);
          refs.forEach((r, i) => {
            const o = out.subarray(i * per, (i + 1) * per);
            const ref = r.data as Float32Array;
            if (precision === 'fp32')
              assert.ok(maxAbsDiff(o, ref) <= TOL, `fp32 case ${i}: max abs ${maxAbsDiff(o, ref)}`);
            else
              assert.ok(psnrFloat(o, ref, 2) >= FP16_MIN_PSNR, `fp16 case ${i}: ${psnrFloat(o, ref, 2).toFixed(1)} dB`);
          });
        } finally {
          s.release();
        }
      }
    });
  }

  it("a node whose inputs do not fit fails its run with the operator's message (no crash, no unwritten output)", () => {
    const g = new GraphBuilder();
    const y = g.customOp(
      GPEN_OPS.domain,
      GPEN_OPS.version,
      GPEN_OPS.fusedAct.fp32,
      ['x', '', g.constFloat([0, 0, 0, 0], [4]), g.constFloat([0.2, 0.2, 0.2], [3]), ''],
      'act',
    );
    g.rename(y, 'y');
    const bytes = g.encode({
      name: 'bad',
      opset: 17,
      inputs: [{ name: 'x', elemType: TensorType.FLOAT, dims: [1, 2, 2, 4] }],
      outputs: [{ name: 'y', elemType: TensorType.FLOAT, dims: [1, 2, 2, 4] }],
      metadata: {},
    });
    const s = CapiSession.create(bytes, { provider: 'cpu', gpenOps: true });
    try {
      assert.throws(
        () => s.run(new Float32Array(16), [1, 2, 2, 4], 16, { input: 'x', output: 'y' }),
        (e: unknown) =>
          e instanceof GpenLabError &&
          e.code === 'E_SESSION' &&
          /FusedAct \(cpu\): FusedAct: slope must be \[C\]/.test(e.message),
      );
      // the session stays usable for a run that fits: here none can, so the same error again
      assert.throws(() => s.run(new Float32Array(16), [1, 2, 2, 4], 16, { input: 'x', output: 'y' }), /slope must be/);
    } finally {
      s.release();
    }
  });

  it("a session without gpen-lab's operators refuses the graph with a coded error", async () => {
    const p = await prepareModel({ type: 'synthetic', size: 64, seed: 2 }, 'fp32', { nhwc: true, fusedAct: true });
    assert.throws(
      () => CapiSession.create(p.model, { provider: 'cpu' }),
      (e: unknown) => e instanceof GpenLabError && e.code === 'E_SESSION' && /FusedAct|gpen_lab/.test(e.message),
    );
  });
});

describe('FusedAct: the PTX module and the shapes', () => {
  it('holds the four kernels with the twelve parameters, and picks the vector form where the channels allow it', () => {
    const ptx = actPtx();
    assert.match(ptx, /^\.version 7\.0\n\.target sm_70\n\.address_size 64/);
    for (const k of Object.values(ACT_KERNELS)) {
      const body = ptx.slice(ptx.indexOf(`.entry ${k}(`));
      assert.ok(ptx.includes(`.visible .entry ${k}(`), k);
      for (const p of ACT_PARAMS) assert.ok(body.includes(`p_${p}`), `${k} ${p}`);
    }
    assert.equal(ptx.match(/\.entry/g)!.length, 4);
    assert.deepEqual(actLaunch(true, 64, 64, 2 * 16 * 128), { kernel: ACT_KERNELS.half8, vec: 8, count: 512 });
    assert.deepEqual(actLaunch(true, 12, 12, 24), { kernel: ACT_KERNELS.half1, vec: 1, count: 24 });
    assert.deepEqual(actLaunch(false, 32, 0, 64), { kernel: ACT_KERNELS.float4, vec: 4, count: 16 });
    assert.deepEqual(actLaunch(false, 6, 0, 12), { kernel: ACT_KERNELS.float1, vec: 1, count: 12 });
  });

  it("checks its inputs' shapes", () => {
    assert.deepEqual(actShapes([2, 4, 4, 8], [2, 4, 4, 8], [2, 16], [16], [2, 16]), {
      n: 2,
      hw: 16,
      c1: 8,
      c2: 8,
      ct: 16,
      bstride: 16,
    });
    assert.deepEqual(actShapes([2, 4, 4, 8], null, [8], [8], null), { n: 2, hw: 16, c1: 8, c2: 0, ct: 8, bstride: 0 });
    const bad: [number[], number[] | null, number[], number[], number[] | null][] = [
      [[2, 8, 16], null, [8], [8], null],
      [[2, 4, 4, 8], [2, 4, 5, 8], [16], [16], null],
      [[2, 4, 4, 8], null, [3, 8], [8], null],
      [[2, 4, 4, 8], null, [8], [4], null],
      [[2, 4, 4, 8], null, [8], [8], [1, 8]],
    ];
    for (const b of bad)
      assert.throws(
        () => actShapes(...b),
        (e: unknown) => e instanceof GpenLabError && e.code === 'E_INFERENCE' && /FusedAct/.test(e.message),
        JSON.stringify(b),
      );
  });
});
