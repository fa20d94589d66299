// The optimised-graph cache (src/runtime/graph-cache.ts): a miss has ONNX Runtime write the optimised graph in its own
// format and commits it; the next lookup is a hit whose graph, mapped and loaded with optimisations off, computes the
// same output; a changed model file or option set misses; models made in memory and NHWC are refused with the reason.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GpenLabError } from '../src/errors.js';
import { prepareModel } from '../src/model/registry.js';
import { CapiSession } from '../src/runtime/capi/session.js';
import { mapFile } from '../src/runtime/capi/device-io.js';
import { graphCache } from '../src/runtime/graph-cache.js';
import { useTempCache } from './helpers/cache-dir.js';

const dir = useTempCache('gpen-graph-cache-');
const S = 64;

/** A seeded synthetic GPEN-64 written as `name` in the cache's folder, and an input for it. */
async function modelFile(name: string, seed: number): Promise<{ file: string; x: Float32Array }> {
  const p = await prepareModel({ type: 'synthetic', size: S, seed }, 'fp32');
  const file = path.join(dir, name);
  writeFileSync(file, p.model as Uint8Array);
  return { file, x: Float32Array.from({ length: 3 * S * S }, (_, i) => Math.cos(i * 0.11 + seed) * 0.7) };
}

describe('optimised graph cache', () => {
  it('keys an entry by the model file (its mtime), the provider and the option set', async () => {
    const { file } = await modelFile('gpen64.onnx', 5);
    const miss = await graphCache(file, 'cpu', { cudnn_conv_algo_search: 'HEURISTIC' });
    assert.equal(miss.state, 'miss');
    assert.equal(miss.model, file);
    assert.ok(miss.saveTo && !existsSync(miss.file));
    // what a session saves there (the format itself is the next test's): committed, it is the entry
    writeFileSync(miss.saveTo!, 'optimised graph');
    await miss.commit();
    assert.deepEqual(
      readdirSync(path.dirname(miss.file)).filter((f) => f.endsWith('.tmp')),
      [],
      'no temporary file left',
    );
    assert.equal((await graphCache(file, 'cpu', { cudnn_conv_algo_search: 'HEURISTIC' })).state, 'hit');
    assert.equal((await graphCache(file, 'cpu', { cudnn_conv_algo_search: 'EXHAUSTIVE' })).state, 'miss');
    assert.equal((await graphCache(file, 'cuda', { cudnn_conv_algo_search: 'HEURISTIC' })).state, 'miss');
    utimesSync(file, new Date(), new Date(Date.now() + 5000));
    assert.equal((await graphCache(file, 'cpu', { cudnn_conv_algo_search: 'HEURISTIC' })).state, 'miss');
  });

  it("in ONNX Runtime's format: a miss saves it, a hit is mapped into memory and read in place, computing the same", async () => {
    const { file, x } = await modelFile('gpen64-ort.onnx', 6);
    const miss = await graphCache(file, 'cpu', {});
    assert.equal(miss.state, 'miss');
    assert.ok(miss.file.endsWith('.ort'), miss.file);
    const a = await CapiSession.createAsync(miss.model, {
      provider: 'cpu',
      graphOptimizationLevel: 0,
      saveOptimizedTo: miss.saveTo!,
      config: { 'session.save_model_format': 'ORT' },
    });
    await miss.commit();
    const want = a.run(x, [1, 3, S, S], x.length);
    a.release();
    // an ORT-format file (its flatbuffer identifier)
    assert.equal(readFileSync(miss.file).subarray(4, 8).toString('latin1'), 'ORTM');
    const hit = await graphCache(file, 'cpu', {});
    assert.equal(hit.state, 'hit');
    const mapped = mapFile(hit.model);
    assert.equal(mapped.length, statSync(hit.model).size);
    const b = await CapiSession.createAsync(mapped, {
      provider: 'cpu',
      graphOptimizationLevel: 0,
      config: {
        'session.load_model_format': 'ORT',
        'session.use_ort_model_bytes_directly': '1',
        'session.use_ort_model_bytes_for_initializers': '1',
      },
    });
    try {
      assert.deepEqual(b.run(x, [1, 3, S, S], x.length), want);
    } finally {
      b.release();
    }
    // released with the session: unmapping again is a no-op, not a crash
    mapped.unmap();
    assert.throws(
      () => mapFile(path.join(dir, 'no-such.ort')),
      (e: unknown) => e instanceof GpenLabError && e.code === 'E_FILE_MISSING' && e.message.includes('no-such.ort'),
    );
  });

  it('a failed session leaves nothing behind', async () => {
    const file = path.join(dir, 'junk.onnx');
    writeFileSync(file, new Uint8Array([1, 2, 3, 4]));
    const miss = await graphCache(file, 'cpu', {});
    assert.throws(() => CapiSession.create(miss.model, { provider: 'cpu', saveOptimizedTo: miss.saveTo! }));
    await miss.abandon();
    assert.ok(!existsSync(miss.saveTo!) && !existsSync(miss.file));
  });

  it('refuses a model made in memory and NHWC, saying what to do', async () => {
    await assert.rejects(
      graphCache(new Uint8Array([1]), 'cuda', {}),
      (e: unknown) =>
        e instanceof GpenLabError &&
        e.code === 'E_ARGUMENT' &&
        /ONNX file/.test(e.message) &&
        /model convert/.test(e.fix),
    );
    await assert.rejects(
      graphCache(path.join(dir, 'x.onnx'), 'cuda', { prefer_nhwc: '1' }),
      (e: unknown) => e instanceof GpenLabError && e.code === 'E_ARGUMENT' && /prefer_nhwc/.test(e.message),
    );
  });
});
