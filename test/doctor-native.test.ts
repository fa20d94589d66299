// The doctor's native readers on real files built at test time: stub libraries (cc -shared, one per soname, exporting
// the real version functions with chosen values) for the loader's search order, version calls, wrong-major and missing
// cases, candidates and the printed fix; ELF dynamic sections; fatbins from nvcc when it is installed and synthetic
// ones always; the driver rules; NVML and nvidia-smi through stubs; every known error text from the issue.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GpenLabError } from '../src/errors.js';
import { expandOrigin, findSection, readElfDynamic } from '../src/doctor/elf.js';
import { FATBIN_MAGIC, kernelVerdict, parseFatbin, readFatbin } from '../src/doctor/fatbin.js';
import { driverSupportsCuda, maxCudaForDriver, parseSmiCsv, readGpus } from '../src/doctor/gpu.js';
import { startGpuSampler, summarizeGpu } from '../src/doctor/gpu-sampler.js';
import {
  checkLibrary,
  exportLine,
  findCandidates,
  formatCandidate,
  loaderSearch,
  readLdCache,
  readVersion,
} from '../src/doctor/libs.js';
import { libraryFindings } from '../src/doctor/index.js';
import { driverMinimumFor } from '../src/doctor/requirements.js';
import { diagnose } from '../src/doctor/signatures.js';
import { VERSION_C, buildLib, requireCc } from './helpers/native.js';

let tmp: string;
before(() => {
  requireCc();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-native-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));
const dir = (name: string): string => {
  const d = path.join(tmp, name);
  mkdirSync(d, { recursive: true });
  return d;
};

describe('library versions, read by calling the library', () => {
  it('each family answers through its own function and encoding', () => {
    const d = dir('versions');
    const cases: [string, string, number, string][] = [
      ['libcudart.so.13', 'cudart', 13020, '13.2'],
      ['libcuda.so.1', 'cuda', 13000, '13.0'],
      ['libcublasLt.so.13', 'cublasLt', 130104, '13.1.4'],
      ['libcublas.so.13', 'cublas', 130104, '13.1.4'],
      ['libcurand.so.10', 'curand', 10402, '10.4.2'],
      ['libnvrtc.so.13', 'nvrtc', 130, '13.0'],
      ['libcudnn.so.9', 'cudnn', 91300, '9.13.0'],
      ['libcudnn_adv.so.9', 'cudnn', 91300, '9.13.0'],
      ['libnvinfer.so.10', 'nvinfer', 100900, '10.9.0'],
    ];
    for (const [soname, fam, v, want] of cases) {
      const f = buildLib(d, soname, VERSION_C[fam](v));
      assert.deepEqual(readVersion(f), { version: want }, soname);
    }
  });

  it('a library without the function, or one that cannot load, gives the reason instead of a version', () => {
    const d = dir('noversion');
    const f = buildLib(d, 'libcudart.so.13', 'int unrelated(void) { return 1; }');
    const r = readVersion(f);
    assert.equal(r.version, null);
    assert.match(r.error ?? '', /cudaRuntimeGetVersion/);
    const text = path.join(d, 'libcudnn.so.9');
    writeFileSync(text, 'not a library');
    assert.match(readVersion(text).error ?? '', /cannot load/);
    assert.match(readVersion(f, 'libfoo.so.1').error ?? '', /no version function is known for libfoo\.so\.1/);
  });
});

describe("the loader's search order", () => {
  it('RUNPATH, then LD_LIBRARY_PATH, then ld.so.cache, then the default folders; else missing', () => {
    const [a, b, c, e] = ['runpath', 'ldpath', 'cache', 'default'].map((n) => dir(`order-${n}`));
    for (const [d, v] of [
      [a, 13000],
      [b, 13010],
      [c, 13020],
      [e, 13030],
    ] as [string, number][])
      buildLib(d, 'libcudart.so.13', VERSION_C.cudart(v));
    const cache = new Map([['libcudart.so.13', path.join(c, 'libcudart.so.13')]]);
    const all = { runpath: [a], ldLibraryPath: `/nonexistent:${b}`, cache, defaultDirs: [e] };
    assert.deepEqual(loaderSearch('libcudart.so.13', all), {
      path: path.join(a, 'libcudart.so.13'),
      foundVia: 'runpath',
    });
    assert.deepEqual(loaderSearch('libcudart.so.13', { ...all, runpath: [] }), {
      path: path.join(b, 'libcudart.so.13'),
      foundVia: 'ld_library_path',
    });
    assert.deepEqual(loaderSearch('libcudart.so.13', { ...all, runpath: [], ldLibraryPath: '' }), {
      path: path.join(c, 'libcudart.so.13'),
      foundVia: 'ld.so.cache',
    });
    assert.deepEqual(loaderSearch('libcudart.so.13', { defaultDirs: [e] }), {
      path: path.join(e, 'libcudart.so.13'),
      foundVia: 'default',
    });
    assert.deepEqual(loaderSearch('libcudart.so.13', { defaultDirs: [] }), { path: null, foundVia: null });
    // the version comes from the copy the loader would pick
    assert.equal(checkLibrary('libcudart.so.13', 'DT_NEEDED', 13, { ...all, runpath: [] }).version, '13.1');
  });

  it("reads this machine's ld.so.cache as ldconfig -p prints it", () => {
    const cache = readLdCache();
    assert.ok(cache.size > 0, 'ldconfig -p listed nothing');
    assert.ok(cache.has('libc.so.6'), 'libc.so.6 is in every cache');
  });
});

describe('missing and wrong-major libraries, candidates and the fix', () => {
  it('a missing libcudart.so.13 lists a stub libcudart.so.12 on LD_LIBRARY_PATH as 12.x, the wrong major, and a right copy elsewhere as the fix', () => {
    const old = dir('cuda12');
    const good = dir('cuda13 here');
    buildLib(old, 'libcudart.so.12', VERSION_C.cudart(12040));
    buildLib(good, 'libcudart.so.13', VERSION_C.cudart(13000));
    const c = checkLibrary('libcudart.so.13', 'DT_NEEDED', 13, {
      ldLibraryPath: old,
      cache: new Map(),
      defaultDirs: [],
      extraRoots: [good],
    });
    assert.equal(c.path, null);
    const c12 = c.candidates.find((k) => k.path === path.join(old, 'libcudart.so.12'));
    assert.ok(c12, JSON.stringify(c.candidates));
    assert.deepEqual([c12.version, c12.major, c12.matches, c12.source], ['12.4', 12, false, 'LD_LIBRARY_PATH']);
    assert.equal(
      formatCandidate(c12, 13),
      `libcudart.so.12 (12.4) at ${old}: wrong major, this build needs 13 [LD_LIBRARY_PATH]`,
    );
    assert.equal(c.candidates[0].matches, true, 'the right major sorts first');
    const [f] = libraryFindings([c]);
    assert.equal(f.id, 'lib-missing');
    assert.match(
      f.message,
      /libcudart\.so\.13 \(CUDA runtime, DT_NEEDED\) not found by the dynamic loader; a matching copy is in /,
    );
    assert.ok(f.message.includes(`libcudart.so.12 (12.4) at ${old}: wrong major, this build needs 13`), f.message);
    // the folder has a space: the export line quotes it
    assert.equal(f.fix, `export LD_LIBRARY_PATH='${good}':$LD_LIBRARY_PATH`);
  });

  it('a file named like the right major that reports another is the wrong major', () => {
    const d = dir('liar');
    buildLib(d, 'libcudart.so.13', VERSION_C.cudart(12080));
    const c = checkLibrary('libcudart.so.13', 'DT_NEEDED', 13, { ldLibraryPath: d, cache: new Map(), defaultDirs: [] });
    assert.equal(c.version, '12.8');
    const f = libraryFindings([c]).find((x) => x.id === 'lib-wrong-major');
    assert.ok(f);
    assert.match(f.message, /resolves to .*liar\/libcudart\.so\.13, version 12\.8: this build needs 13\.x/);
  });

  it('a stub libcudnn.so.9 that reports cuDNN 8 is the wrong major, and a right copy elsewhere is the fix', () => {
    const stub = dir('stub-cudnn');
    const real9 = dir('cudnn9');
    buildLib(stub, 'libcudnn.so.9', VERSION_C.cudnn(80907));
    buildLib(real9, 'libcudnn.so.9', VERSION_C.cudnn(91400));
    const c = checkLibrary('libcudnn.so.9', 'dlopen', 9, {
      ldLibraryPath: stub,
      cache: new Map(),
      defaultDirs: [],
      extraRoots: [real9],
    });
    assert.deepEqual([c.path, c.version], [path.join(stub, 'libcudnn.so.9'), '8.9.7']);
    const f = libraryFindings([c]).find((x) => x.id === 'lib-wrong-major')!;
    assert.match(f.message, /stub-cudnn\/libcudnn\.so\.9, version 8\.9\.7: this build needs 9\.x/);
    assert.equal(f.fix, `export LD_LIBRARY_PATH=${real9}:$LD_LIBRARY_PATH`);
    assert.equal(c.candidates.find((k) => k.path.startsWith(stub))?.matches, false, 'the stub itself is no candidate');
  });

  it('a library found nowhere names what to install', () => {
    const c = checkLibrary('libcudnn_adv.so.9', 'dlopen', 9, { ldLibraryPath: '', cache: new Map(), defaultDirs: [] });
    const [f] = libraryFindings([c, checkLibrary('libcudnn.so.9', 'dlopen', 9, { cache: new Map(), defaultDirs: [] })]);
    assert.match(f.message, /^libcudnn_adv\.so\.9, libcudnn\.so\.9 \(cuDNN, dlopen at run time\) not found/);
    assert.match(
      f.fix ?? '',
      /^install cuDNN 9 for CUDA 13 .* then export LD_LIBRARY_PATH=<its folder>:\$LD_LIBRARY_PATH$/,
    );
  });

  it('findCandidates finds every major of the family, never other families', () => {
    const d = dir('family');
    buildLib(d, 'libcublas.so.12', VERSION_C.cublas(120402));
    buildLib(d, 'libcublasLt.so.12', VERSION_C.cublasLt(120402));
    const got = findCandidates('libcublas.so.13', { extraRoots: [d], usual: false });
    assert.deepEqual(
      got.map((k) => [k.soname, k.version, k.matches]),
      [['libcublas.so.12', '12.4.2', false]],
    );
  });

  it('the export line quotes only when it must', () => {
    assert.equal(
      exportLine('/usr/local/cuda-13.0/lib64'),
      'export LD_LIBRARY_PATH=/usr/local/cuda-13.0/lib64:$LD_LIBRARY_PATH',
    );
    assert.equal(exportLine("/opt/it's here"), "export LD_LIBRARY_PATH='/opt/it'\\''s here':$LD_LIBRARY_PATH");
  });
});

describe('doctor with a stub libcudart.so.12 on LD_LIBRARY_PATH', () => {
  it('reports it with its path and version 12.x as the wrong major for this build', () => {
    const d = dir('doctor-cuda12');
    buildLib(d, 'libcudart.so.12', VERSION_C.cudart(12040));
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'src/cli/index.ts', 'doctor', '--provider', 'cuda', '--no-probe', '--json'],
      { encoding: 'utf8', timeout: 300_000, env: { ...process.env, LD_LIBRARY_PATH: d } },
    );
    assert.equal(r.status, 3, r.stderr);
    const rep = JSON.parse(r.stdout) as {
      system: { env: Record<string, string | null> };
      providers: {
        libraries: { soname: string; candidates: { path: string; version: string; matches: boolean }[] }[];
        findings: { message: string }[];
      }[];
    };
    const cudart = rep.providers[0].libraries.find((l) => l.soname === 'libcudart.so.13')!;
    const stub = cudart.candidates.find((k) => k.path === path.join(d, 'libcudart.so.12'));
    assert.deepEqual([stub?.version, stub?.matches], ['12.4', false], JSON.stringify(cudart));
    const said = rep.providers[0].findings.map((f) => f.message).join('\n');
    assert.ok(said.includes(`libcudart.so.12 (12.4) at ${d}: wrong major, this build needs 13`), said);
  });
});

describe('ELF dynamic section', () => {
  it('reads DT_NEEDED, SONAME, RUNPATH and RPATH of libraries built with cc', () => {
    const d = dir('elf');
    buildLib(d, 'libdep.so.3', 'int dep(void) { return 3; }');
    const withRunpath = buildLib(d, 'libuser.so.2', 'int dep(void); int user(void) { return dep(); }', [
      `-L${d}`,
      '-l:libdep.so.3',
      '-Wl,--enable-new-dtags',
      '-Wl,-rpath,$ORIGIN/../lib:/opt/x',
    ]);
    const dyn = readElfDynamic(withRunpath);
    assert.equal(dyn.soname, 'libuser.so.2');
    assert.ok(dyn.needed.includes('libdep.so.3'), JSON.stringify(dyn));
    assert.deepEqual([dyn.runpath, dyn.rpath], [['$ORIGIN/../lib', '/opt/x'], []]);
    assert.deepEqual(expandOrigin(dyn.runpath, withRunpath), [`${d}/../lib`, '/opt/x']);
    const withRpath = buildLib(dir('elf2'), 'librp.so.1', 'int f(void) { return 1; }', [
      '-Wl,--disable-new-dtags',
      '-Wl,-rpath,/old/style',
    ]);
    assert.deepEqual([readElfDynamic(withRpath).runpath, readElfDynamic(withRpath).rpath], [[], ['/old/style']]);
    assert.ok(findSection(withRunpath, '.dynamic'));
    assert.equal(findSection(withRunpath, '.nv_fatbin'), null);
    assert.deepEqual(readFatbin(withRunpath), { file: withRunpath, sm: [], ptx: [], entries: 0 });
  });

  it('text, empty, truncated and missing files are coded errors that name the file', () => {
    const d = dir('elf-bad');
    const lib = buildLib(d, 'libok.so.1', 'int f(void) { return 1; }');
    const text = path.join(d, 'text.so');
    writeFileSync(text, 'this is not an ELF file at all, but long enough to hold a header of sixty-four bytes');
    const empty = path.join(d, 'empty.so');
    writeFileSync(empty, '');
    const cut = path.join(d, 'cut.so');
    writeFileSync(cut, readFileSync(lib).subarray(0, 200));
    const check = (f: string, code: string, re: RegExp) =>
      assert.throws(
        () => readElfDynamic(f),
        (e: unknown) => e instanceof GpenLabError && e.code === code && re.test(e.message) && e.message.includes(f),
      );
    check(text, 'E_FORMAT_UNKNOWN', /no ELF magic/);
    check(empty, 'E_FORMAT_UNKNOWN', /truncated/);
    check(cut, 'E_FORMAT_UNKNOWN', /truncated/);
    check(path.join(d, 'absent.so'), 'E_FILE_MISSING', /Cannot open/);
  });
});

/** A fatbin container: entries of (kind, arch) with small payloads; padding bytes before it. */
function fatbin(entries: [number, number][], pad = 0): Buffer {
  const ents = entries.map(([kind, arch]) => {
    const h = Buffer.alloc(64 + 48);
    h.writeUInt16LE(kind, 0);
    h.writeUInt16LE(0x101, 2);
    h.writeUInt32LE(64, 4);
    h.writeBigUInt64LE(48n, 8);
    h.writeUInt32LE(arch, 28);
    return h;
  });
  const body = Buffer.concat(ents);
  const head = Buffer.alloc(16);
  head.writeUInt32LE(FATBIN_MAGIC, 0);
  head.writeUInt16LE(1, 4);
  head.writeUInt16LE(16, 6);
  head.writeBigUInt64LE(BigInt(body.length), 8);
  return Buffer.concat([Buffer.alloc(pad), head, body]);
}

describe('fatbin architectures', () => {
  it('parses synthetic containers with padding between them', () => {
    const buf = Buffer.concat([
      fatbin([
        [2, 80],
        [2, 90],
      ]),
      fatbin(
        [
          [2, 120],
          [1, 90],
        ],
        24,
      ),
      Buffer.alloc(16),
    ]);
    const fb = parseFatbin((o, n) => buf.subarray(o, o + n), buf.length);
    assert.deepEqual([fb.sm, fb.ptx, fb.entries], [[80, 90, 120], [90], 4]);
    assert.deepEqual(
      parseFatbin((o, n) => Buffer.alloc(n, 0x11).subarray(0, Math.min(n, 40 - o)), 40),
      { file: '(buffer)', sm: [], ptx: [], entries: 0 },
    );
  });

  it('reads a library compiled by nvcc (when nvcc is installed)', (t) => {
    const nvcc = ['nvcc', '/usr/local/cuda/bin/nvcc'].find((c) => spawnSync(c, ['--version']).status === 0);
    if (!nvcc) {
      t.skip('nvcc is not installed: the synthetic fatbin test above covers the parser');
      return;
    }
    const d = dir('nvcc');
    const src = path.join(d, 'k.cu');
    writeFileSync(
      src,
      '__global__ void k(float *x) { x[threadIdx.x] *= 2.0f; }\nextern "C" void launch(float *x) { k<<<1, 32>>>(x); }\n',
    );
    const so = path.join(d, 'libk.so');
    execFileSync(
      nvcc,
      [
        '-shared',
        '-Xcompiler',
        '-fPIC',
        '-o',
        so,
        src,
        '-gencode',
        'arch=compute_75,code=sm_75',
        '-gencode',
        'arch=compute_90,code=[sm_90,compute_90]',
      ],
      { stdio: 'pipe', timeout: 300_000 },
    );
    const fb = readFatbin(so);
    assert.deepEqual([fb.sm, fb.ptx], [[75, 90], [90]]);
    assert.ok(fb.entries >= 3);
  });

  it('predicts which GPUs find a kernel', () => {
    const real = { file: 'libonnxruntime_providers_cuda.so', sm: [75, 80, 86, 89, 90, 120], ptx: [], entries: 1591 };
    assert.deepEqual(Object.values(kernelVerdict('9.0', real)).slice(0, 2), [true, 'cubin']);
    assert.match(kernelVerdict('8.7', real).reason, /runs the sm_86 cubin/);
    assert.match(kernelVerdict('12.0', real).reason, /runs the sm_120 cubin/);
    const v100 = kernelVerdict('7.0', real);
    assert.equal(v100.runs, false);
    assert.equal(
      v100.reason,
      'no kernel image for sm_70: this build has cubins for sm_75, sm_80, sm_86, sm_89, sm_90, sm_120, no PTX',
    );
    assert.equal(kernelVerdict('10.0', real).runs, false, 'no sm_100 cubin and no PTX: a B200 has no kernel');
    const withPtx = { ...real, ptx: [90] };
    assert.deepEqual(Object.values(kernelVerdict('10.0', withPtx)).slice(0, 2), [true, 'ptx-jit']);
    assert.equal(
      kernelVerdict('8.9', { ...real, sm: [90], ptx: [90] }).runs,
      false,
      'PTX for a newer architecture does not run on an older GPU',
    );
  });
});

describe('driver rules', () => {
  it('CUDA 12 needs >= 525.60.13, 13 needs >= 580; what each driver supports', () => {
    assert.equal(driverSupportsCuda('535.183.01', 13), false);
    assert.equal(maxCudaForDriver('535.183.01'), '12.2');
    assert.equal(driverSupportsCuda('580.95.05', 13), true);
    assert.equal(maxCudaForDriver('580.95.05'), '13.0');
    assert.equal(driverSupportsCuda('525.60.13', 12), true);
    assert.equal(driverSupportsCuda('525.60.12', 12), false);
    assert.equal(driverSupportsCuda('550.54.15', 10), false, 'an unknown major is never assumed to work');
    assert.equal(driverMinimumFor(13), '580.65.06');
  });
});

describe('GPU and driver readers', () => {
  it('with nothing installed every source says why, and the source is none', async () => {
    const r = await readGpus({
      nvmlPath: path.join(tmp, 'no-nvml.so'),
      cudaPath: path.join(tmp, 'no-cuda.so'),
      smi: path.join(tmp, 'no-smi'),
    });
    assert.equal(r.source, 'none');
    assert.deepEqual(
      r.tried.map((t) => [t.source, t.ok]),
      [
        ['nvml', false],
        ['cuda-driver', false],
        ['nvidia-smi', false],
      ],
    );
    assert.match(r.tried[2].error ?? '', /not found/);
  });

  it('reads GPUs through an NVML stub, and falls back past a driver with no device to nvidia-smi', async () => {
    const d = dir('gpu');
    const nvml = buildLib(
      d,
      'libnvidia-ml.so.1',
      `#include <string.h>
int nvmlInit_v2(void) { return 0; }
int nvmlShutdown(void) { return 0; }
int nvmlSystemGetDriverVersion(char *v, unsigned n) { strncpy(v, "580.95.05", n); return 0; }
int nvmlSystemGetCudaDriverVersion_v2(int *v) { *v = 13000; return 0; }
int nvmlDeviceGetCount_v2(unsigned *n) { *n = 1; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void **h) { *h = (void *)0x10; return 0; }
int nvmlDeviceGetName(void *h, char *s, unsigned n) { strncpy(s, "NVIDIA H100 80GB HBM3", n); return 0; }
int nvmlDeviceGetCudaComputeCapability(void *h, int *a, int *b) { *a = 9; *b = 0; return 0; }
typedef struct { unsigned long long total, free, used; } M;
int nvmlDeviceGetMemoryInfo(void *h, M *m) { m->total = 85520809984ULL; m->free = 0; m->used = 0; return 0; }`,
    );
    const r = await readGpus({ nvmlPath: nvml });
    assert.equal(r.source, 'nvml');
    assert.equal(
      (await readGpus({ nvmlPath: nvml })).source,
      'nvml',
      'a second reading in the same process (the lab reads once per cell)',
    );
    assert.deepEqual([r.driverVersion, r.cudaDriverVersion], ['580.95.05', '13.0']);
    assert.deepEqual(r.devices, [
      {
        index: 0,
        name: 'NVIDIA H100 80GB HBM3',
        computeCapability: '9.0',
        memoryTotalMiB: 81559,
        memoryUsedMiB: 0,
        processes: null,
      },
    ]);

    const failingNvml = buildLib(
      dir('gpu-bad'),
      'libnvidia-ml.so.1',
      'int nvmlInit_v2(void) { return 9; }\nint nvmlShutdown(void) { return 0; }',
    );
    const noDevice = buildLib(
      dir('gpu-bad'),
      'libcuda.so.1',
      'int cuInit(unsigned f) { return 100; }\nint cuDriverGetVersion(int *v) { *v = 12020; return 0; }',
    );
    const smi = path.join(d, 'nvidia-smi');
    writeFileSync(
      smi,
      '#!/bin/sh\nif [ "$#" -gt 0 ]; then echo "0, NVIDIA A100-SXM4-40GB, 8.0, 40960, 535.183.01"; else echo "| NVIDIA-SMI 535.183.01   Driver Version: 535.183.01   CUDA Version: 12.2 |"; fi\n',
    );
    chmodSync(smi, 0o755);
    const s = await readGpus({ nvmlPath: failingNvml, cudaPath: noDevice, smi });
    assert.equal(s.source, 'nvidia-smi');
    assert.match(s.tried[0].error ?? '', /nvmlInit_v2 returned 9 \(driver not loaded\)/);
    assert.match(
      s.tried[1].error ?? '',
      /cuInit returned 100 \(CUDA_ERROR_NO_DEVICE\); the driver supports CUDA 12\.2/,
    );
    assert.deepEqual(
      [s.driverVersion, s.cudaDriverVersion, s.devices[0].computeCapability, s.devices[0].memoryTotalMiB],
      ['535.183.01', '12.2', '8.0', 40960],
    );
  });

  it("samples utilisation and the watched processes' memory through an NVML stub, again and again", async (t) => {
    const nvml = buildLib(
      dir('sampler'),
      'libnvidia-ml.so.1',
      `#include <string.h>
#include <unistd.h>
int nvmlInit_v2(void) { return 0; }
int nvmlShutdown(void) { return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void **h) { *h = (void *)0x10; return 0; }
typedef struct { unsigned gpu, memory; } U;
int nvmlDeviceGetUtilizationRates(void *h, U *u) { u->gpu = 42; u->memory = 7; return 0; }
typedef struct { unsigned long long total, free, used; } M;
int nvmlDeviceGetMemoryInfo(void *h, M *m) { m->total = 8ULL << 30; m->used = 3ULL << 30; m->free = 5ULL << 30; return 0; }
typedef struct { unsigned pid; unsigned long long used; unsigned gi, ci; } P;
int nvmlDeviceGetComputeRunningProcesses_v3(void *h, unsigned *n, P *p) {
  if (*n < 2) { *n = 2; return 7; }
  p[0].pid = (unsigned)getpid(); p[0].used = 512ULL << 20; p[1].pid = 1; p[1].used = 1ULL << 30; *n = 2; return 0;
}`,
    );
    // the sampler's interval on a mock clock: three ticks are three samples, besides those at its start and stop
    t.mock.timers.enable({ apis: ['setInterval'] });
    for (let round = 0; round < 2; round++) {
      const s = startGpuSampler({ nvmlPath: nvml, intervalMs: 10, pids: () => [process.pid] });
      for (let i = 0; i < 3; i++) t.mock.timers.tick(10);
      const g = summarizeGpu(s.stop());
      assert.equal(g.source, 'nvml', `round ${round}: ${g.reason}`);
      assert.equal(g.samples, 5);
      assert.deepEqual(
        [g.utilMean, g.utilPeak, g.memUsedPeakMiB, g.processPeakMiB],
        [42, 42, 3072, 512],
        'only the watched process counts',
      );
    }
    const none = summarizeGpu(
      startGpuSampler({ nvmlPath: path.join(tmp, 'none.so'), smi: path.join(tmp, 'no-smi'), pids: () => [] }).stop(),
    );
    assert.equal(none.source, 'none');
    assert.match(none.reason ?? '', /NVML \(.*none\.so\): /);
    // stopped right after an nvidia-smi that could not start, again and again: killing a child whose spawn failed
    // once reached kill(0, SIGKILL) and took this whole process group down (the test runner with it)
    const noSmi = () =>
      startGpuSampler({
        nvmlPath: path.join(tmp, 'none.so'),
        smi: path.join(tmp, 'no-smi'),
        pids: () => [],
      });
    for (let i = 0; i < 30; i++) noSmi().stop();
    // a failed spawn's error is emitted on process.nextTick: after one turn of the event loop every one has been
    // handled, and a sampler stopped then knows why it has no samples
    const late = noSmi();
    await new Promise((r) => setImmediate(r));
    assert.match(summarizeGpu(late.stop()).reason ?? '', /nvidia-smi: nvidia-smi not found$/);
  });

  it('parses nvidia-smi CSV, including fields it cannot fill', () => {
    assert.deepEqual(
      parseSmiCsv('0, NVIDIA H100 80GB HBM3, 9.0, 81559, 580.95.05\n1, Tesla K80, [N/A], [N/A], 470.1\n'),
      [
        { index: 0, name: 'NVIDIA H100 80GB HBM3', computeCapability: '9.0', memoryTotalMiB: 81559 },
        { index: 1, name: 'Tesla K80', computeCapability: null, memoryTotalMiB: null },
      ],
    );
  });
});

describe('known error signatures (each real message)', () => {
  const cudnnDir = '/opt/cudnn9/lib';
  const ctx = {
    provider: 'cuda',
    found: { 'libcudnn.so.9': [cudnnDir], 'libcublasLt.so.13': ['/usr/local/cuda-13.0/lib64'] },
    driverVersion: '535.183.01',
    cudaDriverVersion: '12.2',
    requiredCudaMajor: 13,
    driverMinimum: '580.65.06',
    runtimeProviders: ['cpu', 'webgpu'],
  };
  const one = (text: string, id: string) => {
    const f = diagnose(text, ctx);
    assert.equal(f[0]?.id, id, `${text}\n-> ${JSON.stringify(f)}`);
    assert.ok(f[0].fix, 'every finding has a fix');
    return f[0];
  };

  it('a provider dependency that does not load, any library and major', () => {
    const f = one(
      'Failed to load library libonnxruntime_providers_cuda.so with error: libcublasLt.so.11: cannot open shared object file: No such file or directory',
      'provider-dependency-missing',
    );
    assert.match(f.message, /needs libcublasLt\.so\.11 \(cuBLASLt\)/);
    assert.match(f.fix!, /^install cuBLAS/);
    const g = one(
      '[E:onnxruntime:Default, provider_bridge_ort.cc:2251] Failed to load library /x/bin/libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot open shared object file: No such file or directory',
      'provider-dependency-missing',
    );
    assert.equal(g.fix, 'export LD_LIBRARY_PATH=/usr/local/cuda-13.0/lib64:$LD_LIBRARY_PATH');
  });

  it('cuDNN 9 and its sub-libraries', () => {
    assert.equal(
      one('libcudnn.so.9: cannot open shared object file: No such file or directory', 'cudnn-missing').fix,
      `export LD_LIBRARY_PATH=${cudnnDir}:$LD_LIBRARY_PATH`,
    );
    const adv = one('libcudnn_adv.so.9: cannot open shared object file: No such file or directory', 'cudnn-missing');
    assert.match(adv.message, /libcudnn_adv\.so\.9/);
    assert.match(adv.fix!, /^install cuDNN 9/);
  });

  it('cuDNN missing at the first convolution (seen on the GPU machine with cuDNN hidden)', () => {
    const f = one(
      "Non-zero status code returned while running Conv node. Name:'conv_0' Status Message: /onnxruntime_src/onnxruntime/core/providers/cuda/cuda_kernel.h:272 static cudnnContext* onnxruntime::cuda::CudaKernel::RequireCudnnHandle(cudnnHandle_t) [ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : cuDNN is unavailable or disabled",
      'cudnn-unavailable',
    );
    assert.equal(f.fix, `export LD_LIBRARY_PATH=${cudnnDir}:$LD_LIBRARY_PATH`);
  });

  it('cuDNN 8 looking for NVRTC', () => {
    const f = diagnose(
      'Could not load library libcudnn_cnn_infer.so.8. Error: libnvrtc.so: cannot open shared object file: No such file or directory',
      ctx,
    );
    assert.deepEqual(
      f.map((x) => x.id),
      ['cudnn8-nvrtc'],
    );
    assert.match(f[0].message, /cuDNN 8 is the wrong major for this build \(it needs cuDNN 9\)/);
  });

  it('TensorRT missing, both texts', () => {
    one('libnvinfer.so.10: cannot open shared object file: No such file or directory', 'tensorrt-missing');
    const f = one(
      'Please install TensorRT libraries as mentioned in the GPU requirements page, make sure the TensorRT libraries are in the PATH or LD_LIBRARY_PATH variables',
      'tensorrt-not-installed',
    );
    assert.match(f.fix!, /TensorRT 10/);
  });

  it("a driver too old for the runtime prints the driver's limit and the minimum", () => {
    const f = one(
      'CUDA failure 35: CUDA driver version is insufficient for CUDA runtime version ; GPU=0 ; hostname=h ; file=cuda_execution_provider.cc ; line=300 ; expr=cudaSetDevice(info_.device_id);',
      'driver-insufficient',
    );
    assert.equal(
      f.fix,
      'driver 535 supports CUDA <= 12.2; this build needs 13.x: update the driver to >= 580.65.06 or use the cpu/webgpu provider',
    );
  });

  it('no kernel image for the GPU', () => {
    one(
      'CUDA error cudaErrorNoKernelImageForDevice:no kernel image is available for execution on the device',
      'no-kernel-image',
    );
  });

  it("ONNX Runtime's generic CUDA text points at the library section, or at a found copy", () => {
    const text =
      'Failed to create CUDAExecutionProvider. Require cuDNN 9.* and CUDA 12.*, and the latest MSVC runtime. Please install all dependencies as mentioned in the GPU requirements page';
    assert.equal(one(text, 'generic-cuda-requirements').fix, `export LD_LIBRARY_PATH=${cudnnDir}:$LD_LIBRARY_PATH`);
    assert.match(diagnose(text, { provider: 'cuda' })[0].fix!, /gpen-lab doctor --provider cuda/);
  });

  it('only the CUDA provider file copied: the shared provider library is missing', () => {
    const text =
      'OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library\nFailed to load library /app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_shared.so with error: /app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_shared.so: cannot open shared object file: No such file or directory';
    const f = diagnose(text, ctx);
    assert.deepEqual(
      f.map((x) => [x.id, x.fix]),
      [['provider-shared-missing', 'gpen-lab setup cuda']],
    );
    assert.equal(
      one('OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library', 'ep-append-failed').fix,
      'gpen-lab setup cuda',
    );
  });

  it('a provider the binary lacks', () => {
    const f = one(
      "Invalid argument: sessionOptions.executionProviders[0] is unsupported: 'dml'.",
      'provider-unsupported',
    );
    assert.match(f.message, /no 'dml' provider \(it knows cpu, webgpu\)/);
  });

  it('an unknown text is reported as unrecognised, never dropped', () => {
    const f = diagnose('something new went wrong\nsecond line', ctx);
    assert.deepEqual(
      f.map((x) => [x.id, x.verdict, x.message]),
      [['unrecognised', 'warn', 'unrecognised error: something new went wrong']],
    );
    assert.deepEqual(diagnose('', ctx), []);
  });
});
