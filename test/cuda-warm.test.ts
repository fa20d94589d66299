// The CLI's CUDA warm-up (src/runtime/cuda-warm.ts): which command lines start it, and that on a machine without
// CUDA it reports the failing step with the library's name instead of throwing (it is an optimisation only).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { earlySessionArgs, functionsAsync, warmCuda, wantsCudaWarmup } from '../src/runtime/cuda-warm.js';
import koffi, { KOFFI_STACK_BYTES } from '../src/runtime/koffi.js';

const hasCudart = (): boolean => spawnSync('sh', ['-c', 'ldconfig -p | grep -q "libcudart.so.13 "']).status === 0;

describe('CUDA warm-up', () => {
  it('starts only for a CUDA restore, and not when turned off', () => {
    const on = {} as NodeJS.ProcessEnv;
    assert.equal(wantsCudaWarmup(['node', 'gpen-lab', 'restore', 'a.jpg', '-o', 'o', '--cuda-options', 'cudnn_conv_algo_search=HEURISTIC'], on), true);
    assert.equal(wantsCudaWarmup(['node', 'gpen-lab', 'restore', 'a.jpg', '-o', 'o', '--cuda-options=x=1'], on), true);
    assert.equal(wantsCudaWarmup(['node', 'gpen-lab', 'restore', 'a.jpg', '--provider', 'cuda'], on), true);
    assert.equal(wantsCudaWarmup(['node', 'gpen-lab', 'restore', 'a.jpg', '--provider=cuda'], on), true);
    assert.equal(wantsCudaWarmup(['node', 'gpen-lab', 'restore', 'a.jpg', '--provider', 'cpu'], on), false);
    assert.equal(wantsCudaWarmup(['node', 'gpen-lab', 'restore', 'a.jpg'], on), false);
    assert.equal(wantsCudaWarmup(['node', 'gpen-lab', 'bench', '--provider', 'cuda'], on), false);
    assert.equal(wantsCudaWarmup(['node', 'gpen-lab', 'restore', 'a.jpg', '--provider', 'cuda'], { GPEN_LAB_CUDA_WARMUP: '0' }), false);
  });

  it('an early session only for a CUDA restore of an ONNX file with --cuda-options, in either flag form', () => {
    const on = {} as NodeJS.ProcessEnv;
    const base = ['node', 'gpen-lab', 'restore', 'a.jpg', '-o', 'o'];
    assert.deepEqual(earlySessionArgs([...base, '--model', 'g.onnx', '--provider', 'cuda', '--cuda-options', 'cudnn_conv_algo_search=HEURISTIC'], on), { model: 'g.onnx', cudaOptions: 'cudnn_conv_algo_search=HEURISTIC' });
    assert.deepEqual(earlySessionArgs([...base, '--model=dir/G.ONNX', '--provider=cuda', '--cuda-options=prime=1'], on), { model: 'dir/G.ONNX', cudaOptions: 'prime=1' });
    for (const args of [
      ['--model', 'g.pth', '--provider', 'cuda', '--cuda-options', 'prime=1'], // a .pth is converted first
      ['--synthetic', '512', '--provider', 'cuda', '--cuda-options', 'prime=1'],
      ['--model', 'g.onnx', '--provider', 'cuda'], // the stock binding
      ['--model', 'g.onnx', '--cuda-options', 'prime=1'], // restore refuses CUDA options without --provider cuda
      ['--model', 'g.onnx', '--provider', 'cuda', '--cuda-options', 'prime=1', '--help'],
    ]) assert.equal(earlySessionArgs([...base, ...args], on), null, args.join(' '));
    assert.equal(earlySessionArgs([...base, '--model', 'g.onnx', '--provider', 'cuda', '--cuda-options', 'prime=1'], { GPEN_LAB_CUDA_WARMUP: '0' }), null);
    // the early session alone off (bench --cold-without-early-session): the warm-up stays on
    assert.equal(earlySessionArgs([...base, '--model', 'g.onnx', '--provider', 'cuda', '--cuda-options', 'prime=1'], { GPEN_LAB_EARLY_SESSION: '0' }), null);
    assert.equal(wantsCudaWarmup([...base, '--model', 'g.onnx', '--provider', 'cuda', '--cuda-options', 'prime=1'], { GPEN_LAB_EARLY_SESSION: '0' }), true);
  });

  it('the CLI\'s first module widens libuv\'s thread pool for a CUDA restore only (the warm-up\'s long calls would queue file reads)', () => {
    const probe = (args: string[], env: NodeJS.ProcessEnv = {}) => spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', "await import('./src/cli/warm-start.ts'); process.stdout.write(String(process.env.UV_THREADPOOL_SIZE))", ...args],
      { encoding: 'utf8', timeout: 60_000, env: { ...process.env, UV_THREADPOOL_SIZE: '', GPEN_LAB_CUDA_WARMUP: '', ...env } });
    const clean = (r: ReturnType<typeof probe>) => { assert.equal(r.status, 0, r.stderr); return r.stdout; };
    assert.equal(clean(probe(['restore', 'a.png', '--provider', 'cuda'])), '8');
    assert.equal(clean(probe(['restore', 'a.png'])), '');
    assert.equal(clean(probe(['restore', 'a.png', '--provider', 'cuda'], { UV_THREADPOOL_SIZE: '16' })), '16', 'a size the user set stays');
  });

  it('finds functions on worker threads (dlopen, dlsym) and calls them; a missing library or symbol is named', async () => {
    const { cos } = await functionsAsync('libm.so.6', { cos: koffi.proto('double gpenTestWarmCos(double x)') });
    const r = await new Promise<number>((resolve, reject) => cos.async(0, (err: unknown, v: number) => (err ? reject(err) : resolve(v))));
    assert.equal(r, 1);
    await assert.rejects(functionsAsync('libm.so.6', { no_such_function_here: koffi.proto('int gpenTestWarmMissing()') }), /no_such_function_here was not found in libm\.so\.6/);
    await assert.rejects(functionsAsync('libgpen-no-such-library.so.1', {}), /libgpen-no-such-library\.so\.1 could not be loaded/);
  });

  it('runs native calls on 8 MiB stacks (async CreateSession and cudaFree(0) overflowed koffi\'s 128 KiB default)', () => {
    const c = koffi.config();
    assert.equal(c.async_stack_size, KOFFI_STACK_BYTES);
    assert.equal(c.sync_stack_size, KOFFI_STACK_BYTES);
    assert.ok(KOFFI_STACK_BYTES >= 8 * 1024 * 1024);
  });

  it('reports each step, and a missing CUDA runtime as a failed context step naming the library', async () => {
    const r = await warmCuda();
    assert.ok(r.startedAt > 0);
    assert.ok(r.steps.context, 'the context step always runs first');
    assert.ok(r.steps.context.ms >= 0);
    if (!hasCudart() && !existsSync('/dev/nvidia0')) {
      assert.equal(r.steps.context.ok, false);
      assert.match(r.steps.context.error ?? '', /libcudart\.so\.13/);
      assert.deepEqual(Object.keys(r.steps), ['context'], 'nothing else is tried without a context');
    } else if (r.steps.context.ok) {
      assert.ok(r.steps.cudnn && r.steps.cublas, 'cuDNN and cuBLAS are warmed after the context');
    }
  });
});
