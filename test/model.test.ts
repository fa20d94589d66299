// Synthetic weights, the identity model, architecture inference for every official size, and the small pure parts
// (fp16 conversion, .npy, timing statistics).
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GpenLabError } from '../src/errors.js';
import { decodeNpy, encodeNpy } from '../src/io/npy.js';
import { OFFICIAL_ARCH, countParams, defaultArch, expectedShapes, inferArch } from '../src/model/arch.js';
import { describeModel, describeOnnxCached, synthesizeGpen, synthesizeIdentity } from '../src/model/registry.js';
import { buildGpenOnnx } from '../src/model/gpen-graph.js';
import { readPth } from '../src/model/pth.js';
import { toFloat32 } from '../src/io/tensor.js';
import { fixture } from './fixtures.js';
import { onnx } from '../src/onnx/builder.js';
import { fillNormal, rng } from '../src/model/synth.js';
import type { HostTensor } from '../src/io/tensor.js';
import { floatToHalf, halfToFloat } from '../src/io/tensor.js';
import { timingStats } from '../src/metrics/stats.js';
import { ModelSession } from '../src/runtime/session.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-model-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('architecture', () => {
  for (const size of [256, 512, 1024, 2048]) {
    it(`infers GPEN-${size} (official channel_multiplier ${OFFICIAL_ARCH[size].channelMultiplier}, narrow ${OFFICIAL_ARCH[size].narrow}) from names and shapes alone`, () => {
      const arch = defaultArch(size);
      const tensors = new Map<string, HostTensor>();
      for (const [name, dims] of expectedShapes(arch))
        tensors.set(name, { dtype: 'float32', dims, data: new Float32Array(0) });
      assert.deepEqual(inferArch(tensors, 'x.pth'), arch);
    });
  }
  it('counts the official parameter numbers (buffers excluded)', () => {
    assert.equal(countParams(defaultArch(512)), 71_005_223);
    assert.equal(countParams(defaultArch(256)), 18_879_010);
  });
});

describe('synthetic GPEN', () => {
  it('is deterministic per seed and differs between seeds', () => {
    const a = synthesizeGpen(64, 7, 'fp32').bytes;
    const b = synthesizeGpen(64, 7, 'fp32').bytes;
    const c = synthesizeGpen(64, 8, 'fp32').bytes;
    assert.equal(sha(a), sha(b));
    assert.notEqual(sha(a), sha(c));
  });

  it('blurs: grouped 32 channels per group in the fp16 graph (zero off the diagonal), depthwise in fp32 and below 32 channels', () => {
    const blurs = (precision: 'fp32' | 'fp16', nhwc = false) => {
      const g = onnx.ModelProto.decode(synthesizeGpen(256, 1, precision, nhwc).bytes).graph!;
      const made = new Map((g.node ?? []).map((n) => [n.output![0], n]));
      const dims = new Map((g.initializer ?? []).map((t) => [t.name!, (t.dims ?? []).map(Number)]));
      return (g.node ?? [])
        .filter(
          (n) =>
            n.opType === 'Conv' &&
            (n.attribute ?? []).some((a) => a.name === 'kernel_shape' && (a.ints ?? []).map(Number).join() === '4,4'),
        )
        .map((n) => {
          const group = Number(n.attribute!.find((a) => a.name === 'group')!.i);
          // a grouped weight: Mul(kernel, diagonal) in fp32 (so that ONNX Runtime can fold it), Cast to fp16 in fp16
          const made1 = made.get(n.input![1]);
          const mul = made1?.opType === 'Cast' ? made.get(made1.input![0]) : made1;
          if (made1) assert.deepEqual([made1.opType === 'Cast' || precision === 'fp32', mul?.opType], [true, 'Mul']);
          const kernel = mul ? mul.input![0] : n.input![1];
          return { group, channels: dims.get(kernel)![0], diagonal: mul ? dims.get(mul.input![1])! : null };
        });
    };
    const f32 = blurs('fp32');
    const f16 = blurs('fp16');
    assert.ok(f32.length >= 10 && f16.length === f32.length, `${f32.length} blurs`);
    for (const b of f32) assert.deepEqual([b.group, b.diagonal], [b.channels, null]);
    for (const b of f16) {
      if (b.channels % 32 === 0) assert.deepEqual([b.group, b.diagonal], [b.channels / 32, [b.channels, 32, 1, 1]]);
      else assert.deepEqual([b.group, b.diagonal], [b.channels, null]);
    }
    assert.ok(
      f16.some((b) => b.group < b.channels),
      'some blur grouped',
    );
    // the NHWC form: one dense convolution per blur (cuDNN's NHWC grouped ones copy every group out and back)
    for (const b of [...blurs('fp16', true), ...blurs('fp32', true)])
      assert.deepEqual([b.group, b.diagonal], [1, [b.channels, b.channels, 1, 1]]);
  });

  it('the NHWC form: its MatMuls over NHWC views between Transposes, no other Transpose', () => {
    const g = onnx.ModelProto.decode(synthesizeGpen(256, 1, 'fp16', true).bytes).graph!;
    const made = new Map((g.node ?? []).map((n) => [n.output![0], n]));
    const perm = (n: {
      attribute?: { name?: string | null; ints?: (number | { toString(): string })[] | null }[] | null;
    }) =>
      (n.attribute ?? [])
        .find((a) => a.name === 'perm')!
        .ints!.map(Number)
        .join();
    const matmuls = (g.node ?? []).filter((n) => n.opType === 'MatMul');
    assert.equal(matmuls.length, 3); // the input's 1x1 convolution, ToRGB at 128 and 256 px
    for (const m of matmuls) {
      const view = made.get(m.input![0])!; // Reshape(Transpose(x, to NHWC))
      assert.equal(view.opType, 'Reshape');
      assert.equal(made.get(view.input![0])!.opType, 'Transpose');
      assert.equal(perm(made.get(view.input![0])!), '0,2,3,1');
    }
    const transposes = (g.node ?? []).filter((n) => n.opType === 'Transpose');
    assert.equal(transposes.length, 6);
    assert.deepEqual(transposes.map(perm).sort(), ['0,2,3,1', '0,2,3,1', '0,2,3,1', '0,3,1,2', '0,3,1,2', '0,3,1,2']);
  });

  it('carries the demodulation and the noise weights to the consumers (a PRelu for a negative one); ToRGB as a MatMul at the two largest sizes', async () => {
    // gpen-128's official seeded weights: its noise weights are of both signs (a test of both forms)
    const ck = await readPth(fixture('gpen-128.pth'));
    const arch = inferArch(ck.tensors, 'gpen-128.pth');
    const g = onnx.ModelProto.decode(buildGpenOnnx(arch, ck.tensors, { precision: 'fp16' })).graph!;
    const made = new Map((g.node ?? []).map((n) => [n.output![0], n]));
    const consumers = (t: string) => (g.node ?? []).filter((n) => (n.input ?? []).includes(t));
    const concats = (g.node ?? []).filter(
      (n) => n.opType === 'Concat' && made.get(n.input![0])?.opType !== 'ReduceSumSquare',
    );
    const nw = [...ck.tensors].filter(([k]) => k.endsWith('noise.weight')).map(([, t]) => toFloat32(t)[0]);
    assert.equal(concats.length, nw.length);
    // every feature whose weight is not zero enters the Concat as the encoder made it (a LeakyRelu); a negative weight
    // takes a PRelu (slope 5 on the feature's channels) instead of the LeakyRelu after the Concat
    const direct = concats.filter((n) => made.get(n.input![1])?.opType === 'LeakyRelu').length;
    assert.equal(direct, nw.filter((w) => w !== 0).length);
    const activation = (n: (typeof concats)[number]) => consumers(consumers(n.output![0])[0].output![0])[0].opType;
    assert.deepEqual(
      concats.map(activation),
      nw.map((w) => (w < 0 ? 'PRelu' : 'LeakyRelu')),
    );
    assert.ok(nw.some((w) => w < 0) && nw.some((w) => w > 0));
    // no pass multiplies a styled conv's output by its demodulation: it goes to the Concat (or through the blur)
    const styled = (g.node ?? []).filter(
      (x) =>
        (x.opType === 'ConvTranspose' && (x.attribute ?? []).every((a) => a.name !== 'group')) ||
        (x.opType === 'Conv' &&
          (x.attribute ?? []).some((a) => a.name === 'kernel_shape' && (a.ints ?? []).map(Number).join() === '3,3') &&
          made.get(x.input![0])?.opType === 'Mul'),
    );
    assert.equal(styled.length, nw.length);
    for (const n of styled)
      for (const c of consumers(n.output![0]))
        assert.ok(c.opType === 'Concat' || c.opType === 'Conv', `${n.name} feeds ${c.opType}`);
    // MatMuls: the input conv and ToRGB at 64 and 128 px
    const matmuls = (g.node ?? []).filter((n) => n.opType === 'MatMul');
    assert.equal(matmuls.length, 3);
  });

  it('says "synthetic" in its metadata and model info', async () => {
    const file = path.join(tmp, 'synth-64.onnx');
    writeFileSync(file, synthesizeGpen(64, 3, 'fp32').bytes);
    const m = await describeModel(file);
    assert.equal(m.synthetic, true);
    assert.equal(m.seed, 3);
    assert.equal(m.size, 64);
    assert.equal(m.params, countParams(defaultArch(64)));
  });

  it('runs with a dynamic batch: each item of a batch equals its batch-1 run', async () => {
    const s = await ModelSession.create(synthesizeGpen(64, 1, 'fp32').bytes, { provider: 'cpu' });
    try {
      const per = 3 * 64 * 64;
      const x = fillNormal(new Float32Array(per * 3), rng(5), 0.5);
      const all = await s.run(x, [3, 3, 64, 64]);
      assert.deepEqual(all.dims, [3, 3, 64, 64]);
      let sum = 0;
      let sq = 0;
      for (const v of all.data) {
        assert.ok(Number.isFinite(v));
        sum += v;
        sq += v * v;
      }
      const std = Math.sqrt(sq / all.data.length - (sum / all.data.length) ** 2);
      assert.ok(std > 0.05 && std < 3, `output std ${std}`);
      for (let i = 0; i < 3; i++) {
        const one = await s.run(x.slice(i * per, (i + 1) * per), [1, 3, 64, 64]);
        let m = 0;
        for (let j = 0; j < per; j++) m = Math.max(m, Math.abs(one.data[j] - all.data[i * per + j]));
        assert.ok(m < 1e-4, `item ${i} differs by ${m}`);
      }
      // the encoder path shapes the output: different inputs, different outputs
      let d = 0;
      for (let j = 0; j < per; j++) d = Math.max(d, Math.abs(all.data[j] - all.data[per + j]));
      assert.ok(d > 0.01);
    } finally {
      await s.release();
    }
  });
});

describe('identity model', () => {
  it('returns its input exactly and says it is the identity', async () => {
    const bytes = synthesizeIdentity(128);
    const file = path.join(tmp, 'id.onnx');
    writeFileSync(file, bytes);
    const m = await describeModel(file);
    assert.equal(m.kind, 'identity');
    assert.equal(m.size, 128);
    const s = await ModelSession.create(bytes, { provider: 'cpu' });
    const x = fillNormal(new Float32Array(2 * 3 * 128 * 128), rng(9));
    const r = await s.run(x, [2, 3, 128, 128]);
    assert.deepEqual(Array.from(r.data), Array.from(x));
    assert.deepEqual(s.placement?.ran, ['cpu']);
    await s.release();
  });
  it('rejects a size GPEN does not define', () => {
    assert.throws(
      () => synthesizeIdentity(100),
      (e: unknown) => e instanceof GpenLabError && e.code === 'E_SIZE_UNKNOWN',
    );
  });
});

describe('fp16 conversion', () => {
  it('matches IEEE 754 half exactly, rounding to nearest even', () => {
    assert.equal(floatToHalf(1), 0x3c00);
    assert.equal(floatToHalf(-2), 0xc000);
    assert.equal(floatToHalf(65504), 0x7bff);
    assert.equal(floatToHalf(1e6), 0x7c00);
    assert.equal(floatToHalf(2 ** -24), 0x0001);
    assert.equal(floatToHalf(1e-9), 0);
    assert.equal(floatToHalf(1 + 2 ** -11), 0x3c00); // tie, rounds to even
    assert.equal(floatToHalf(1 + 3 * 2 ** -11), 0x3c02); // tie, rounds up to even
    assert.ok(Number.isNaN(halfToFloat(floatToHalf(NaN))));
    for (const h of [0x0001, 0x03ff, 0x0400, 0x3555, 0x7bff, 0xfbff]) assert.equal(floatToHalf(halfToFloat(h)), h);
  });
});

describe('.npy', () => {
  it('round-trips float32 and float16 arrays', () => {
    const t: HostTensor = { dtype: 'float32', dims: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) };
    assert.deepEqual(decodeNpy(encodeNpy(t)), t);
    const h: HostTensor = { dtype: 'float16', dims: [3], data: Uint16Array.of(0x3c00, 0, 0x7bff) };
    assert.deepEqual(decodeNpy(encodeNpy(h)), h);
  });
  it('rejects a truncated array, another dtype and a non-npy file with E_NPY_INVALID naming the file', () => {
    const good = encodeNpy({ dtype: 'float32', dims: [4], data: new Float32Array(4) });
    const bad = [
      good.subarray(0, good.length - 3),
      Buffer.from(good.toString('latin1').replace('<f4', '<i4'), 'latin1'),
      Buffer.from('hello world'),
    ];
    for (const b of bad) {
      assert.throws(
        () => decodeNpy(b, 'x.npy'),
        (e: unknown) =>
          e instanceof GpenLabError && e.code === 'E_NPY_INVALID' && e.message.includes('x.npy') && e.fix.length > 0,
      );
    }
  });
});

describe('timing statistics', () => {
  it('computes hyperfine-style mean, σ, median, range and MAD outliers', () => {
    const s = timingStats([10, 12, 11, 13, 100]);
    assert.equal(s.runs, 5);
    assert.equal(s.mean, 29.2);
    assert.equal(s.median, 12);
    assert.equal(s.min, 10);
    assert.equal(s.max, 100);
    assert.deepEqual(s.outliers, [4]);
    assert.ok(Math.abs(s.stddev - Math.sqrt(6270.8 / 4)) < 1e-9);
  });
});

describe('model info cache (describeOnnxCached)', () => {
  it('remembers an ONNX file by path, size and mtime: a hit does not read the file, a change is seen', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gpen-cache-'));
    const before = process.env.GPEN_LAB_CACHE;
    process.env.GPEN_LAB_CACHE = path.join(dir, 'cache');
    try {
      const file = path.join(dir, 'm.onnx');
      writeFileSync(file, synthesizeGpen(64, 3, 'fp32').bytes);
      utimesSync(file, 1_700_000_000, 1_700_000_000);
      const fresh = await describeModel(file);
      const first = await describeOnnxCached(file);
      assert.deepEqual(first, fresh);
      // same size and mtime, other bytes: only a cache hit can still answer with the old description
      const st = statSync(file);
      const junk = Buffer.alloc(st.size, 7);
      writeFileSync(file, junk);
      utimesSync(file, 1_700_000_000, 1_700_000_000);
      assert.deepEqual(await describeOnnxCached(file), fresh);
      // a new mtime: the file is read again (and this one is not a model)
      utimesSync(file, 1_700_000_000, 1_700_000_005);
      await assert.rejects(
        describeOnnxCached(file),
        (e: unknown) => e instanceof GpenLabError && e.code === 'E_ONNX_CORRUPT',
      );
      // a corrupt cache is ignored
      writeFileSync(path.join(dir, 'cache', 'onnx-info.json'), '{not json');
      writeFileSync(file, synthesizeGpen(64, 4, 'fp32').bytes);
      assert.equal((await describeOnnxCached(file)).seed, 4);
    } finally {
      if (before === undefined) delete process.env.GPEN_LAB_CACHE;
      else process.env.GPEN_LAB_CACHE = before;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
