// ONNX Runtime's C API through koffi (src/runtime/capi.ts): a session created that way computes exactly what the
// stock binding computes on the same synthetic GPEN, and asking for CUDA where its provider is not installed is a
// coded error with ONNX Runtime's own words.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GpenLabError } from '../src/errors.js';
import { prepareModel } from '../src/model/registry.js';
import { CapiSession } from '../src/runtime/capi.js';
import { ModelSession } from '../src/runtime/session.js';
import { missingProviderFiles } from '../src/runtime/providers.js';

describe('ONNX Runtime C API route', () => {
  it('a C API session on the CPU gives the stock binding\'s output, bit for bit, at batch 1 and 2', async () => {
    const p = await prepareModel({ type: 'synthetic', size: 64, seed: 3 }, 'fp32');
    const S = 64, per = 3 * S * S;
    const stock = await ModelSession.create(p.model, { provider: 'cpu', recordPlacement: false });
    const c = CapiSession.create(p.model, { provider: 'cpu' });
    try {
      assert.equal(c.runtimeVersion, '1.29.0');
      for (const b of [1, 2]) {
        const x = Float32Array.from({ length: b * per }, (_, i) => Math.sin(i * 0.37 + b) * 0.8);
        const want = (await stock.run(x, [b, 3, S, S])).data;
        const got = c.run(x, [b, 3, S, S], b * per);
        assert.equal(got.length, want.length);
        let worst = 0;
        for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
        assert.equal(worst, 0, `batch ${b}`);
      }
    } finally {
      c.release();
      await stock.release();
    }
    assert.throws(() => c.run(new Float32Array(per), [1, 3, S, S], per), (e: unknown) => e instanceof GpenLabError && /released/.test(e.message));
  });

  it('CUDA options where the CUDA provider is not installed: E_SESSION naming the step and ONNX Runtime\'s reason', async (t) => {
    if (missingProviderFiles('cuda').length === 0) {
      t.skip('the CUDA provider is installed here: this case needs a machine without it');
      return;
    }
    const p = await prepareModel({ type: 'identity', size: 64 }, 'fp32');
    assert.throws(() => CapiSession.create(p.model, { provider: 'cuda', cuda: { cudnn_conv_algo_search: 'HEURISTIC' } }),
      (e: unknown) => e instanceof GpenLabError && e.code === 'E_SESSION' && /C API: \w+ failed: .+/.test(e.message));
  });
});
