// setup cuda chooses the runtime build from the driver, read through stub NVMLs built with cc: 535 installs
// ort1.19-cuda12 in its own folder of the cache (with its libonnxruntime), 580 installs ort1.29-cuda13 beside
// onnxruntime-node's library (a stand-in folder here), 470 is refused with the driver to install; --runtime forces a
// build, no driver keeps the default build, the library's fetch failing installs nothing, builds sit side by side and
// --remove takes one or every build away. The provider packages are small stand-ins built here (the real ones weigh
// 230 and 535 MB); the facts recorded from the real 0.2.1 package are checked as records.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as tar from 'tar';
import { GpenLabError } from '../src/errors.js';
import { PROVIDER_PACKAGES } from '../src/doctor/provider-files.js';
import { BUILD_REQUIREMENTS, RECORDED_KERNELS } from '../src/doctor/requirements.js';
import { chooseSetupBuild } from '../src/doctor/setup-choice.js';
import type { ProviderFile, SetupOptions } from '../src/doctor/setup-cuda.js';
import { PACKAGE_LIB_DIR, setupCuda } from '../src/doctor/setup-cuda.js';
import type { RuntimeBuild } from '../src/runtime/builds.js';
import { BUILD_SPECS, buildLibraryPath, installedBuilds, providerDir } from '../src/runtime/builds.js';
import { useTempCache } from './helpers/cache-dir.js';
import { requireCc } from './helpers/native.js';
import { buildNvmlStub } from './helpers/nvml-stub.js';

const tmp = useTempCache('gpen-setup-builds-');
const OLD = 'ort1.19-cuda12' as const;
const NEW = 'ort1.29-cuda13' as const;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const none = (n: string) => path.join(tmp, `no-${n}`);

/** A stand-in of a build's provider package: a folder with its layout, the same as an npm tarball, the records. */
interface Fake {
  dir: string;
  tgz: string;
  files: ProviderFile[];
}
const fakes = {} as Record<RuntimeBuild, Fake>;
const drivers = {} as Record<'d470' | 'd525' | 'd535' | 'd580', SetupOptions['gpuSources']>;

async function fakePackage(build: RuntimeBuild): Promise<Fake> {
  const dir = path.join(tmp, `pkg-${build}`);
  const lib = path.join(dir, 'package', PACKAGE_LIB_DIR);
  mkdirSync(lib, { recursive: true });
  const files = PROVIDER_PACKAGES[build].files.map((f) => {
    const body = Buffer.from(`stand-in for ${build}'s ${f.name}\n`);
    writeFileSync(path.join(lib, f.name), body);
    return { ...f, sha256: sha(body), bytes: body.length };
  });
  writeFileSync(path.join(dir, 'package', 'package.json'), '{"name":"stand-in"}');
  const tgz = path.join(tmp, `pkg-${build}.tgz`);
  await tar.c({ gzip: true, file: tgz, cwd: dir }, ['package']);
  return { dir, tgz, files };
}

/** onnxruntime-node's folder, stood in for: ort1.29's providers go beside its libonnxruntime.so.1. */
function ortBin(name: string): string {
  const d = path.join(tmp, name);
  mkdirSync(d, { recursive: true });
  writeFileSync(path.join(d, 'libonnxruntime.so.1'), 'runtime');
  return d;
}

/** ort1.19's libonnxruntime as ensureBuildLibrary leaves it (it checks the size of a file there): a sparse file. */
function placeLibrary(cache: string): string {
  const lib = BUILD_SPECS[OLD].library;
  const p = buildLibraryPath(OLD, cache);
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, '');
  truncateSync(p, lib.bytes);
  return p;
}

const cacheFor = (name: string) => path.join(tmp, `cache-${name}`);

before(async () => {
  requireCc();
  fakes[OLD] = await fakePackage(OLD);
  fakes[NEW] = await fakePackage(NEW);
  for (const [key, driver, cuda] of [
    ['d470', '470.256.02', 11040],
    ['d525', '525.147.05', 12000],
    ['d535', '535.183.01', 12020],
    ['d580', '580.95.05', 13000],
  ] as const) {
    drivers[key] = {
      nvmlPath: buildNvmlStub(path.join(tmp, key), driver, cuda),
      cudaPath: none('cuda'),
      smi: none('smi'),
    };
  }
});

const coded = (code: string, re: RegExp, fix?: RegExp) => (e: unknown) =>
  e instanceof GpenLabError && e.code === code && re.test(e.message) && (!fix || fix.test(e.fix));

describe('setup cuda: the build from the driver', () => {
  it('driver 535 installs ort1.19-cuda12 in its own folder, beside its libonnxruntime, and says why', async () => {
    const cache = cacheFor('535');
    const lib = placeLibrary(cache);
    const lines: string[] = [];
    const r = await setupCuda({
      gpuSources: drivers.d535,
      cacheDir: cache,
      from: fakes[OLD].tgz,
      files: fakes[OLD].files,
      log: (l) => lines.push(l),
    });
    assert.deepEqual(
      [r.runtime, r.choice?.by, r.choice?.driverVersion, r.choice?.cudaCeiling],
      [OLD, 'driver', '535.183.01', '12.2'],
    );
    assert.equal(
      r.choice?.reason,
      'driver 535.183.01 (nvml) runs CUDA 12.2 at most: ort1.19-cuda12 needs driver >= 525 (CUDA 12); ort1.29-cuda13 needs driver >= 580 (CUDA 13)',
    );
    assert.equal(lines[0], `runtime ort1.19-cuda12: ${r.choice?.reason}`);
    const dir = providerDir(OLD, cache);
    assert.equal(r.binDir, dir);
    assert.equal(r.runtimeVersion, '1.19.2');
    assert.deepEqual(r.library, { path: lib, action: 'already-installed' });
    assert.deepEqual(
      r.actions.map((a) => [a.build, a.file, a.action]),
      fakes[OLD].files.map((f) => [OLD, f.name, 'installed']),
    );
    assert.deepEqual(readdirSync(dir).sort(), [path.basename(lib), ...fakes[OLD].files.map((f) => f.name)].sort());
    assert.deepEqual(installedBuilds(cache), [OLD]);
  });

  it('driver 580 installs ort1.29-cuda13 beside onnxruntime-node’s library; ort1.19-cuda12 stays beside it', async () => {
    const cache = cacheFor('535');
    const bin = ortBin('bin-580');
    const r = await setupCuda({
      gpuSources: drivers.d580,
      cacheDir: cache,
      binDir: bin,
      runtimeVersion: '1.29.0',
      from: fakes[NEW].dir,
      files: fakes[NEW].files,
    });
    assert.deepEqual([r.runtime, r.choice?.by, r.binDir, r.library], [NEW, 'driver', bin, null]);
    assert.equal(
      r.choice?.reason,
      'driver 580.95.05 (nvml) runs CUDA 13.0 at most: ort1.29-cuda13 needs driver >= 580 (CUDA 13)',
    );
    assert.deepEqual(
      r.actions.map((a) => a.action),
      ['installed', 'installed', 'installed'],
    );
    assert.deepEqual(readdirSync(bin).sort(), ['libonnxruntime.so.1', ...fakes[NEW].files.map((f) => f.name)].sort());
    assert.equal(readdirSync(providerDir(OLD, cache)).length, 4, 'the other build is untouched');
  });

  it('driver 470 is refused with the driver found and the driver to install; nothing is written', async () => {
    const cache = cacheFor('470');
    await assert.rejects(
      setupCuda({ gpuSources: drivers.d470, cacheDir: cache, from: fakes[OLD].tgz, files: fakes[OLD].files }),
      coded(
        'E_PROVIDER_UNAVAILABLE',
        /^driver 470\.256\.02 runs CUDA 11\.4 at most; gpen-lab's builds need driver >= 525 \(CUDA 12\) or >= 580 \(CUDA 13\)/,
        /^install NVIDIA driver 580 or newer, e\.g\. apt-get install nvidia-driver-580/,
      ),
    );
    assert.equal(existsSync(cache), false);
  });

  it('--runtime forces a build whatever the driver, and says that the driver does not run it', async () => {
    const cache = cacheFor('forced');
    placeLibrary(cache);
    const r = await setupCuda({
      runtime: OLD,
      gpuSources: drivers.d470,
      cacheDir: cache,
      from: fakes[OLD].dir,
      files: fakes[OLD].files,
      tensorrt: false,
    });
    assert.deepEqual([r.runtime, r.choice?.by, r.choice?.driverFits], [OLD, 'runtime', false]);
    assert.match(
      r.choice!.reason,
      /^--runtime ort1\.19-cuda12; driver 470\.256\.02 \(nvml\) runs CUDA 11\.4 at most and ort1\.19-cuda12 needs driver >= 525 \(CUDA 12\): it will not run here until the driver is updated$/,
    );
    assert.deepEqual(
      r.actions.map((a) => a.file),
      ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'],
    );
    const fits = chooseSetupBuild(
      { source: 'nvml', tried: [], driverVersion: '580.95.05', cudaDriverVersion: '13.0', devices: [] },
      OLD,
    );
    assert.deepEqual([fits.driverFits, fits.reason], [true, '--runtime ort1.19-cuda12']);
  });

  it('no driver visible: the default build', async () => {
    const bin = ortBin('bin-none');
    const r = await setupCuda({
      gpuSources: { nvmlPath: none('nvml'), cudaPath: none('cuda'), smi: none('smi') },
      cacheDir: cacheFor('none'),
      binDir: bin,
      runtimeVersion: '1.29.0',
      from: fakes[NEW].tgz,
      files: fakes[NEW].files,
    });
    assert.deepEqual([r.runtime, r.choice?.by, r.choice?.driverFits], [NEW, 'no-driver', null]);
    assert.match(r.choice!.reason, /^no NVIDIA driver answers here \(nvml: .*\): the default build ort1\.29-cuda13/);
  });

  it('the CUDA version alone (the CUDA driver API says no driver version) chooses too', () => {
    const c = chooseSetupBuild({
      source: 'cuda-driver',
      tried: [],
      driverVersion: null,
      cudaDriverVersion: '12.4',
      devices: [],
    });
    assert.deepEqual([c.build, c.reason.split(':')[0]], [OLD, 'the driver (cuda-driver) runs CUDA 12.4 at most']);
  });

  it('ort1.19’s library failing to fetch installs none of its providers', async () => {
    const cache = cacheFor('offline');
    const npm = path.join(tmp, 'npm-offline');
    writeFileSync(npm, '#!/bin/sh\necho "npm error code ENOTFOUND" >&2\nexit 1\n');
    chmodSync(npm, 0o755);
    await assert.rejects(
      setupCuda({ gpuSources: drivers.d535, cacheDir: cache, npm, from: fakes[OLD].tgz, files: fakes[OLD].files }),
      coded('E_NETWORK', /npm pack onnxruntime-node@1\.19\.2 .*failed: npm error code ENOTFOUND/),
    );
    const dir = providerDir(OLD, cache);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.startsWith('libonnxruntime_providers')),
      [],
      'all or nothing',
    );
  });

  it('already installed: nothing to do, no source needed; --remove takes one build, then every build, away', async () => {
    const cache = cacheFor('535');
    const again = await setupCuda({ gpuSources: drivers.d535, cacheDir: cache, files: fakes[OLD].files });
    assert.deepEqual(
      again.actions.map((a) => a.action),
      ['already-installed', 'already-installed', 'already-installed'],
    );
    const bin = path.join(tmp, 'bin-580');
    const one = await setupCuda({ remove: true, runtime: OLD, cacheDir: cache, files: fakes[OLD].files });
    assert.deepEqual([one.runtime, one.library?.action], [OLD, 'removed']);
    assert.deepEqual(
      one.actions.map((a) => a.action),
      ['removed', 'removed', 'removed'],
    );
    assert.equal(existsSync(providerDir(OLD, cache)), false, 'its emptied folder goes too');
    assert.equal(statSync(path.join(bin, 'libonnxruntime_providers_cuda.so')).isFile(), true, 'the other build stays');
    const all = await setupCuda({ remove: true, cacheDir: cache, binDir: bin, files: fakes[NEW].files });
    assert.deepEqual(
      all.actions.map((a) => [a.build, a.action]),
      [
        [NEW, 'removed'],
        [NEW, 'removed'],
        [NEW, 'removed'],
      ],
    );
    assert.deepEqual(readdirSync(bin), ['libonnxruntime.so.1']);
  });
});

describe('the records of the 0.2.1 provider package (npm pack, measured)', () => {
  it('names, sizes and sums of its three libraries, in the same layout as 0.4.9', () => {
    assert.deepEqual(
      PROVIDER_PACKAGES[OLD].files.map((f) => [f.name, f.bytes, f.sha256.slice(0, 12), f.optional]),
      [
        ['libonnxruntime_providers_shared.so', 14632, 'f9400f9550e6', false],
        ['libonnxruntime_providers_cuda.so', 533992584, '8bb3d8221d62', false],
        ['libonnxruntime_providers_tensorrt.so', 772912, 'fbe023d5503c', true],
      ],
    );
    assert.equal(PACKAGE_LIB_DIR, 'Plugins/Linux/x64');
  });

  it('what its providers need (DT_NEEDED) and the kernels its CUDA provider carries', () => {
    const needed = (p: 'cuda' | 'tensorrt') =>
      BUILD_REQUIREMENTS[OLD][p].filter((r) => r.neededBy === 'DT_NEEDED' && !r.system).map((r) => r.soname);
    assert.deepEqual(needed('cuda'), [
      'libcublasLt.so.12',
      'libcublas.so.12',
      'libcudnn.so.9',
      'libcurand.so.10',
      'libcufft.so.11',
      'libcudart.so.12',
    ]);
    assert.deepEqual(needed('tensorrt'), [
      'libcudnn.so.9',
      'libcublas.so.12',
      'libnvinfer.so.10',
      'libnvinfer_plugin.so.10',
      'libnvonnxparser.so.10',
      'libcudart.so.12',
    ]);
    assert.deepEqual(RECORDED_KERNELS[OLD], {
      sm: [60, 61, 70, 75, 80],
      ptx: [60, 61, 70, 75, 80],
      entries: 1520,
      ptxIsa: '8.2',
    });
  });
});
