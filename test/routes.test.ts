// What a user gets without flags (src/runtime/routes.ts, src/face/choose.ts): the table of provider x route x
// precision, the combinations refused, and auto's choices with faked availability: the session that runs is the
// probe, a candidate whose session fails is recorded with its reason and the next is tried, an explicit provider fails.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GpenLabError } from '../src/errors.js';
import { chooseSession } from '../src/face/choose.js';
import { nvidiaDeviceVisible } from '../src/runtime/providers.js';
import { Restorer } from '../src/face/restore.js';
import { PROVIDERS, missingProviderFiles } from '../src/runtime/providers.js';
import {
  COMBINATIONS,
  CUDA_SETS,
  PRECISIONS,
  ROUTES,
  combination,
  defaultBatch,
  describeChoice,
  fastCudaOptions,
} from '../src/runtime/routes.js';
import { useTempCache } from './helpers/cache-dir.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tmp = useTempCache('gpen-routes-');
const IDENTITY = { type: 'identity' as const, size: 64 };
const cudaInstalled = missingProviderFiles('cuda').length === 0;
const isCoded = (code: string, re: RegExp) => (e: unknown) =>
  e instanceof GpenLabError && e.code === code && re.test(`${e.message} ${e.fix}`);

describe('routes: the table of valid combinations', () => {
  it('holds every provider x route x precision once; fast is the C API on CUDA and the stock binding elsewhere', () => {
    assert.equal(COMBINATIONS.length, PROVIDERS.length * ROUTES.length * PRECISIONS.length);
    for (const c of COMBINATIONS) {
      assert.equal(
        c.binding,
        c.provider === 'cuda' && c.route === 'fast' ? 'capi' : 'stock',
        `${c.provider} ${c.route} ${c.precision}`,
      );
      assert.ok(c.note.length > 10);
    }
  });

  it('refuses CUDA options on another provider and on the stock route, saying what to do', () => {
    assert.throws(
      () => combination('cpu', 'fast', 'fp32', { prime: '1' }),
      isCoded('E_ARGUMENT', /cudaOptions.*cpu.*cuda provider/),
    );
    assert.throws(
      () => combination('cuda', 'stock', 'fp32', { prime: '1' }),
      isCoded('E_ARGUMENT', /stock route.*deviceId.*Use the fast route/),
    );
    assert.equal(combination('cuda', 'fast', 'fp16', { prime: '1' }).binding, 'capi');
  });

  it("the fast route's CUDA sets: one image the cold set, several and the service the warm set; FusedAct only for graphs built here", () => {
    assert.deepEqual(fastCudaOptions('single', true), CUDA_SETS.cold);
    assert.deepEqual(fastCudaOptions('batch', true), CUDA_SETS.warm);
    assert.deepEqual(fastCudaOptions('service', true), CUDA_SETS.warm);
    const { fused_act: _f, ...withoutFused } = CUDA_SETS.warm;
    assert.deepEqual(fastCudaOptions('batch', false), withoutFused);
  });
});

describe('auto: the provider chosen for the user', () => {
  const none = { cuda: () => 'faked: not installed', webgpu: () => 'faked: no hardware adapter' };

  it('on a machine with nothing but the CPU: cpu, fp32, the stock binding, batch 4, each skipped provider with its reason', async () => {
    const { first, settled } = await chooseSession({ model: IDENTITY, available: none });
    const plan = await settled;
    assert.equal(plan, first, 'the first candidate tried is the one that runs');
    const c = plan.choice;
    assert.deepEqual(
      [c.asked.provider, c.provider, c.route, c.binding, c.precision, c.batch, c.set, c.options],
      ['auto', 'cpu', 'fast', 'stock', 'fp32', 4, null, null],
    );
    assert.deepEqual(c.skipped, [
      { provider: 'cuda', reason: 'faked: not installed' },
      { provider: 'webgpu', reason: 'faked: no hardware adapter' },
    ]);
    assert.equal(
      describeChoice(c),
      'provider auto -> cpu (fast route: stock binding; fp32; batch 4; detector on cpu; single; runtime ort1.29-cuda13); cuda skipped: faked: not installed; webgpu skipped: faked: no hardware adapter',
    );
    await (await plan.runner).release();
  });

  it("this machine's own answers: cuda skipped for its missing provider files (with the setup command), then webgpu, then cpu", async (t) => {
    if (cudaInstalled) return t.skip('the CUDA provider is installed here');
    const plan = await (await chooseSession({ model: IDENTITY })).settled;
    assert.equal(plan.choice.provider, 'cpu');
    assert.deepEqual(
      plan.choice.skipped.map((s) => s.provider),
      ['cuda', 'webgpu'],
    );
    // without an NVIDIA device the GPU is the cause; with one, the missing files and the command that installs them
    assert.match(
      plan.choice.skipped[0].reason,
      nvidiaDeviceVisible()
        ? /libonnxruntime_providers_cuda\.so.*gpen-lab setup cuda/
        : /^no NVIDIA GPU or driver is visible .*nothing to install here$/,
    );
    assert.match(plan.choice.skipped[1].reason, /^no hardware adapter \(/);
    await (await plan.runner).release();
  });

  it('a candidate whose session fails is recorded and the next one runs: CUDA said to be there, its session cannot be made', async (t) => {
    if (cudaInstalled) return t.skip('the CUDA provider is installed here');
    const { first, settled } = await chooseSession({
      model: IDENTITY,
      available: { cuda: () => null, webgpu: () => 'faked: no hardware adapter' },
    });
    assert.deepEqual(
      [first.choice.provider, first.choice.binding, first.choice.precision, first.choice.batch, first.choice.set],
      ['cuda', 'capi', 'fp32', 1, 'cold'],
      'the first candidate: CUDA on the C API route with the cold set, one face a run (an identity model is fp32 whatever is asked)',
    );
    const plan = await settled;
    assert.equal(plan.choice.provider, 'cpu');
    assert.equal(plan.choice.skipped[0].provider, 'cuda');
    assert.match(
      plan.choice.skipped[0].reason,
      /cuda execution provider cannot load.*libonnxruntime_providers_cuda\.so/,
    );
    assert.equal(plan.choice.skipped[1].reason, 'faked: no hardware adapter');
    await (await plan.runner).release();
  });

  it("the default batch follows the provider, the binding and the job: 1 for a cold start on CUDA's C API route, 32 for a folder or the service there, 8 through the stock binding on a GPU, 4 on the CPU", () => {
    assert.deepEqual(
      [
        defaultBatch('cuda', 'capi', 'single'),
        defaultBatch('cuda', 'capi', 'batch'),
        defaultBatch('cuda', 'capi', 'service'),
      ],
      [1, 32, 32],
    );
    assert.deepEqual(
      [
        defaultBatch('cuda', 'stock', 'single'),
        defaultBatch('webgpu', 'stock', 'batch'),
        defaultBatch('tensorrt', 'stock', 'single'),
      ],
      [8, 8, 8],
    );
    assert.deepEqual([defaultBatch('cpu', 'stock', 'single'), defaultBatch('cpu', 'capi', 'batch')], [4, 4]);
  });

  it('an explicit provider is never replaced: --provider cuda fails with its diagnosis', async (t) => {
    if (cudaInstalled) return t.skip('the CUDA provider is installed here');
    const { settled } = await chooseSession({ model: IDENTITY, provider: 'cuda' });
    await assert.rejects(
      settled,
      isCoded(
        'E_PROVIDER_UNAVAILABLE',
        nvidiaDeviceVisible()
          ? /libonnxruntime_providers_cuda\.so.*gpen-lab setup cuda/
          : /libonnxruntime_providers_cuda\.so.*No NVIDIA GPU .*cannot help/,
      ),
    );
  });

  it('with --cuda-options, auto means CUDA only: nothing else to run them on', async () => {
    await assert.rejects(
      chooseSession({ model: IDENTITY, session: { cudaOptions: { prime: '1' } }, available: none }),
      isCoded('E_PROVIDER_UNAVAILABLE', /cuda: faked: not installed.*gpen-lab doctor/),
    );
  });

  it('refuses the stock route with cudaOptions, and honours an explicit precision and batch', async () => {
    await assert.rejects(
      chooseSession({ model: IDENTITY, provider: 'cuda', route: 'stock', session: { cudaOptions: { prime: '1' } } }),
      isCoded('E_ARGUMENT', /stock route/),
    );
    const plan = await (
      await chooseSession({ model: { type: 'synthetic', size: 64 }, precision: 'fp16', batch: 2, available: none })
    ).settled;
    assert.deepEqual(
      [plan.choice.provider, plan.choice.precision, plan.prepared.info.precision, plan.choice.batch],
      ['cpu', 'fp16', 'fp16', 2],
    );
    await (await plan.runner).release();
  });

  it('the RestoreResult says what was asked, what ran and why the others were skipped', async () => {
    const r = await Restorer.create({
      model: { type: 'identity', size: 256 },
      outDir: mkdtempSync(path.join(tmp, 'out-')),
      available: none,
    });
    try {
      const res = await r.restoreFile(path.join(REPO, 'assets', 'demo-face.png'));
      assert.equal(res.error, undefined);
      assert.deepEqual(res.provider, { asked: 'auto', chosen: 'cpu', ran: ['cpu'] });
      assert.deepEqual(
        [res.route.route, res.route.binding, res.route.precision, res.route.workload, res.route.detector.provider],
        ['fast', 'stock', 'fp32', 'single', 'cpu'],
      );
      assert.deepEqual(
        res.route.skipped.map((s) => s.provider),
        ['cuda', 'webgpu'],
      );
    } finally {
      await r.release();
    }
  });
});

describe('restore with no flag but the model and the output folder', () => {
  it('prints one line: auto resolved to cpu here, and why cuda and webgpu were skipped', async (t) => {
    if (cudaInstalled) return t.skip('the CUDA provider is installed here');
    const out = mkdtempSync(path.join(tmp, 'cli-'));
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', 'src/cli/index.ts', 'restore', 'assets/demo-face.png', '-o', out, '--synthetic', '64'],
        { cwd: REPO, env: { ...process.env, GPEN_LAB_CACHE: path.join(tmp, 'cache') }, timeout: 120_000 },
        (err, _stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, stderr }),
      );
    });
    assert.equal(r.code, 0, r.stderr);
    const line = r.stderr.split('\n').filter((l) => l.startsWith('provider auto'));
    assert.equal(line.length, 1, r.stderr);
    const cuda = nvidiaDeviceVisible()
      ? 'its provider is not installed .*gpen-lab setup cuda`'
      : 'no NVIDIA GPU or driver is visible \\(no /dev/nvidia\\* device\\): nothing to install here';
    assert.match(
      line[0],
      new RegExp(
        `^provider auto -> cpu \\(fast route: stock binding; fp32; batch 4; detector on cpu; single; runtime ort1\\.29-cuda13\\); cuda skipped: ${cuda}; webgpu skipped: no hardware adapter \\(.+\\)$`,
      ),
    );
  });
});

describe('a .pth converted once into the cache', () => {
  const TINY = path.join(REPO, '..', 'shared', 'fixtures', 'gpen', 'gpen-tiny-64.pth');

  it('the first preparation converts and writes it, the next loads the file; another precision or form is another entry', async () => {
    const { copyFileSync, statSync, utimesSync } = await import('node:fs');
    const { prepareModel } = await import('../src/model/registry.js');
    const pth = path.join(mkdtempSync(path.join(tmp, 'pth-')), 'tiny.pth');
    copyFileSync(TINY, pth);
    const a = await prepareModel({ type: 'file', file: pth }, 'fp32');
    assert.deepEqual(
      [typeof a.model, a.converted?.cached, a.info.format, a.info.precision],
      ['string', false, 'pth', 'fp32'],
    );
    assert.ok((a.model as string).startsWith(path.join(tmp, 'cache', 'converted')), String(a.model));
    const b = await prepareModel({ type: 'file', file: pth }, 'fp32');
    assert.deepEqual([b.model, b.converted?.cached, b.info.sha256], [a.model, true, a.info.sha256]);
    const c = await prepareModel({ type: 'file', file: pth }, 'fp16', { nhwc: true, fusedAct: true });
    assert.notEqual(c.model, a.model);
    assert.equal(c.converted?.cached, false);
    assert.match(String(c.model), /-fp16-g\d+-nhwc-fa-/);
    // the checkpoint changed (its mtime): converted again
    utimesSync(pth, new Date(), new Date(statSync(pth).mtimeMs + 10_000));
    const d = await prepareModel({ type: 'file', file: pth }, 'fp32');
    assert.notEqual(d.model, a.model);
    assert.equal(d.converted?.cached, false);
  });

  it('a cache that cannot be written keeps the graph in memory and says so', async (t) => {
    if (process.getuid?.() === 0) {
      // root writes anywhere: point the cache at a path under a file instead
      const file = path.join(mkdtempSync(path.join(tmp, 'ro-')), 'not-a-dir');
      const { writeFileSync } = await import('node:fs');
      writeFileSync(file, 'x');
      const before = process.env.GPEN_LAB_CACHE;
      process.env.GPEN_LAB_CACHE = path.join(file, 'cache');
      t.after(() => {
        process.env.GPEN_LAB_CACHE = before;
      });
    } else {
      return t.skip('needs a cache path that cannot be made');
    }
    const { prepareModel } = await import('../src/model/registry.js');
    const p = await prepareModel({ type: 'file', file: TINY }, 'fp32');
    assert.ok(p.model instanceof Uint8Array);
    assert.match(p.note ?? '', /could not be cached.*converts .* again/);
  });
});
