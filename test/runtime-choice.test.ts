// Which runtime build runs (src/runtime/runtime-choice.ts) with faked installed builds and driver versions: asked for,
// it is checked and never replaced; not asked for, a GPU provider takes the installed build that fits the driver.
// Its record in the RouteChoice and restore's line, the CLI's early plan, the lab's cells of a build, and the driver's
// CUDA ceiling read from a stub libcuda.so.1.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { GpenLabError } from '../src/errors.js';
import { earlyPlan } from '../src/cli/early-start.js';
import { chooseSession } from '../src/face/choose.js';
import { defaultConfig, normalizeConfig } from '../src/lab/config.js';
import type { LabConfigInput } from '../src/lab/types.js';
import type { RuntimeBuild } from '../src/runtime/builds.js';
import { checkCapiProvider, describeChoice } from '../src/runtime/routes.js';
import { chooseRuntime, type RuntimeProbe } from '../src/runtime/runtime-choice.js';
import type { GpenRunner } from '../src/runtime/session.js';
import { useTempCache } from './helpers/cache-dir.js';
import { buildLib, haveCc, VERSION_C } from './helpers/native.js';

const tmp = useTempCache('gpen-runtime-choice-');
const NEW = 'ort1.29-cuda13';
const OLD = 'ort1.19-cuda12';
const isCoded = (code: string, re: RegExp) => (e: unknown) =>
  e instanceof GpenLabError && e.code === code && re.test(`${e.message} ${e.fix}`) && e.details.option === 'runtime';

/** A machine with these builds installed (library and CUDA provider) and this driver; asking a driver nobody needs fails. */
function machine(
  installed: RuntimeBuild[],
  driver: number | null,
  libraries: RuntimeBuild[] = installed,
): RuntimeProbe {
  return {
    installed: () => installed,
    driverCuda: () => driver,
    hasLibrary: (b) => libraries.includes(b),
  };
}
const noDriverAsked: RuntimeProbe = {
  ...machine([NEW], null),
  driverCuda: () => assert.fail("the driver is asked only where a build other than onnxruntime-node's is installed"),
};

describe('the runtime build not asked for', () => {
  it("cpu, webgpu and the stock route run onnxruntime-node's own build, whatever is installed", () => {
    const both = machine([NEW, OLD], 12020);
    for (const [provider, route] of [
      ['cpu', 'fast'],
      ['webgpu', 'fast'],
      ['cuda', 'stock'],
      ['auto', 'stock'],
    ] as const) {
      const r = chooseRuntime({ provider, route }, both);
      assert.deepEqual([r.asked, r.build], ['auto', NEW], `${provider} ${route}`);
      assert.match(r.reason, /onnxruntime-node's own build/);
    }
  });

  it("a GPU provider takes the newest installed build the driver runs; with none, onnxruntime-node's, saying why", () => {
    const cases: [RuntimeBuild[], number | null, RuntimeBuild, RegExp][] = [
      [[NEW, OLD], 13000, NEW, /^the driver runs CUDA 13; ort1\.29-cuda13 needs CUDA 13$/],
      [[NEW, OLD], 12080, OLD, /^the driver runs CUDA 12; ort1\.19-cuda12 needs CUDA 12$/],
      [[OLD], 12020, OLD, /needs CUDA 12/],
      [[OLD], 13000, OLD, /the driver runs CUDA 13; ort1\.19-cuda12/],
      [
        [NEW, OLD],
        11080,
        NEW,
        /own build: the driver runs CUDA 11 at most, and the installed builds need ort1\.29-cuda13: CUDA 13, ort1\.19-cuda12: CUDA 12/,
      ],
      [[OLD], null, NEW, /own build: no NVIDIA driver answers here/],
    ];
    for (const [installed, driver, build, reason] of cases) {
      for (const provider of ['cuda', 'tensorrt', 'auto'] as const) {
        const r = chooseRuntime({ provider, route: 'fast' }, machine(installed, driver));
        assert.equal(r.build, build, `${provider}, ${installed.join('+')}, driver ${driver}`);
        assert.equal(r.asked, 'auto');
        assert.match(r.reason, reason);
      }
    }
    assert.match(
      chooseRuntime({ provider: 'cuda', route: 'fast' }, { ...noDriverAsked, installed: () => [] }).reason,
      /no build has its CUDA provider installed \(gpen-lab setup cuda\)/,
    );
    assert.equal(chooseRuntime({ provider: 'cuda', route: 'fast' }, noDriverAsked).build, NEW);
  });
});

describe('the runtime build asked for', () => {
  it('is the one that runs, once checked', () => {
    assert.deepEqual(chooseRuntime({ runtime: OLD, provider: 'cpu', route: 'fast' }, machine([], null, [OLD])), {
      asked: OLD,
      build: OLD,
      reason: 'asked for',
    });
    assert.equal(chooseRuntime({ runtime: OLD, provider: 'cuda', route: 'fast' }, machine([OLD], 12020)).build, OLD);
    // onnxruntime-node's own needs nothing installed here: its providers' absence is the session's diagnosis
    assert.equal(chooseRuntime({ runtime: NEW, provider: 'cuda', route: 'stock' }, machine([], 11000)).build, NEW);
  });

  it('a provider or route the build lacks, or a build outside the set: E_ARGUMENT naming runtime', () => {
    const m = machine([OLD], 12020);
    assert.throws(
      () => chooseRuntime({ runtime: OLD, provider: 'cpu', route: 'stock' }, m),
      isCoded('E_ARGUMENT', /ort1\.19-cuda12 has no stock route/),
    );
    assert.throws(
      () => chooseRuntime({ runtime: OLD, provider: 'auto', route: 'stock' }, m),
      isCoded('E_ARGUMENT', /no stock route/),
    );
    assert.throws(
      () => chooseRuntime({ runtime: OLD, provider: 'webgpu', route: 'fast' }, m),
      isCoded('E_ARGUMENT', /has no webgpu provider/),
    );
    assert.throws(
      () => chooseRuntime({ runtime: 'ort1.18' as RuntimeBuild, provider: 'cpu', route: 'fast' }, m),
      isCoded('E_ARGUMENT', /one of ort1\.29-cuda13, ort1\.19-cuda12 for runtime/),
    );
    // the C API route drives cpu and cuda: TensorRT stays onnxruntime-node's binding's
    assert.throws(
      () => checkCapiProvider('tensorrt', OLD),
      isCoded('E_ARGUMENT', /cpu and cuda providers, not tensorrt/),
    );
  });

  it('not installed, or too new for the driver: E_RUNTIME_VERSION with the command that fixes it, never another build', () => {
    const setup = /gpen-lab setup cuda --runtime ort1\.19-cuda12/;
    assert.throws(
      () => chooseRuntime({ runtime: OLD, provider: 'cpu', route: 'fast' }, machine([NEW], 13000)),
      (e: unknown) =>
        isCoded('E_RUNTIME_VERSION', /ort1\.19-cuda12 is not installed: its library .* is missing/)(e) &&
        setup.test((e as GpenLabError).fix),
    );
    assert.throws(
      () => chooseRuntime({ runtime: OLD, provider: 'cuda', route: 'fast' }, machine([NEW], 13000, [NEW, OLD])),
      (e: unknown) =>
        isCoded('E_RUNTIME_VERSION', /has no CUDA provider installed/)(e) && setup.test((e as GpenLabError).fix),
    );
    assert.throws(
      () => chooseRuntime({ runtime: OLD, provider: 'cuda', route: 'fast' }, machine([OLD], 11040)),
      isCoded(
        'E_RUNTIME_VERSION',
        /does not fit this machine: it needs CUDA 12 \(an NVIDIA driver 525 or newer\) and the driver runs CUDA 11 at most/,
      ),
    );
  });
});

/** A session made elsewhere: the choice is recorded and no library is loaded. */
const fakeRunner = (): Promise<GpenRunner> =>
  Promise.resolve({
    asked: 'cpu',
    createMs: 0,
    placement: null,
    cudaOptions: null,
    run: () => Promise.reject(new Error('not run')),
    release: () => Promise.resolve(),
  });
const IDENTITY = { type: 'identity' as const, size: 64 };

describe("the choice recorded in the RouteChoice and said in restore's line", () => {
  it('cuda on a driver 535 machine with both builds: ort1.19-cuda12 through the C API, its detector too, and why', async () => {
    const { settled } = await chooseSession({
      model: IDENTITY,
      provider: 'cuda',
      workload: 'batch',
      runner: fakeRunner(),
      runtimeProbe: machine([NEW, OLD], 12020),
    });
    const c = (await settled).choice;
    assert.deepEqual(c.runtime, {
      asked: 'auto',
      build: OLD,
      reason: 'the driver runs CUDA 12; ort1.19-cuda12 needs CUDA 12',
    });
    assert.deepEqual([c.binding, c.set, c.detector], ['capi', 'warm', { provider: 'cuda', capi: true }]);
    assert.equal(
      describeChoice(c),
      'provider cuda -> cuda (fast route: C API, warm set; fp32; batch 32; detector on cuda; batch); runtime auto -> ort1.19-cuda12: the driver runs CUDA 12; ort1.19-cuda12 needs CUDA 12',
    );
  });

  it('auto with ort1.19-cuda12: webgpu is skipped for the build, the CPU runs on its C API with no CUDA options', async () => {
    const { settled } = await chooseSession({
      model: IDENTITY,
      runtime: OLD,
      runner: fakeRunner(),
      available: { cuda: () => 'faked: no GPU' },
      runtimeProbe: machine([], null, [OLD]),
    });
    const c = (await settled).choice;
    assert.deepEqual([c.provider, c.binding, c.options, c.set, c.batch], ['cpu', 'capi', null, null, 4]);
    assert.deepEqual(c.detector, { provider: 'cpu', capi: true });
    assert.deepEqual(c.runtime, { asked: OLD, build: OLD, reason: 'asked for' });
    assert.equal(
      describeChoice(c),
      "provider auto -> cpu (fast route: C API; fp32; batch 4; detector on cpu; single; runtime ort1.19-cuda12); cuda skipped: faked: no GPU; webgpu skipped: the runtime ort1.19-cuda12 has no webgpu provider (it is onnxruntime-node 1.29.0's)",
    );
  });

  it("the CPU by default: onnxruntime-node's build, said without a reason; a detector the build cannot run is refused", async () => {
    const { settled } = await chooseSession({
      model: IDENTITY,
      provider: 'cpu',
      runner: fakeRunner(),
      runtimeProbe: noDriverAsked,
    });
    const c = (await settled).choice;
    assert.deepEqual([c.binding, c.runtime?.build, c.runtime?.asked], ['stock', NEW, 'auto']);
    assert.match(describeChoice(c), /; single; runtime ort1\.29-cuda13\)$/);
    await assert.rejects(
      chooseSession({
        model: IDENTITY,
        provider: 'cpu',
        runtime: OLD,
        detectorProvider: 'webgpu',
        runner: fakeRunner(),
        runtimeProbe: machine([], null, [OLD]),
      }),
      (e: unknown) => e instanceof GpenLabError && e.code === 'E_ARGUMENT' && e.details.option === 'detectorProvider',
    );
  });
});

describe("the CLI's early plan takes the build restore will choose", () => {
  const plan = (args: string[], probe: RuntimeProbe) =>
    earlyPlan(['node', 'gpen-lab', 'restore', 'a.jpg', '-o', 'o', ...args], {}, () => true, probe);

  it("the CUDA it warms up and the early session it starts are the build's; a command line restore refuses starts neither", () => {
    assert.equal(plan(['--provider', 'cuda'], machine([NEW, OLD], 12020))?.build, OLD);
    assert.equal(plan([], machine([NEW, OLD], 13000))?.build, NEW);
    assert.equal(plan(['--provider', 'cuda', '--runtime', OLD], machine([OLD], 12020))?.build, OLD);
    assert.equal(plan(['--provider', 'cuda', '--runtime', OLD, '--route', 'stock'], machine([OLD], 12020)), null);
    assert.equal(plan(['--provider', 'cuda', '--runtime', OLD], machine([], 12020)), null, 'not installed');
    assert.equal(plan(['--provider', 'cuda', '--runtime', 'ort1.18'], machine([OLD], 12020)), null);
    assert.equal(plan(['--provider', 'cpu', '--runtime', OLD], machine([OLD], 12020)), null, 'no CUDA on the CPU');
  });
});

describe('lab cells of a runtime build', () => {
  const cfg = (cells: LabConfigInput['cells']) =>
    normalizeConfig({ inputs: ['a.png'], model: { identity: 64 }, cells }, tmp, 'lab.json');

  it('take runtime: the id ends in the build, the default build leaves the id as it was', () => {
    const c = cfg([
      { provider: 'cpu', runtime: OLD },
      { provider: 'cuda', precision: 'fp16', runtime: OLD },
      { provider: 'cuda', precision: 'fp16', runtime: NEW },
    ]).cells;
    assert.deepEqual(
      c.map((x) => [x.id, x.runtime]),
      [
        ['cpu-fp32-ort1.19', OLD],
        ['cuda-fast-fp16-ort1.19', OLD],
        ['cuda-fast-fp16', NEW],
      ],
    );
  });

  it('a matrix axis of builds: a cell per build, the default build leaving the id as it was', () => {
    const m = normalizeConfig(
      { inputs: ['a.png'], model: { identity: 64 }, matrix: { provider: ['cpu'], runtime: [NEW, OLD] } },
      tmp,
      'lab.json',
    ).cells;
    assert.deepEqual(
      m.map((x) => [x.id, x.runtime]),
      [
        ['cpu-fp32', NEW],
        ['cpu-fp32-ort1.19', OLD],
      ],
    );
  });

  it('a combination the build lacks, or a build outside the set: E_CONFIG naming the cell', () => {
    for (const [cell, re] of [
      [
        { provider: 'cuda', route: 'stock', runtime: OLD },
        /cell "cuda-stock-fp32-ort1\.19" \(provider cuda, route stock, runtime ort1\.19-cuda12\) is not a valid combination: The runtime ort1\.19-cuda12 has no stock route/,
      ],
      [{ provider: 'webgpu', runtime: OLD }, /cell "webgpu-fp32-ort1\.19".*has no webgpu provider/],
      [{ provider: 'tensorrt', runtime: OLD }, /cell "tensorrt-fp32-ort1\.19".*cpu and cuda providers, not tensorrt/],
      [
        { provider: 'cpu', runtime: 'ort1.18' },
        /\/cells\/0\/runtime must be equal to one of the allowed values \(ort1\.29-cuda13, ort1\.19-cuda12\)/,
      ],
    ] as const) {
      assert.throws(
        () => cfg([cell as NonNullable<LabConfigInput['cells']>[number]]),
        (e: unknown) => e instanceof GpenLabError && e.code === 'E_CONFIG' && re.test(e.message),
      );
    }
  });

  it("the default lab: one CUDA fast fp16 cell per installed build beside onnxruntime-node's; none installed changes nothing", () => {
    const m = { knownByBinary: ['cpu', 'cuda', 'tensorrt'] as const, installed: ['cuda'] as const, gpu: true };
    const base = defaultConfig('f.png', 'p.png', {
      ...m,
      knownByBinary: [...m.knownByBinary],
      installed: [...m.installed],
    });
    for (const builds of [[], [NEW]] as RuntimeBuild[][]) {
      assert.deepEqual(
        defaultConfig('f.png', 'p.png', {
          knownByBinary: [...m.knownByBinary],
          installed: [...m.installed],
          gpu: true,
          builds,
        }),
        base,
      );
    }
    const both = defaultConfig('f.png', 'p.png', {
      knownByBinary: [...m.knownByBinary],
      installed: [...m.installed],
      gpu: true,
      builds: [NEW, OLD],
    });
    assert.deepEqual(both.cells.slice(0, -1), base.cells);
    assert.deepEqual(both.cells.at(-1), {
      id: 'cuda-fast-fp16-ort1.19',
      provider: 'cuda',
      route: 'fast',
      precision: 'fp16',
      runtime: OLD,
    });
    assert.equal(both.reference, base.reference);
    const noGpu = defaultConfig('f.png', 'p.png', { knownByBinary: ['cpu'], installed: [], gpu: false, builds: [OLD] });
    assert.equal(noGpu.cells.at(-1)?.id, 'cuda-fast-fp16-ort1.19');
  });
});

describe("the driver's CUDA ceiling (cuDriverGetVersion of libcuda.so.1)", () => {
  const ask = (env: Record<string, string>) => {
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        "const { driverCudaVersion } = await import('./src/runtime/cuda/driver.ts'); console.log(JSON.stringify([driverCudaVersion(), driverCudaVersion()]));",
      ],
      { encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } },
    );
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as (number | null)[];
  };

  it("answers the stub driver's version, and null where it answers an error or there is no libcuda", (t) => {
    if (!haveCc()) return t.skip('no C compiler to build the stub libcuda.so.1');
    const ok = path.join(tmp, 'driver-535');
    buildLib(ok, 'libcuda.so.1', VERSION_C.cuda(12020));
    assert.deepEqual(ask({ LD_LIBRARY_PATH: ok }), [12020, 12020]);
    const failing = path.join(tmp, 'driver-failing');
    buildLib(failing, 'libcuda.so.1', 'int cuDriverGetVersion(int *v) { *v = 12020; return 100; }');
    assert.deepEqual(ask({ LD_LIBRARY_PATH: failing }), [null, null]);
    const none = path.join(tmp, 'driver-none');
    buildLib(none, 'libunrelated.so.1', 'int unrelated(void) { return 0; }');
    if (spawnSync('sh', ['-c', 'ldconfig -p | grep -q "libcuda.so.1 "']).status !== 0)
      assert.deepEqual(ask({ LD_LIBRARY_PATH: none }), [null, null]);
  });
});
