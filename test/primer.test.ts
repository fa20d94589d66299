// The cold-start primer (src/runtime/primer.ts): the model's graph with its weights made by ConstantOfShape. It must
// keep every operator and shape of the model (so that it loads the same kernels), weigh next to nothing, be cached
// per model file, and never fail a restore (its failures are reports).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GpenLabError } from '../src/errors.js';
import { onnx } from '../src/onnx/builder.js';
import { prepareModel } from '../src/model/registry.js';
import { CapiSession } from '../src/runtime/capi/session.js';
import { splitCudaOptions } from '../src/runtime/capi/options.js';
import { prime, primerFor } from '../src/runtime/primer.js';
import { primerModel } from '../src/runtime/primer-graph.js';
import { missingProviderFiles } from '../src/runtime/providers.js';
import { useTempCache } from './helpers/cache-dir.js';

const dir = useTempCache('gpen-primer-');

describe('cold-start primer', () => {
  for (const precision of ['fp32', 'fp16'] as const) {
    it(`${precision}: every weight becomes a ConstantOfShape of its dims and type; the other nodes, inputs and outputs are the model's`, async () => {
      const p = await prepareModel({ type: 'synthetic', size: 64, seed: 3 }, precision);
      const bytes = p.model as Uint8Array;
      const m = onnx.ModelProto.decode(bytes);
      const pr = primerModel(bytes);
      const q = onnx.ModelProto.decode(pr.model);
      const weights = m.graph!.initializer!.filter(
        (t) => (t.dataType === 1 || t.dataType === 10) && (t.dims ?? []).map(Number).reduce((a, b) => a * b, 1) >= 64,
      );
      assert.ok(weights.length > 10, `${weights.length} weights`);
      assert.equal(pr.replaced.count, weights.length);
      const made = q.graph!.node!.filter((n) => n.opType === 'ConstantOfShape');
      assert.equal(made.length, weights.length);
      for (const w of weights) {
        const n = made.find((x) => x.output![0] === w.name)!;
        assert.ok(n, w.name!);
        const shape = q.graph!.initializer!.find((t) => t.name === n.input![0])!;
        const raw = shape.rawData!;
        assert.deepEqual(
          [...new BigInt64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength))].map(Number),
          (w.dims ?? []).map(Number),
          w.name!,
        );
        assert.equal(n.attribute![0].t!.dataType, w.dataType, w.name!);
      }
      // the model's own nodes follow, unchanged and in order
      assert.deepEqual(
        q.graph!.node!.slice(made.length).map((n) => [n.opType, n.input, n.output]),
        m.graph!.node!.map((n) => [n.opType, n.input, n.output]),
      );
      assert.deepEqual([pr.input, pr.output.name], [{ name: 'input', dims: [1, 3, 64, 64] }, 'output']);
      assert.equal(pr.output.elements, 3 * 64 * 64);
      assert.ok(pr.model.byteLength < bytes.byteLength / 5, `${pr.model.byteLength} bytes against ${bytes.byteLength}`);
    });
  }

  it("the primer runs (here on the CPU, once on a worker thread) with the model's input and output", async () => {
    const p = await prepareModel({ type: 'synthetic', size: 64, seed: 3 }, 'fp32');
    const pr = primerModel(p.model as Uint8Array);
    const s = CapiSession.create(pr.model, { provider: 'cpu', graphOptimizationLevel: 0 });
    try {
      await s.runOnceAsync(
        { name: pr.input.name, x: new Float32Array(3 * 64 * 64), dims: pr.input.dims },
        pr.output.name,
      );
      const out = s.run(new Float32Array(3 * 64 * 64), pr.input.dims, pr.output.elements, {
        input: pr.input.name,
        output: pr.output.name,
      });
      assert.equal(out.length, pr.output.elements);
    } finally {
      s.release();
    }
  });

  it("a model file's primer is written once to the cache and read back after", async () => {
    const p = await prepareModel({ type: 'synthetic', size: 64, seed: 4 }, 'fp32');
    const file = path.join(dir, 'g.onnx');
    writeFileSync(file, p.model as Uint8Array);
    const first = await primerFor(file);
    const second = await primerFor(file);
    assert.deepEqual([first.cache, second.cache], ['written', 'hit']);
    assert.deepEqual(second.model, first.model);
    // its input and output come with it (read from the cache, not decoded from the graph): the model's own names
    const built = primerModel(p.model as Uint8Array);
    assert.deepEqual(second.io, { input: built.input, output: built.output.name });
    assert.deepEqual(second.io.input?.dims, [1, 3, 64, 64]);
    const cached = path.join(process.env.GPEN_LAB_CACHE!, 'primer');
    assert.ok(existsSync(cached));
    // an entry without its io file (an older cache) is made again, not half read
    for (const f of readdirSync(cached).filter((x) => x.endsWith('.io.json'))) rmSync(path.join(cached, f));
    assert.equal((await primerFor(file)).cache, 'written');
    assert.equal((await primerFor(file)).cache, 'hit');
    assert.ok(statSync(file).size > 5 * first.model.byteLength);
  });

  it('prime() reports a failure instead of throwing (no CUDA provider here), and prime takes 0 or 1 only', async (t) => {
    assert.deepEqual(splitCudaOptions({ prime: '1', cudnn_conv_algo_search: 'HEURISTIC' }), {
      cuda: { cudnn_conv_algo_search: 'HEURISTIC' },
      prime: 1,
    });
    assert.equal(splitCudaOptions({ prime: '0' }).prime, 0);
    for (const bad of ['yes', '2', '9', '-1'])
      assert.throws(
        () => splitCudaOptions({ prime: bad }),
        (e: unknown) => e instanceof GpenLabError && e.code === 'E_ARGUMENT' && /prime/.test(e.message),
      );
    if (missingProviderFiles('cuda').length === 0) {
      t.skip('the CUDA provider is installed here');
      return;
    }
    const p = await prepareModel({ type: 'synthetic', size: 64, seed: 3 }, 'fp32');
    const r = await prime(p.model as Uint8Array, { cudnn_conv_algo_search: 'HEURISTIC' });
    assert.equal(r.ok, false);
    assert.match(r.error ?? '', /C API: \w+ failed/);
  });
});
