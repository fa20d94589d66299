// The doctor's decision on faked states: no GPU (what decides is printed first, the CUDA libraries fold under it, no
// install line before it, exit 0 for auto and 3 for a named GPU provider), and GPU machines (provider missing: still
// `gpen-lab setup cuda` and exit 3, every library line as before; CUDA running: auto chooses it).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DecisionInput } from '../src/doctor/decision.js';
import { choiceLine, decide } from '../src/doctor/decision.js';
import type { DoctorReport, ProviderReport } from '../src/doctor/index.js';
import { DOCTOR_SCHEMA, libraryFindings, runDoctor } from '../src/doctor/index.js';
import { PROVIDER_REQUIREMENTS } from '../src/doctor/requirements.js';
import type { SystemReport } from '../src/doctor/system.js';
import type { Finding, GpuReport, LibraryCheck } from '../src/doctor/types.js';
import { formatDoctor } from '../src/cli/doctor.js';
import type { Provider } from '../src/runtime/providers.js';
import { PROVIDER_SPECS, missingProviderFiles } from '../src/runtime/providers.js';

const DIR = '/fake/onnxruntime-node/bin/napi-v6/linux/x64';
const NO_GPU: GpuReport = {
  source: 'none',
  driverVersion: null,
  cudaDriverVersion: null,
  devices: [],
  tried: [
    { source: 'nvml', ok: false, error: 'libnvidia-ml.so.1: cannot open shared object file' },
    { source: 'cuda-driver', ok: false, error: 'libcuda.so.1: cannot open shared object file' },
    { source: 'nvidia-smi', ok: false, error: 'nvidia-smi: not found' },
  ],
};
const H100: GpuReport = {
  source: 'nvml',
  tried: [{ source: 'nvml', ok: true }],
  driverVersion: '580.159.04',
  cudaDriverVersion: '13.0',
  devices: [{ index: 0, name: 'NVIDIA H100 80GB HBM3', computeCapability: '9.0', memoryTotalMiB: 81559 }],
};
const NO_ADAPTER = 'no hardware adapter (only a software adapter: llvmpipe (cpu))';

/** The libraries a provider needs, each missing except those named. */
function libs(p: 'cuda' | 'tensorrt', found: string[] = []): LibraryCheck[] {
  return PROVIDER_REQUIREMENTS[p]
    .filter((r) => !r.system)
    .map((r): LibraryCheck => ({
      soname: r.soname,
      neededBy: r.neededBy === 'dlopen' ? 'dlopen at run time' : 'DT_NEEDED',
      candidates: [],
      ...(found.includes(r.soname)
        ? { foundVia: 'ld.so.cache', path: `/usr/local/cuda-13.0/lib/${r.soname}`, version: '13.0' }
        : { foundVia: null, path: null, version: null }),
    }));
}

function provider(
  p: Provider,
  state: { runs?: boolean; filesMissing?: boolean; gpu?: GpuReport; probe?: boolean } = {},
): ProviderReport {
  const files = PROVIDER_SPECS[p].files;
  const missing = state.filesMissing ? files : [];
  const libraries =
    p === 'cuda' || p === 'tensorrt'
      ? libs(p, state.runs ? PROVIDER_REQUIREMENTS[p].map((r) => r.soname) : ['libcudart.so.13'])
      : [];
  const findings: Finding[] = [];
  if (missing.length)
    findings.push({
      id: 'provider-files-missing',
      verdict: 'fail',
      message: `${missing.join(', ')} are not in ${DIR}: onnxruntime-node ships without the ${p} provider`,
      fix: 'gpen-lab setup cuda',
    });
  findings.push(...libraryFindings(libraries));
  if (!state.runs && p === 'webgpu')
    findings.push({
      id: 'webgpu-no-adapter',
      verdict: 'fail',
      message: 'WebGPU found no GPU adapter: no GPU with a Vulkan driver is visible',
      fix: "install the Vulkan loader (apt install libvulkan1) and the NVIDIA driver's Vulkan ICD",
    });
  if (!state.runs && PROVIDER_SPECS[p].gpu && p !== 'webgpu' && state.gpu?.source === 'none')
    findings.push({
      id: 'no-gpu',
      verdict: 'fail',
      message: 'no NVIDIA GPU or driver is visible',
      fix: 'run on a machine with an NVIDIA GPU and driver, or use --provider cpu',
    });
  const ok = state.runs ?? false;
  return {
    provider: p,
    files: { dir: DIR, present: files.filter((f) => !missing.includes(f)), missing },
    elf: null,
    libraries,
    fatbin: null,
    kernels: [],
    probe:
      state.probe === false
        ? null
        : {
            provider: p,
            asked: p,
            ran: ok ? [p] : null,
            ok,
            stage: ok ? 'done' : 'create-session',
            ms: 600,
            error: ok ? null : `The ${p} execution provider cannot load`,
            stderrTail: '',
            exitCode: ok ? 0 : 1,
            signal: null,
          },
    findings,
    verdict: ok ? 'ok' : 'fail',
  };
}

const SYSTEM: SystemReport = {
  os: 'Linux 6.1',
  distro: 'Debian GNU/Linux 12 (bookworm)',
  kernel: '6.1',
  arch: 'x64',
  libc: 'glibc 2.36',
  container: { inContainer: true, kind: 'docker', evidence: '/.dockerenv exists' },
  cpu: { model: 'Xeon', cores: 2 },
  memoryGiB: 23.5,
  node: 'v20.20.2',
  onnxruntime: '1.29.0',
  env: { LD_LIBRARY_PATH: null },
  runtimeProviders: [
    { provider: 'cpu', bundled: true, missingFiles: [] },
    { provider: 'cuda', bundled: false, missingFiles: PROVIDER_SPECS.cuda.files },
    { provider: 'tensorrt', bundled: false, missingFiles: PROVIDER_SPECS.tensorrt.files },
    { provider: 'webgpu', bundled: true, missingFiles: [] },
  ],
};

function report(
  gpu: GpuReport,
  providers: ProviderReport[],
  asked: DecisionInput['asked'],
  adapter: string | null,
): DoctorReport {
  const decision = decide({
    gpu,
    providers,
    asked,
    webgpuAdapter: () => adapter,
    missingFiles: (p) => PROVIDER_SPECS[p].files,
    ortBinDir: DIR,
    inContainer: true,
  });
  return {
    schema: DOCTOR_SCHEMA,
    date: '2026-12-01T00:00:00Z',
    system: SYSTEM,
    gpu,
    providers,
    builds: [],
    buildChoice: {
      run: { build: null, reason: 'no NVIDIA driver answers here' },
      setup: { build: 'ort1.29-cuda13', reason: 'no NVIDIA driver answers here' },
    },
    findings: [],
    ok: providers.every((p) => p.verdict === 'ok'),
    decision,
  };
}

const noGpuMachine = (asked: DecisionInput['asked'] = 'auto'): DoctorReport => {
  const all: ProviderReport[] = [
    provider('cpu', { runs: true }),
    provider('cuda', { filesMissing: true, gpu: NO_GPU }),
    provider('tensorrt', { filesMissing: true, gpu: NO_GPU }),
    provider('webgpu', { gpu: NO_GPU }),
  ];
  return report(NO_GPU, asked === 'auto' ? all : all.filter((p) => asked.includes(p.provider)), asked, NO_ADAPTER);
};

describe('doctor without a GPU (faked)', () => {
  it("decides auto -> cpu with restore's words, the root cause no-gpu over the GPU providers, exit 0", () => {
    const d = noGpuMachine().decision;
    assert.deepEqual(
      [d.auto, d.works, d.noGpu, d.exitCode, d.rootCause?.id, d.rootCause?.provider],
      ['cpu', true, true, 0, 'no-gpu', null],
    );
    assert.deepEqual(d.excused, ['cuda', 'tensorrt', 'webgpu']);
    assert.deepEqual(d.failing, []);
    assert.deepEqual(
      d.rootCause?.consequences.map((c) => c.provider),
      ['cuda', 'tensorrt', 'webgpu'],
    );
    assert.ok(d.rootCause?.consequences[0].findings.includes('lib-missing'));
    assert.equal(
      d.why,
      `provider auto -> cpu (fast route: stock binding; fp32; batch 4; detector on cpu; single); cuda skipped: no NVIDIA GPU or driver is visible; webgpu skipped: ${NO_ADAPTER}`,
    );
    assert.equal(d.why, choiceLine('cpu', d.skipped));
  });

  it('prints the no-GPU line first, nothing to install before it, and folds the 13 missing CUDA libraries into one line', () => {
    const text = formatDoctor(noGpuMachine());
    const lines = text.split('\n');
    assert.equal(lines[0], 'Decision');
    assert.match(
      lines[1],
      /^ {4}warn no GPU: no NVIDIA GPU or driver is visible, so cuda and tensorrt cannot run here and nothing to install for CUDA can help$/,
    );
    const cuda = lines.findIndex((l) => l.startsWith('Provider cuda:'));
    assert.match(lines[cuda], /^Provider cuda: does NOT run: no GPU, see Decision/);
    assert.match(
      lines[cuda + 1],
      /^ {4}folded under no GPU: its provider files are absent .*; 13 of 14 libraries it needs are missing \(libcublasLt\.so\.13, .*8 cuDNN libraries \(libcudnn\*\.so\.9\), libnvrtc\.so\.13\); found: libcudart\.so\.13 13\.0;/,
    );
    assert.ok(lines[cuda + 2].startsWith('Provider '), 'one line under the cause');
    // no install instruction that cannot help, anywhere in the text
    assert.doesNotMatch(
      text,
      /fix:|^\s+FAIL lib|apt install|pip install|install (cuBLAS|cuDNN|the NVIDIA|the Vulkan)|setup cuda/m,
    );
    assert.match(
      lines.find((l) => l.includes('auto chooses'))!,
      /^ {4}ok {3}auto chooses cpu, which runs here \(try-load 0\.6 s\): provider auto -> cpu \(fast route/,
    );
    assert.match(
      text,
      /^ {4}exit 0: the provider auto chooses runs; cuda, tensorrt, webgpu need a GPU and are not counted/m,
    );
    assert.match(
      text,
      /loaded from provider files: cuda \(provider files absent\), tensorrt \(provider files absent\)/,
    );
    assert.doesNotMatch(text, /\(loadable\)/);
  });

  it('--provider cuda fails with exit 3 and the same cause first', () => {
    const r = noGpuMachine(['cuda']);
    assert.deepEqual(
      [r.decision.exitCode, r.decision.failing, r.decision.excused, r.decision.rootCause?.id],
      [3, ['cuda'], [], 'no-gpu'],
    );
    // cpu was not checked: auto's choice is named, not claimed to run
    assert.deepEqual([r.decision.auto, r.decision.works], ['cpu', null]);
    const lines = formatDoctor(r).split('\n');
    assert.match(lines[1], /^ {4}FAIL no GPU: no NVIDIA GPU or driver is visible, so cuda cannot run here/);
    assert.ok(lines.some((l) => l === '    exit 3: cuda was asked for and does not run'));
  });

  it('provider files present but no GPU: the System line says so, and auto still chooses cpu', () => {
    const cuda = provider('cuda', { gpu: NO_GPU });
    const r = report(
      NO_GPU,
      [provider('cpu', { runs: true }), cuda, provider('webgpu', { gpu: NO_GPU })],
      'auto',
      NO_ADAPTER,
    );
    r.system = { ...SYSTEM, runtimeProviders: SYSTEM.runtimeProviders.map((p) => ({ ...p, missingFiles: [] })) };
    assert.deepEqual(
      [r.decision.auto, r.decision.exitCode, r.decision.skipped[0].reason],
      ['cpu', 0, 'no NVIDIA GPU or driver is visible'],
    );
    assert.match(formatDoctor(r), /cuda \(provider files present, no GPU to run on\)/);
  });

  it('a driver that lists no GPU is no GPU too; a CPU that fails decides before it, exit 3', () => {
    const empty: GpuReport = { ...H100, devices: [] };
    const d = decide({
      gpu: empty,
      providers: [provider('cpu', { runs: true }), provider('cuda', { filesMissing: true, gpu: empty })],
      asked: 'auto',
      webgpuAdapter: () => NO_ADAPTER,
      missingFiles: () => [],
      ortBinDir: DIR,
      inContainer: false,
    });
    assert.deepEqual(
      [d.noGpu, d.rootCause?.message, d.rootCause?.fix, d.exitCode],
      [true, 'the NVIDIA driver answers (nvml) but lists no GPU', null, 0],
    );
    const broken = report(
      NO_GPU,
      [provider('cpu'), provider('cuda', { filesMissing: true, gpu: NO_GPU })],
      'auto',
      NO_ADAPTER,
    );
    assert.deepEqual(
      [broken.decision.auto, broken.decision.works, broken.decision.exitCode, broken.decision.rootCause?.provider],
      [null, false, 3, 'cpu'],
    );
    assert.match(
      formatDoctor(broken),
      /^ {4}FAIL auto finds no provider that runs: no provider runs: cuda skipped: no NVIDIA GPU/m,
    );
  });
});

describe('doctor on a GPU machine (faked)', () => {
  it('GPU present, CUDA provider missing: the first line is its fix, gpen-lab setup cuda; every library line as before; exit 3', () => {
    const r = report(
      H100,
      [
        provider('cpu', { runs: true }),
        provider('cuda', { filesMissing: true }),
        provider('tensorrt', { filesMissing: true }),
        provider('webgpu', { runs: true }),
      ],
      'auto',
      null,
    );
    const d = r.decision;
    assert.deepEqual(
      [d.noGpu, d.auto, d.works, d.exitCode, d.excused, d.failing],
      [false, 'webgpu', true, 3, [], ['cuda', 'tensorrt']],
    );
    assert.deepEqual(
      [d.rootCause?.id, d.rootCause?.provider, d.rootCause?.fix],
      ['provider-files-missing', 'cuda', 'gpen-lab setup cuda'],
    );
    assert.match(
      d.skipped[0].reason,
      /^its provider is not installed \(libonnxruntime_providers_shared\.so, libonnxruntime_providers_cuda\.so missing from .*\): run `gpen-lab setup cuda`$/,
    );
    const lines = formatDoctor(r).split('\n');
    assert.match(
      lines[1],
      /^ {4}FAIL cuda does NOT run although GPU 0 \(NVIDIA H100 80GB HBM3\) is visible: .*ships without the cuda provider$/,
    );
    assert.equal(lines[2], '         fix: gpen-lab setup cuda');
    assert.ok(!lines.some((l) => l.includes('folded under no GPU') || l.includes('no GPU:')));
    assert.ok(
      lines.some((l) => /^ {4}FAIL libcublasLt\.so\.13 +missing$/.test(l)),
      'the library lines are listed, one each',
    );
    assert.ok(lines.some((l) => /^ {9}fix: install cuBLAS for CUDA 13/.test(l)));
    assert.equal(lines.at(-2), 'Not every requested provider runs: cuda, tensorrt.');
  });

  it("CUDA runs: auto chooses it with restore's line; a failing TensorRT still makes exit 3, as before", () => {
    const good = [
      provider('cpu', { runs: true }),
      provider('cuda', { runs: true }),
      provider('webgpu', { runs: true }),
    ];
    const r = report(H100, good, 'auto', null);
    assert.deepEqual(
      [r.decision.auto, r.decision.works, r.decision.exitCode, r.decision.rootCause],
      ['cuda', true, 0, null],
    );
    assert.equal(
      r.decision.why,
      'provider auto -> cuda (fast route: C API, cold set; fp16; batch 1; detector on cpu; single)',
    );
    assert.match(formatDoctor(r), /^ {4}exit 0: the provider auto chooses runs\n/m);
    const trt = report(H100, [...good, provider('tensorrt', { filesMissing: true })], 'auto', null);
    assert.deepEqual(
      [trt.decision.exitCode, trt.decision.failing, trt.decision.rootCause?.provider],
      [3, ['tensorrt'], 'tensorrt'],
    );
  });

  it(
    "runDoctor with a faked GPU and this machine's files: the CUDA provider missing still recommends gpen-lab setup cuda",
    { skip: missingProviderFiles('cuda').length === 0 && 'the CUDA provider is installed here' },
    async () => {
      const r = await runDoctor({ providers: ['cpu', 'cuda'], probe: false, gpu: H100, webgpuAdapter: null });
      assert.deepEqual([r.decision.noGpu, r.decision.exitCode, r.ok], [false, 3, false]);
      assert.deepEqual([r.decision.rootCause?.provider, r.decision.rootCause?.fix], ['cuda', 'gpen-lab setup cuda']);
      const cuda = r.providers.find((p) => p.provider === 'cuda')!;
      assert.ok(!cuda.findings.some((f) => f.id === 'no-gpu'));
      assert.match(
        formatDoctor(r),
        /^Decision\n {4}FAIL cuda does NOT run although GPU 0 \(NVIDIA H100 80GB HBM3\) is visible: .*\n {9}fix: gpen-lab setup cuda\n/,
      );
    },
  );
});
