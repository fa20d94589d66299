// The doctor per runtime build, on stub libraries built with cc (one per soname, answering chosen versions) and
// stand-in provider files linked against them (so their DT_NEEDED is the record's): through the CLI with a stub NVML
// reporting driver 535 on LD_LIBRARY_PATH (ort1.19-cuda12 installed in the cache runs, ort1.29-cuda13 does not fit,
// with the driver to install), then with faked drivers: 525 cannot JIT-compile 0.2.1's PTX for an H100 but runs an
// A100's cubin, 580 with both builds installed side by side runs both and a GPU run takes ort1.29-cuda13, and without
// a GPU every build is one line with no fix.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { DoctorReport } from '../src/doctor/index.js';
import { runDoctor } from '../src/doctor/index.js';
import type { GpuReport } from '../src/doctor/types.js';
import { formatDoctor } from '../src/cli/doctor.js';
import { BUILD_SPECS, buildLibraryPath, providerDir } from '../src/runtime/builds.js';
import { useTempCache } from './helpers/cache-dir.js';
import { VERSION_C, buildLib, requireCc } from './helpers/native.js';
import { buildNvmlStub } from './helpers/nvml-stub.js';

const tmp = useTempCache('gpen-doctor-builds-');
const cache = process.env.GPEN_LAB_CACHE!;
const OLD = 'ort1.19-cuda12';
const NEW = 'ort1.29-cuda13';
const d = (n: string) => path.join(tmp, n);
let ldPath: string;

/** Stub libraries of both builds' CUDA needs (TensorRT's are left missing). */
function buildStubs(): void {
  const cudnn = [
    '',
    '_graph',
    '_ops',
    '_cnn',
    '_adv',
    '_engines_precompiled',
    '_engines_runtime_compiled',
    '_heuristic',
  ];
  for (const part of cudnn) buildLib(d('common'), `libcudnn${part}.so.9`, VERSION_C.cudnn(90100));
  buildLib(d('common'), 'libcurand.so.10', VERSION_C.curand(10302));
  buildLib(d('common'), 'libcuda.so.1', VERSION_C.cuda(12020));
  buildLib(d('cuda13'), 'libcudart.so.13', VERSION_C.cudart(13000));
  buildLib(d('cuda13'), 'libcublas.so.13', VERSION_C.cublas(130100));
  buildLib(d('cuda13'), 'libcublasLt.so.13', VERSION_C.cublasLt(130100));
  buildLib(d('cuda13'), 'libnvrtc.so.13', VERSION_C.nvrtc(130));
  buildLib(d('cuda12'), 'libcudart.so.12', VERSION_C.cudart(12020));
  buildLib(d('cuda12'), 'libcublas.so.12', VERSION_C.cublas(120201));
  buildLib(d('cuda12'), 'libcublasLt.so.12', VERSION_C.cublasLt(120201));
  buildLib(d('cuda12'), 'libnvrtc.so.12', VERSION_C.nvrtc(122));
  buildLib(d('cuda12'), 'libcufft.so.11', 'int cufftGetVersion(int *v) { *v = 11008; return 0; }');
}

/** Stand-ins of a build's three provider files in `dir`, the CUDA one linked against the record's DT_NEEDED. */
function providers(dir: string, needed: string[]): void {
  const link = ['-Wl,--no-as-needed', ...['common', 'cuda13', 'cuda12'].map((n) => `-L${d(n)}`)];
  buildLib(dir, 'libonnxruntime_providers_shared.so', 'int shared_stub(void) { return 0; }');
  buildLib(dir, 'libonnxruntime_providers_cuda.so', 'int cuda_stub(void) { return 0; }', [
    ...link,
    ...needed.map((n) => `-l:${n}`),
  ]);
  buildLib(dir, 'libonnxruntime_providers_tensorrt.so', 'int trt_stub(void) { return 0; }');
}

before(() => {
  requireCc();
  buildStubs();
  // ort1.19-cuda12 installed in the cache: its providers and its libonnxruntime (a sparse file of the recorded size)
  providers(providerDir(OLD, cache), [
    'libcublasLt.so.12',
    'libcublas.so.12',
    'libcudnn.so.9',
    'libcurand.so.10',
    'libcufft.so.11',
    'libcudart.so.12',
  ]);
  const lib = buildLibraryPath(OLD, cache);
  writeFileSync(lib, '');
  truncateSync(lib, BUILD_SPECS[OLD].library.bytes);
  // ort1.29-cuda13 in a stand-in of onnxruntime-node's folder, for the side-by-side case
  mkdirSync(d('ort-bin'), { recursive: true });
  writeFileSync(path.join(d('ort-bin'), 'libonnxruntime.so.1'), 'runtime');
  providers(d('ort-bin'), [
    'libcublasLt.so.13',
    'libcublas.so.13',
    'libcurand.so.10',
    'libcudart.so.13',
    'libcuda.so.1',
  ]);
  buildNvmlStub(d('nvml535'), '535.183.01', 12020);
  ldPath = ['common', 'cuda13', 'cuda12'].map(d).join(':');
});

const gpu = (driverVersion: string, cuda: string, name = 'NVIDIA H100 80GB HBM3', cc = '9.0'): GpuReport => ({
  source: 'nvml',
  tried: [{ source: 'nvml', ok: true }],
  driverVersion,
  cudaDriverVersion: cuda,
  devices: [{ index: 0, name, computeCapability: cc, memoryTotalMiB: 81559 }],
});
const byBuild = (r: Pick<DoctorReport, 'builds'>) => new Map(r.builds.map((b) => [b.build, b]));
const doctor = (g: GpuReport, extra: { ortBinDir?: string } = {}) =>
  runDoctor({
    providers: ['cuda'],
    probe: false,
    gpu: g,
    webgpuAdapter: null,
    env: { LD_LIBRARY_PATH: ldPath },
    cacheDir: cache,
    ...extra,
  });

describe('doctor per runtime build', () => {
  it('doctor --json, stub NVML at driver 535: ort1.19-cuda12 installed runs, ort1.29-cuda13 does not fit', () => {
    const run = (...args: string[]) =>
      spawnSync(
        process.execPath,
        ['--import', 'tsx', 'src/cli/index.ts', 'doctor', '--provider', 'cuda', '--no-probe', ...args],
        {
          encoding: 'utf8',
          timeout: 300_000,
          env: { ...process.env, GPEN_LAB_CACHE: cache, LD_LIBRARY_PATH: `${d('nvml535')}:${ldPath}` },
        },
      );
    const r = run('--json');
    assert.equal(r.status, 3, r.stderr);
    const rep = JSON.parse(r.stdout) as DoctorReport;
    assert.equal(rep.schema, 'gpen-lab.doctor/1');
    assert.deepEqual(
      [rep.gpu.source, rep.gpu.driverVersion, rep.gpu.cudaDriverVersion],
      ['nvml', '535.183.01', '12.2'],
    );
    assert.deepEqual(
      [rep.buildChoice.run.build, rep.buildChoice.setup.build],
      [OLD, OLD],
      JSON.stringify(rep.buildChoice),
    );
    const b = byBuild(rep);
    const old = b.get(OLD)!;
    assert.deepEqual(
      [old.installed, old.fits, old.ready, old.fix, old.driver],
      [true, true, true, null, { version: '535.183.01', cudaCeiling: '12.2', runsBuild: true }],
      JSON.stringify(old.findings),
    );
    assert.deepEqual(
      [old.elf?.notInRecord, old.elf?.recordedNotNeeded],
      [[], []],
      'the record is the file’s DT_NEEDED',
    );
    const lib = (name: string) => old.libraries.find((l) => l.soname === name)!;
    assert.deepEqual(
      ['libcudart.so.12', 'libcublas.so.12', 'libcufft.so.11', 'libcudnn.so.9', 'libnvrtc.so.12', 'libcuda.so.1'].map(
        (n) => [n, lib(n).version, lib(n).foundVia, lib(n).path && path.dirname(lib(n).path!)],
      ),
      [
        ['libcudart.so.12', '12.2', 'ld_library_path', d('cuda12')],
        ['libcublas.so.12', '12.2.1', 'ld_library_path', d('cuda12')],
        ['libcufft.so.11', '11.0.8', 'ld_library_path', d('cuda12')],
        ['libcudnn.so.9', '9.1.0', 'ld_library_path', d('common')],
        ['libnvrtc.so.12', '12.2', 'ld_library_path', d('cuda12')],
        ['libcuda.so.1', '12.2', 'ld_library_path', d('common')],
      ],
    );
    assert.equal(lib('libcuda.so.1').neededBy, 'dlopen at run time', '0.2.1 links no libcuda: libcudart opens it');
    assert.deepEqual(
      [old.kernels[0].runs, old.kernels[0].how],
      [true, 'ptx-jit'],
      'the H100 JIT-compiles the sm_80 PTX (the stand-in has no kernels: the record)',
    );
    assert.ok(old.findings.some((f) => f.id === 'tensorrt-lib-missing' && f.verdict === 'warn'));
    const cur = b.get(NEW)!;
    assert.deepEqual([cur.installed, cur.fits, cur.ready, cur.driver.runsBuild], [false, false, false, false]);
    assert.equal(
      cur.findings[0].message,
      'driver 535.183.01 runs CUDA 12.2 at most; ort1.29-cuda13 needs CUDA 13 (driver >= 580.65.06)',
    );
    assert.equal(
      cur.fix,
      'install NVIDIA driver 580 or newer, e.g. apt-get install nvidia-driver-580; or use ort1.19-cuda12, which this driver runs (installed)',
    );
    assert.deepEqual(
      cur.libraries.filter((l) => l.path).map((l) => [l.soname, l.version]),
      [
        ['libcublasLt.so.13', '13.1.0'],
        ['libcublas.so.13', '13.1.0'],
        ['libcurand.so.10', '10.3.2'],
        ['libcudart.so.13', '13.0'],
        ['libcuda.so.1', '12.2'],
        ...[
          '',
          '_graph',
          '_ops',
          '_cnn',
          '_adv',
          '_engines_precompiled',
          '_engines_runtime_compiled',
          '_heuristic',
        ].map((p) => [`libcudnn${p}.so.9`, '9.1.0']),
        ['libnvrtc.so.13', '13.0'],
      ],
      'every library of ort1.29 resolves to its stub: only the driver stops it',
    );

    const text = run().stdout;
    assert.match(
      text,
      /^Runtime builds: a GPU run without --runtime takes ort1\.19-cuda12 \(the driver runs CUDA 12; ort1\.19-cuda12 needs CUDA 12\); gpen-lab setup cuda here installs ort1\.19-cuda12 \(driver 535\.183\.01/m,
    );
    assert.match(
      text,
      /^Build ort1\.29-cuda13 \(onnxruntime 1\.29\.0, providers com\.github\.asus4\.onnxruntime\.linux-x64-gpu@0\.4\.9; needs CUDA 13, cuDNN 9, driver >= 580\.65\.06\): not installed; does NOT fit this machine \(driver 535\.183\.01 runs CUDA 12\.2 at most\)$/m,
    );
    assert.match(
      text,
      /^Build ort1\.19-cuda12 .*: installed in .*ort1\.19-cuda12; runs here \(driver 535\.183\.01 runs CUDA 12\.2 at most\)$/m,
    );
    assert.match(text, /^ {4}first: install NVIDIA driver 580 or newer/m);
  });

  it('driver 525: 0.2.1’s PTX (ISA 8.2, CUDA 12.2) does not JIT for an H100, the fix names driver 535; an A100 runs its cubin', async () => {
    const h100 = byBuild(await doctor(gpu('525.147.05', '12.0'))).get(OLD)!;
    assert.deepEqual([h100.fits, h100.ready, h100.kernels[0].runs], [false, false, false]);
    const f = h100.findings.find((x) => x.id === 'ptx-too-new')!;
    assert.match(f.message, /PTX is ISA 8\.2 \(CUDA 12\.2\) and the driver JIT-compiles up to CUDA 12\.0$/);
    assert.equal(h100.fix, 'update the NVIDIA driver to >= 535 (CUDA 12.2), e.g. apt-get install nvidia-driver-535');
    const a100 = byBuild(await doctor(gpu('525.147.05', '12.0', 'NVIDIA A100-SXM4-40GB', '8.0'))).get(OLD)!;
    assert.deepEqual([a100.fits, a100.ready, a100.kernels[0].how], [true, true, 'cubin']);
  });

  it('driver 580 with both builds side by side: each runs, and a GPU run takes ort1.29-cuda13', async () => {
    const r = await doctor(gpu('580.95.05', '13.0'), { ortBinDir: d('ort-bin') });
    const b = byBuild(r);
    for (const build of [NEW, OLD] as const) {
      const x = b.get(build)!;
      assert.deepEqual(
        [x.installed, x.fits, x.ready, x.fix],
        [true, true, true, null],
        `${build}: ${JSON.stringify(x.findings)}`,
      );
    }
    assert.deepEqual([b.get(NEW)!.files.dir, b.get(NEW)!.kernels[0].how], [d('ort-bin'), 'cubin']);
    assert.deepEqual([r.buildChoice.run.build, r.buildChoice.setup.build], [NEW, NEW]);
    assert.equal(r.buildChoice.run.reason, 'the driver runs CUDA 13; ort1.29-cuda13 needs CUDA 13');
  });

  it('without a GPU: each build is one line with what it lacks and no fix', async () => {
    const none: GpuReport = { source: 'none', tried: [], driverVersion: null, cudaDriverVersion: null, devices: [] };
    const r = await doctor(none);
    for (const x of r.builds) assert.deepEqual([x.fits, x.fix], [null, null], x.build);
    const text = formatDoctor(r);
    assert.match(text, /^Runtime builds: no GPU, see Decision$/m);
    assert.match(text, /^Build ort1\.19-cuda12 .*: installed in .*; every library it needs resolves$/m);
    assert.doesNotMatch(text.slice(text.indexOf('Runtime builds')), /first:|fix:|setup cuda/);
  });
});
