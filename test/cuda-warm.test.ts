// The CLI's CUDA warm-up (src/runtime/cuda-warm.ts): which command lines start it, and that on a machine without
// CUDA it reports the failing step with the library's name instead of throwing (it is an optimisation only).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { functionsAsync, warmCuda } from '../src/runtime/cuda-warm.js';
import { RESTORE_VALUE_FLAGS, earlyPlan, fetchedFile } from '../src/cli/early-start.js';
import { restoreCommand } from '../src/cli/restore.js';
import { convertedPaths } from '../src/model/converted.js';
import { fastCudaOptions } from '../src/runtime/routes.js';
import { useTempCache } from './helpers/cache-dir.js';
import koffi, { KOFFI_STACK_BYTES } from '../src/runtime/koffi.js';

const hasCudart = (): boolean => spawnSync('sh', ['-c', 'ldconfig -p | grep -q "libcudart.so.13 "']).status === 0;

describe('CUDA warm-up', () => {
  it('starts only for a restore that will run on CUDA: asked for, or auto with the provider installed; not when turned off', () => {
    const on = {} as NodeJS.ProcessEnv;
    const installed = () => true;
    const missing = () => false;
    const wants = (args: string[], env = on, cuda = installed) =>
      earlyPlan(['node', 'gpen-lab', ...args], env, cuda) !== null;
    assert.equal(wants(['restore', 'a.jpg', '-o', 'o', '--cuda-options', 'cudnn_conv_algo_search=HEURISTIC']), true);
    assert.equal(
      wants(['restore', 'a.jpg', '--provider', 'cuda'], on, missing),
      true,
      'asked for: warmed even where restore will then say what is missing',
    );
    assert.equal(wants(['restore', 'a.jpg', '--provider=cuda'], on, missing), true);
    assert.equal(wants(['restore', 'a.jpg', '--provider', 'cpu']), false);
    assert.equal(wants(['restore', 'a.jpg']), true, 'auto with the CUDA provider installed');
    assert.equal(wants(['restore', 'a.jpg'], on, missing), false, 'auto without it');
    assert.equal(wants(['restore', 'a.jpg', '--provider', 'auto'], on, missing), false);
    assert.equal(wants(['bench', '--provider', 'cuda']), false);
    assert.equal(wants(['restore', 'a.jpg', '--provider', 'cuda'], { GPEN_LAB_CUDA_WARMUP: '0' }), false);
  });

  it("an early session with the options restore will ask for: the fast route's set by workload, or --cuda-options", () => {
    useTempCache('gpen-lab-early-');
    const on = {} as NodeJS.ProcessEnv;
    const plan = (args: string[]) =>
      earlyPlan(['node', 'gpen-lab', 'restore', ...args], on, () => true)?.session ?? null;
    assert.deepEqual(plan(['a.jpg', '-o', 'o', '--model', 'g.onnx']), {
      model: 'g.onnx',
      label: 'g.onnx',
      cudaOptions: fastCudaOptions('single', false),
      userOptions: null,
    });
    assert.deepEqual(
      plan(['a.jpg', 'b.jpg', '-o', 'o', '--model', 'g.onnx'])?.cudaOptions,
      fastCudaOptions('batch', false),
      'two images: the warm set',
    );
    assert.deepEqual(
      plan(['-o', 'o', os.tmpdir(), '--model', 'g.onnx'])?.cudaOptions,
      fastCudaOptions('batch', false),
      'a folder: the warm set',
    );
    assert.deepEqual(plan(['a.jpg', '--model=dir/G.ONNX', '--provider=cuda', '--cuda-options=prime=1']), {
      model: 'dir/G.ONNX',
      label: 'dir/G.ONNX',
      cudaOptions: { prime: '1' },
      userOptions: 'prime=1',
    });
    for (const args of [
      ['a.jpg', '--synthetic', '512'], // built in memory
      ['a.jpg', '--model', 'g.onnx', '--route', 'stock'], // the stock binding
      ['a.jpg', '--model', 'g.onnx', '--help'],
    ])
      assert.equal(plan(args), null, args.join(' '));
  });

  it("an early session for a .pth once an earlier run converted it (the file restore will load), in the workload's form", () => {
    useTempCache('gpen-lab-early-pth-');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gpen-lab-early-pth-'));
    const pth = path.join(dir, 'GPEN-BFR-512.pth');
    writeFileSync(pth, 'weights');
    const plan = (args: string[]) =>
      earlyPlan(['node', 'gpen-lab', 'restore', ...args], {}, () => true)?.session ?? null;
    assert.equal(plan(['a.jpg', '--model', pth]), null, 'not converted yet: restore converts it first');
    const cold = convertedPaths(pth, { precision: 'fp16', nhwc: false, fusedAct: false });
    mkdirSync(path.dirname(cold.onnx), { recursive: true });
    writeFileSync(cold.onnx, 'graph');
    writeFileSync(cold.info, '{}');
    assert.deepEqual(plan(['a.jpg', '--model', pth]), {
      model: cold.onnx,
      label: pth,
      cudaOptions: fastCudaOptions('single', true),
      userOptions: null,
    });
    assert.equal(
      plan(['a.jpg', 'b.jpg', '--model', pth]),
      null,
      'the warm set needs the NHWC FusedAct form, not converted yet',
    );
    assert.equal(plan(['a.jpg', '--model', pth, '--precision', 'fp32']), null, 'another precision');
    rmSync(dir, { recursive: true, force: true });
  });

  it('an early session for a catalog name (--model GPEN-BFR-512) once `models get` fetched it and a run converted it', () => {
    useTempCache('gpen-lab-early-name-');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gpen-lab-early-name-'));
    const saved = process.env.GPEN_LAB_MODELS;
    process.env.GPEN_LAB_MODELS = dir;
    try {
      const pth = path.join(dir, 'GPEN-BFR-512.pth');
      const plan = (args: string[]) =>
        earlyPlan(['node', 'gpen-lab', 'restore', ...args], {}, () => true)?.session ?? null;
      assert.equal(fetchedFile('GPEN-BFR-512'), 'GPEN-BFR-512', 'not fetched: the argument stays as it is');
      writeFileSync(pth, 'weights');
      assert.equal(fetchedFile('GPEN-BFR-512'), pth);
      assert.equal(fetchedFile('gpen-bfr-512.pth'), pth, 'the file name, either case');
      const cold = convertedPaths(pth, { precision: 'fp16', nhwc: false, fusedAct: false });
      mkdirSync(path.dirname(cold.onnx), { recursive: true });
      writeFileSync(cold.onnx, 'graph');
      writeFileSync(cold.info, '{}');
      // the label is the file, as prepareModel's for a name it located
      assert.deepEqual(plan(['a.jpg', '--model', 'GPEN-BFR-512']), {
        model: cold.onnx,
        label: pth,
        cudaOptions: fastCudaOptions('single', true),
        userOptions: null,
      });
      assert.deepEqual(plan(['a.jpg', '--model=GPEN-BFR-512']), {
        model: cold.onnx,
        label: pth,
        cudaOptions: fastCudaOptions('single', true),
        userOptions: null,
      });
    } finally {
      if (saved === undefined) delete process.env.GPEN_LAB_MODELS;
      else process.env.GPEN_LAB_MODELS = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reads restore's value flags as the command defines them", () => {
    const defined = restoreCommand()
      .options.filter((o) => o.required || o.optional)
      .flatMap((o) => [o.short, o.long])
      .filter((f): f is string => !!f);
    assert.deepEqual([...defined].sort(), [...RESTORE_VALUE_FLAGS].sort());
  });

  it("the CLI's first module widens libuv's thread pool for a CUDA restore only (the warm-up's long calls would queue file reads)", () => {
    const probe = (args: string[], env: NodeJS.ProcessEnv = {}) =>
      spawnSync(
        process.execPath,
        [
          '--import',
          'tsx',
          '--input-type=module',
          '-e',
          "await import('./src/cli/warm-start.ts'); process.stdout.write(String(process.env.UV_THREADPOOL_SIZE))",
          'gpen-lab',
          ...args,
        ],
        {
          encoding: 'utf8',
          timeout: 60_000,
          env: { ...process.env, UV_THREADPOOL_SIZE: '', GPEN_LAB_CUDA_WARMUP: '', ...env },
        },
      );
    const clean = (r: ReturnType<typeof probe>) => {
      assert.equal(r.status, 0, r.stderr);
      return r.stdout;
    };
    assert.equal(clean(probe(['restore', 'a.png', '--provider', 'cuda'])), '8');
    assert.equal(clean(probe(['restore', 'a.png', '--provider', 'cpu'])), '');
    assert.equal(
      clean(probe(['restore', 'a.png', '--provider', 'cuda'], { UV_THREADPOOL_SIZE: '16' })),
      '16',
      'a size the user set stays',
    );
  });

  it('finds functions on worker threads (dlopen, dlsym) and calls them; a missing library or symbol is named', async () => {
    const { cos } = await functionsAsync('libm.so.6', { cos: koffi.proto('double gpenTestWarmCos(double x)') });
    const r = await new Promise<number>((resolve, reject) =>
      cos.async(0, (err: unknown, v: number) => (err ? reject(err) : resolve(v))),
    );
    assert.equal(r, 1);
    await assert.rejects(
      functionsAsync('libm.so.6', { no_such_function_here: koffi.proto('int gpenTestWarmMissing()') }),
      /no_such_function_here was not found in libm\.so\.6/,
    );
    await assert.rejects(
      functionsAsync('libgpen-no-such-library.so.1', {}),
      /libgpen-no-such-library\.so\.1 could not be loaded/,
    );
  });

  it("runs native calls on 8 MiB stacks (async CreateSession and cudaFree(0) overflowed koffi's 128 KiB default)", () => {
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
