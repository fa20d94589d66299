// ONNX Runtime's C API through koffi (src/runtime/capi/): a session created that way computes exactly what the
// stock binding computes on the same synthetic GPEN, and asking for CUDA where its provider is not installed is a
// coded error with ONNX Runtime's own words.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GpenLabError } from '../src/errors.js';
import { prepareModel } from '../src/model/registry.js';
import { ARENA_KEYS, checkArenaConfig, splitCudaOptions } from '../src/runtime/capi/options.js';
import { CapiSession } from '../src/runtime/capi/session.js';
import { HostPins } from '../src/runtime/cuda/host-pins.js';
import { ModelSession } from '../src/runtime/session.js';
import type { Ev } from '../src/runtime/profile.js';
import {
  placementFromEvents,
  placementFromProfile,
  placementFromProfileDirAsync,
  scanPlacementEvents,
} from '../src/runtime/profile.js';
import { openSession, parseCudaOptions, startEarlySession } from '../src/runtime/capi-model.js';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { missingProviderFiles, nvidiaDeviceVisible } from '../src/runtime/providers.js';

describe('ONNX Runtime C API route', () => {
  it('host pinning without a GPU: small buffers are left alone; a large one records why it stayed pageable, and nothing throws', () => {
    const small = new HostPins();
    small.pin(new Float32Array(1024));
    assert.deepEqual(small.stats(), { buffers: 0, bytes: 0, error: null });
    const pins = new HostPins(4, 1024);
    const big = new Float32Array(new SharedArrayBuffer(4096 * 4));
    pins.pin(big);
    const st = pins.stats();
    assert.equal(st.buffers, 0);
    assert.match(
      st.error ?? '',
      /cudaHostRegister of 16384 bytes failed with CUDA error \d+|libcudart\.so\.13\) could not be loaded/,
    );
    // after a failure no further attempt is made, and release has nothing to undo
    pins.pin(new Float32Array(8192));
    assert.deepEqual(pins.stats(), st);
    pins.release();
    assert.equal(big[0], 0);
  });

  it("a C API session on the CPU gives the stock binding's output, bit for bit, at batch 1 and 2", async () => {
    const p = await prepareModel({ type: 'synthetic', size: 64, seed: 3 }, 'fp32');
    const S = 64,
      per = 3 * S * S;
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
    assert.throws(
      () => c.run(new Float32Array(per), [1, 3, S, S], per),
      (e: unknown) => e instanceof GpenLabError && /released/.test(e.message),
    );
  });

  it("CUDA options where the CUDA provider is not installed: E_SESSION naming the step and ONNX Runtime's reason", async (t) => {
    if (missingProviderFiles('cuda').length === 0) {
      t.skip('the CUDA provider is installed here: this case needs a machine without it');
      return;
    }
    const p = await prepareModel({ type: 'identity', size: 64 }, 'fp32');
    assert.throws(
      () => CapiSession.create(p.model, { provider: 'cuda', cuda: { cudnn_conv_algo_search: 'HEURISTIC' } }),
      (e: unknown) => e instanceof GpenLabError && e.code === 'E_SESSION' && /C API: \w+ failed: .+/.test(e.message),
    );
  });

  it('the profile ended on a worker thread gives the same placement, then its folder is gone', async () => {
    const p = await prepareModel({ type: 'synthetic', size: 64, seed: 3 }, 'fp32');
    const S = 64,
      per = 3 * S * S;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gpen-capi-'));
    const s = CapiSession.create(p.model, { provider: 'cpu', profilePrefix: path.join(dir, 'prof') });
    try {
      s.run(new Float32Array(per).fill(0.2), [1, 3, S, S], per);
      const placed = await placementFromProfileDirAsync(dir, 'cpu', () => s.endProfilingAsync());
      assert.deepEqual([placed?.ran, placed?.mismatch], [['cpu'], false]);
      assert.ok(
        placed!.nodesByProvider.cpu > 50 && placed!.sessionMs!.session_initialization > 0,
        JSON.stringify(placed),
      );
      assert.equal(existsSync(dir), false);
      // the session runs on after its profile ended; on a worker thread it computes the same, into a given array too
      const want = s.run(new Float32Array(per).fill(0.2), [1, 3, S, S], per);
      assert.deepEqual(await s.runAsync(new Float32Array(per).fill(0.2), [1, 3, S, S], per), want);
      const into = new Float32Array(per);
      assert.equal(await s.runAsync(new Float32Array(per).fill(0.2), [1, 3, S, S], per, undefined, into), into);
      assert.deepEqual(into, want);
    } finally {
      s.release();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a session released on a worker thread is released: its runs are a coded error, a second release does nothing', async () => {
    const p = await prepareModel({ type: 'synthetic', size: 64, seed: 3 }, 'fp32');
    const S = 64,
      per = 3 * S * S;
    const s = CapiSession.create(p.model, { provider: 'cpu' });
    assert.equal(s.run(new Float32Array(per).fill(0.2), [1, 3, S, S], per).length, per);
    await s.releaseAsync();
    assert.throws(
      () => s.run(new Float32Array(per), [1, 3, S, S], per),
      (e: unknown) => e instanceof GpenLabError && e.code === 'E_ARGUMENT' && /released/.test(e.message),
    );
    await s.releaseAsync();
    s.release();
  });

  it('the placement read line by line from a profile equals the one from the whole profile parsed; a profile laid out otherwise is parsed whole', async () => {
    const p = await prepareModel({ type: 'synthetic', size: 64, seed: 3 }, 'fp32');
    const S = 64,
      per = 3 * S * S;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gpen-capi-'));
    try {
      const a = CapiSession.create(p.model, { provider: 'cpu', profilePrefix: path.join(dir, 'prof') });
      a.run(new Float32Array(per).fill(0.1), [1, 3, S, S], per);
      a.run(new Float32Array(per).fill(0.3), [1, 3, S, S], per);
      const file = a.endProfiling();
      a.release();
      const text = readFileSync(file, 'utf8');
      const whole = JSON.parse(text) as Ev[];
      const scanned = scanPlacementEvents(text);
      assert.ok(scanned, 'ONNX Runtime writes one event a line');
      // every kernel time and Session event, with the provider, operator and time the whole parse gives
      const pick = (e: Ev) => [e.name, e.dur, e.args?.provider, e.args?.op_name];
      const kept = whole.filter((e) => e.cat === 'Session' || (e.cat === 'Node' && e.name?.endsWith('_kernel_time')));
      assert.ok(kept.length > 100);
      assert.deepEqual(scanned.map(pick), kept.map(pick));
      assert.deepEqual(placementFromEvents(scanned, 'cpu'), placementFromEvents(whole, 'cpu'));
      assert.deepEqual(placementFromEvents(scanned, 'cuda').mismatch, true);
      // the same events on one line: the scan declines, the placement comes from the whole parse
      writeFileSync(file, JSON.stringify(whole));
      assert.equal(scanPlacementEvents(JSON.stringify(whole)), null);
      assert.deepEqual(placementFromProfile(file, 'cpu'), placementFromEvents(whole, 'cpu'));
      // a torn line (no provider where a node time is) is not guessed at either
      const torn = text.replace(/"provider" : "CPUExecutionProvider"/, '"provider_" : "x"');
      assert.equal(scanPlacementEvents(torn), null);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('profiles runs (the profile names the provider of every node), writes the optimised graph, takes session config entries and memory patterns off', async () => {
    const p = await prepareModel({ type: 'synthetic', size: 64, seed: 3 }, 'fp32');
    const S = 64,
      per = 3 * S * S;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gpen-capi-'));
    try {
      const optimized = path.join(dir, 'optimized.onnx');
      const a = CapiSession.create(p.model, {
        provider: 'cpu',
        profilePrefix: path.join(dir, 'prof'),
        saveOptimizedTo: optimized,
        config: { 'session.intra_op.allow_spinning': '0' },
      });
      const x = Float32Array.from({ length: per }, (_, i) => Math.cos(i * 0.11) * 0.7);
      const want = a.run(x, [1, 3, S, S], per);
      const file = a.endProfiling();
      assert.ok(existsSync(file), file);
      const placed = placementFromProfile(file, 'cpu');
      assert.deepEqual([placed.ran, placed.mismatch], [['cpu'], false]);
      assert.ok(placed.nodesByProvider.cpu > 50, JSON.stringify(placed));
      a.release();
      // the saved graph, loaded with every optimisation off, computes the same; so does a session without memory patterns
      assert.ok(existsSync(optimized));
      const b = CapiSession.create(optimized, { provider: 'cpu', graphOptimizationLevel: 0 });
      const c = CapiSession.create(p.model, { provider: 'cpu', memPattern: false });
      try {
        const into = new Float32Array(per);
        assert.equal(b.run(x, [1, 3, S, S], per, undefined, into), into);
        assert.deepEqual(into, want);
        assert.deepEqual(c.run(x, [1, 3, S, S], per), want);
      } finally {
        b.release();
        c.release();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('GPU tensors need a CUDA session: binding on a CPU session is E_SESSION naming the allocator', async () => {
    const p = await prepareModel({ type: 'identity', size: 64 }, 'fp32');
    const s = CapiSession.create(p.model, { provider: 'cpu' });
    try {
      assert.throws(
        () => s.bindDevice([1, 3, 64, 64]),
        (e: unknown) =>
          e instanceof GpenLabError && e.code === 'E_SESSION' && /CreateAllocator\(Cuda\)/.test(e.message),
      );
    } finally {
      s.release();
    }
  });

  it("splits gpen-lab's session keys from CUDA provider options, and parses --cuda-options", () => {
    assert.deepEqual(splitCudaOptions({ enable_cuda_graph: '1', mem_pattern: '0' }), {
      cuda: { enable_cuda_graph: '1' },
      memPattern: false,
    });
    assert.deepEqual(splitCudaOptions({ prefer_nhwc: '1' }), { cuda: { prefer_nhwc: '1' } });
    assert.deepEqual(splitCudaOptions({ graph_optimization_level: '0', cudnn_conv_algo_search: 'HEURISTIC' }), {
      cuda: { cudnn_conv_algo_search: 'HEURISTIC' },
      graphOptimizationLevel: 0,
    });
    assert.deepEqual(splitCudaOptions({ 'session.use_device_allocator_for_initializers': '1', device_id: '0' }), {
      cuda: { device_id: '0' },
      config: { 'session.use_device_allocator_for_initializers': '1' },
    });
    assert.deepEqual(splitCudaOptions({ graph_cache: 'ort', cudnn_conv_algo_search: 'HEURISTIC' }), {
      cuda: { cudnn_conv_algo_search: 'HEURISTIC' },
      graphCache: 'ort',
    });
    assert.throws(
      () => splitCudaOptions({ graph_cache: '1' }),
      (e: unknown) =>
        e instanceof GpenLabError && e.code === 'E_ARGUMENT' && /graph_cache to be 0 or ort/.test(e.message),
    );
    assert.deepEqual(splitCudaOptions({ graph_cache: 'ort' }), { cuda: {}, graphCache: 'ort' });
    assert.deepEqual(splitCudaOptions({ graph_cache: '0' }), { cuda: {}, graphCache: false });
    assert.throws(
      () => splitCudaOptions({ graph_cache: 'yes' }),
      (e: unknown) =>
        e instanceof GpenLabError &&
        e.code === 'E_ARGUMENT' &&
        /graph_cache to be 0 or ort/.test(e.message) &&
        /graph_cache=ort/.test(e.fix),
    );
    assert.deepEqual(
      splitCudaOptions({
        'arena.max_dead_bytes_per_chunk': '1048576',
        'arena.arena_extend_strategy': '1',
        cudnn_conv_algo_search: 'HEURISTIC',
      }),
      {
        cuda: { cudnn_conv_algo_search: 'HEURISTIC' },
        arena: { max_dead_bytes_per_chunk: 1048576, arena_extend_strategy: 1 },
      },
    );
    for (const bad of [{ 'arena.no_such_key': '1' }, { 'arena.max_mem': '-5' }, { 'arena.max_mem': '1e9' }] as Record<
      string,
      string
    >[]) {
      assert.throws(
        () => splitCudaOptions(bad),
        (e: unknown) =>
          e instanceof GpenLabError &&
          e.code === 'E_ARGUMENT' &&
          /arena\./.test(e.message) &&
          /arena\.max_dead_bytes_per_chunk=/.test(e.fix),
        JSON.stringify(bad),
      );
    }
    assert.throws(
      () => splitCudaOptions({ graph_optimization_level: '3' }),
      (e: unknown) =>
        e instanceof GpenLabError &&
        e.code === 'E_ARGUMENT' &&
        /graph_optimization_level/.test(e.message) &&
        /0, 1, 2, 99/.test(e.message),
    );
    assert.deepEqual(parseCudaOptions('cudnn_conv_algo_search=HEURISTIC, prefer_nhwc=1'), {
      cudnn_conv_algo_search: 'HEURISTIC',
      prefer_nhwc: '1',
    });
    for (const bad of ['HEURISTIC', '=1', 'k=', 'a=1,b']) {
      assert.throws(
        () => parseCudaOptions(bad),
        (e: unknown) =>
          e instanceof GpenLabError &&
          e.code === 'E_ARGUMENT' &&
          /--cuda-options/.test(e.message) &&
          /key=value/.test(e.message),
        bad,
      );
    }
    // gpen-lab's own keys are checked when the flag is parsed, before anything loads
    assert.throws(
      () => parseCudaOptions('graph_optimization_level=5'),
      (e: unknown) =>
        e instanceof GpenLabError && e.code === 'E_ARGUMENT' && /graph_optimization_level/.test(e.message),
    );
  });

  it('CUDA options with another provider are refused; with CUDA not installed, the fix is setup cuda (where a GPU is visible) or says there is none', async (t) => {
    const p = await prepareModel({ type: 'identity', size: 64 }, 'fp32');
    await assert.rejects(
      openSession(p.model, { provider: 'cpu', cudaOptions: { prefer_nhwc: '1' } }),
      (e: unknown) =>
        e instanceof GpenLabError &&
        e.code === 'E_ARGUMENT' &&
        /cudaOptions were given with the cpu provider/.test(e.message),
    );
    if (missingProviderFiles('cuda').length === 0) {
      t.skip('the CUDA provider is installed here: the second case needs a machine without it');
      return;
    }
    await assert.rejects(
      openSession(p.model, {
        provider: 'cuda',
        cudaOptions: { cudnn_conv_algo_search: 'HEURISTIC' },
        label: 'identity-64',
      }),
      (e: unknown) =>
        e instanceof GpenLabError &&
        e.code === 'E_PROVIDER_UNAVAILABLE' &&
        (nvidiaDeviceVisible() ? /setup cuda/ : /No NVIDIA GPU/).test(e.fix) &&
        e.details.input === 'identity-64',
    );
  });

  it('an early session is taken by the session asked for with the same file and configuration, once; another configuration makes its own', async (t) => {
    if (missingProviderFiles('cuda').length === 0) {
      t.skip(
        'the CUDA provider is installed here: this case tells sessions apart by their failure on a machine without it',
      );
      return;
    }
    const p = await prepareModel({ type: 'identity', size: 64 }, 'fp32');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gpen-early-'));
    try {
      const file = path.join(dir, 'id.onnx');
      writeFileSync(file, p.model as Uint8Array);
      const cfg = {
        provider: 'cuda' as const,
        label: file,
        allowSpinning: false,
        cudaOptions: { cudnn_conv_algo_search: 'HEURISTIC' },
      };
      const early = startEarlySession(file, cfg);
      const earlyError = await early.catch((e: unknown) => e);
      assert.ok(earlyError instanceof GpenLabError && earlyError.code === 'E_PROVIDER_UNAVAILABLE', String(earlyError));
      // the same file and configuration (options in another order): the early session's own outcome, the same object
      const taken = await openSession(file, { ...cfg, cudaOptions: { cudnn_conv_algo_search: 'HEURISTIC' } }).catch(
        (e: unknown) => e,
      );
      assert.equal(taken, earlyError);
      // taken once: the next request creates its own
      const again = await openSession(file, cfg).catch((e: unknown) => e);
      assert.ok(again instanceof GpenLabError && again !== earlyError);
      const other = startEarlySession(file, cfg);
      const otherError = await other.catch((e: unknown) => e);
      const different = await openSession(file, { ...cfg, label: 'another label' }).catch((e: unknown) => e);
      assert.notEqual(different, otherError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an arena configuration is checked by ONNX Runtime itself (CreateArenaCfgV2), and an unknown key is its coded error', () => {
    checkArenaConfig({
      max_dead_bytes_per_chunk: 1 << 20,
      arena_extend_strategy: 1,
      initial_chunk_size_bytes: 1 << 24,
    });
    // the CUDA pool's keys are ONNX Runtime 1.29's too (every key gpen-lab lets through is one it takes)
    checkArenaConfig({
      use_cuda_mempool: 1,
      cuda_mempool_release_threshold: 2 ** 33,
      cuda_mempool_bytes_to_keep_on_shrink: 0,
    });
    for (const k of ARENA_KEYS)
      checkArenaConfig({ [k]: k === 'arena_extend_strategy' || k === 'use_cuda_mempool' ? 1 : 1 << 20 });
    assert.throws(
      () => checkArenaConfig({ not_an_arena_key: 1 }),
      (e: unknown) =>
        e instanceof GpenLabError &&
        e.code === 'E_SESSION' &&
        /CreateArenaCfgV2\(not_an_arena_key\) failed: .*not_an_arena_key/.test(e.message),
    );
  });

  it('an arena configuration becomes an allocator registered with the environment, used by the sessions that ask (same output), replaced by the next configuration', async () => {
    const p = await prepareModel({ type: 'synthetic', size: 64, seed: 3 }, 'fp32');
    const S = 64,
      per = 3 * S * S;
    const x = Float32Array.from({ length: per }, (_, i) => Math.sin(i * 0.21) * 0.6);
    const plain = CapiSession.create(p.model, { provider: 'cpu' });
    const want = plain.run(x, [1, 3, S, S], per);
    plain.release();
    for (const arena of [
      { max_dead_bytes_per_chunk: 1 << 20, arena_extend_strategy: 1 },
      { initial_chunk_size_bytes: 1 << 22 },
      { initial_chunk_size_bytes: 1 << 22 },
    ] as Record<string, number>[]) {
      const c = CapiSession.create(p.model, { provider: 'cpu', arena });
      try {
        assert.deepEqual(c.run(x, [1, 3, S, S], per), want, JSON.stringify(arena));
      } finally {
        c.release();
      }
    }
    // ONNX Runtime refuses a session asking for the environment's allocators when the key is wrong: its coded error
    assert.throws(
      () => CapiSession.create(p.model, { provider: 'cpu', arena: { not_an_arena_key: 1 } }),
      (e: unknown) =>
        e instanceof GpenLabError && e.code === 'E_SESSION' && /CreateArenaCfgV2\(not_an_arena_key\)/.test(e.message),
    );
  });

  it("the arena's statistics (AllocatorGetStats): the peak in use after a run covers the largest activation, and the counts are whole", async () => {
    const p = await prepareModel({ type: 'synthetic', size: 64, seed: 3 }, 'fp32');
    const S = 64,
      per = 3 * S * S;
    const c = CapiSession.create(p.model, { provider: 'cpu', graphOptimizationLevel: 0 });
    try {
      c.run(new Float32Array(per).fill(0.2), [1, 3, S, S], per);
      const st = c.allocatorStats('cpu');
      assert.ok(st, "AllocatorGetStats is in onnxruntime-node 1.29.0's C API");
      for (const k of ['InUse', 'MaxInUse', 'TotalAllocated', 'NumAllocs'])
        assert.ok(Number.isInteger(st[k]) && st[k] >= 0, `${k}: ${st[k]}`);
      // GPEN-64's widest activation: 4 x 64 x 64 float32 channels... at least one 64 x 64 x 64 float32 map (1 MiB)
      assert.ok(st.MaxInUse >= 64 * 64 * 64 * 4, `MaxInUse ${st.MaxInUse}`);
      assert.ok(st.TotalAllocated >= st.MaxInUse && st.MaxInUse >= st.InUse, JSON.stringify(st));
    } finally {
      c.release();
    }
  });

  it('createAsync works on a worker thread: the event loop runs meanwhile, and the session computes the same output', async () => {
    const p = await prepareModel({ type: 'synthetic', size: 64, seed: 3 }, 'fp32');
    const S = 64,
      per = 3 * S * S;
    // a creation on this thread settles before the event loop turns again; one on another thread settles from the
    // loop, and takes far longer than one turn of it
    let turned = false;
    setImmediate(() => {
      turned = true;
    });
    const a = await CapiSession.createAsync(p.model, { provider: 'cpu' });
    const b = CapiSession.create(p.model, { provider: 'cpu' });
    try {
      assert.ok(turned, 'the event loop turned while the session was created');
      const x = Float32Array.from({ length: per }, (_, i) => Math.sin(i * 0.05) * 0.5);
      assert.deepEqual(a.run(x, [1, 3, S, S], per), b.run(x, [1, 3, S, S], per));
      const x2 = Float32Array.from({ length: 4 * per }, (_, i) => Math.cos(i * 0.01) * 0.5);
      assert.deepEqual(a.run(x2, [4, 3, S, S], 4 * per), b.run(x2, [4, 3, S, S], 4 * per));
    } finally {
      a.release();
      b.release();
    }
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gpen-capi-async-'));
    try {
      const bad = path.join(dir, 'not-a-model.onnx');
      writeFileSync(bad, 'not a model');
      await assert.rejects(
        CapiSession.createAsync(bad, { provider: 'cpu' }),
        (e: unknown) => e instanceof GpenLabError && e.code === 'E_SESSION' && /CreateSession failed/.test(e.message),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the C API table stays callable after garbage collection, with no other holder of libonnxruntime.so.1 in the process', () => {
    // A child process: the stock binding (which would keep the library mapped) is never loaded there.
    const script = [
      "import { load } from './src/runtime/capi/api.ts';",
      "import v8 from 'node:v8'; import vm from 'node:vm';",
      "v8.setFlagsFromString('--expose-gc'); const gc = vm.runInNewContext('gc');",
      'const a = load(); for (let i = 0; i < 5; i++) gc();',
      "const st = a.fns.CreateStatus(1, 'still mapped'); const msg = a.fns.GetErrorMessage(st); a.fns.ReleaseStatus(st);",
      'console.log(msg);',
    ].join('\n');
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: path.resolve(import.meta.dirname, '..'),
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.signal, null, `the child died of ${r.signal}: ${r.stderr}`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'still mapped');
  });
});
