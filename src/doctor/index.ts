// `gpen-lab doctor`: why each execution provider will or will not run here, and the exact fix. Sections: system,
// GPU and driver, the libraries each provider needs (resolved as the loader would, versions read by calling them),
// checks against the rules (driver minimum, kernel architectures, cuDNN major), a try-load in a child process, a
// diagnosis of whatever failed from a knowledge base of known error texts, the decision over them (decision.ts), and
// each runtime build's GPU path (build-report.ts).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { cacheDir as defaultCacheDir } from '../io/cache.js';
import { DEFAULT_BUILD, RUNTIME_BUILDS, buildSpec } from '../runtime/builds.js';
import type { Provider } from '../runtime/providers.js';
import { PROVIDERS, PROVIDER_SPECS, missingProviderFiles, ortBinDir } from '../runtime/providers.js';
import { probeWebgpuAdapter } from '../runtime/webgpu-adapter.js';
import type { BuildChoices } from './build-report.js';
import { buildChoices, checkBuild } from './build-report.js';
import type { Needed } from './checks.js';
import { checkKernels, checkNeeded, checkProviderElf, libraryFindings } from './checks.js';
import type { Decision } from './decision.js';
import { decide } from './decision.js';
import { readFatbin } from './fatbin.js';
import { driverSupportsCuda, maxCudaForDriver, readGpus } from './gpu.js';
import { readLdCache } from './libs.js';
import { probeProvider } from './probe.js';
import type { Requirement } from './requirements.js';
import { PROVIDER_REQUIREMENTS, REQUIRED_CUDA_MAJOR, driverMinimumFor } from './requirements.js';
import { driverFacts } from './setup-choice.js';
import { diagnose } from './signatures.js';
import type { SystemReport } from './system.js';
import { readSystem } from './system.js';
import type { BuildReport, Finding, GpuReport, LibraryCheck, ProviderReport } from './types.js';

export type { ProviderReport } from './types.js';
export { libraryFindings } from './checks.js';

export const DOCTOR_SCHEMA = 'gpen-lab.doctor/1';

export interface DoctorReport {
  schema: typeof DOCTOR_SCHEMA;
  date: string;
  system: SystemReport;
  gpu: GpuReport;
  providers: ProviderReport[];
  /** Each runtime build's GPU path here (none when only cpu or webgpu is asked about). */
  builds: BuildReport[];
  /** The build a GPU run takes without --runtime, and the one `gpen-lab setup cuda` installs, each with why. */
  buildChoice: BuildChoices;
  findings: Finding[];
  /** Every requested provider can run (all four without --provider; `decision.exitCode` says what the exit is). */
  ok: boolean;
  /** What decides: the provider auto chooses here, the root cause of what does not run, the exit code. */
  decision: Decision;
}

export interface DoctorOptions {
  providers?: Provider[];
  /** Skip the try-load (faster; for tests of the static checks). */
  probe?: boolean;
  probeTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** The GPUs and driver as given instead of read (tests fake a GPU machine). */
  gpu?: GpuReport;
  /** restore's WebGPU gate as given instead of probed: null for a hardware adapter, else why not. */
  webgpuAdapter?: string | null;
  /** Report each runtime build (default: unless only cpu or webgpu is asked about). */
  builds?: boolean;
  /** The gpen-lab cache holding the builds other than ort1.29-cuda13 (default cacheDir()). */
  cacheDir?: string;
  /** For tests: the folder taken for onnxruntime-node's in the build report (ort1.29-cuda13's files). */
  ortBinDir?: string;
}

/** What one doctor run reads once: the loader cache, and each library's answer by soname and RUNPATH. */
interface RunState {
  ldCache: Map<string, string>;
  memo: Map<string, LibraryCheck>;
}

function recordFor(provider: Provider): Needed[] {
  const rec = (PROVIDER_REQUIREMENTS as Record<string, Requirement[] | undefined>)[provider] ?? [];
  return rec.filter((r) => !r.system);
}

async function checkProvider(
  provider: Provider,
  gpu: GpuReport,
  run: RunState,
  opts: DoctorOptions,
): Promise<ProviderReport> {
  const spec = PROVIDER_SPECS[provider];
  const dir = ortBinDir();
  const present = spec.files.filter((f) => existsSync(path.join(dir, f)));
  const missing = spec.files.filter((f) => !present.includes(f));
  const findings: Finding[] = [];
  const env = opts.env ?? process.env;
  const r: ProviderReport = {
    provider,
    files: { dir, present, missing },
    elf: null,
    libraries: [],
    fatbin: null,
    kernels: [],
    probe: null,
    findings,
    verdict: 'fail',
  };
  // the driver against the runtime's CUDA major: first, since installing files cannot help a driver too old
  if (
    recordFor(provider).length > 0 &&
    gpu.driverVersion &&
    !driverSupportsCuda(gpu.driverVersion, REQUIRED_CUDA_MAJOR)
  ) {
    const other = RUNTIME_BUILDS.find((b) => b !== DEFAULT_BUILD && driverFacts(gpu).runs(b));
    findings.push({
      id: 'driver-too-old',
      verdict: 'fail',
      message: `driver ${gpu.driverVersion} supports CUDA <= ${maxCudaForDriver(gpu.driverVersion)}; this build needs ${REQUIRED_CUDA_MAJOR}.x`,
      fix: `update the NVIDIA driver to >= ${driverMinimumFor(REQUIRED_CUDA_MAJOR) ?? '?'} or use the cpu/webgpu provider${other ? `, or the runtime ${other}, which this driver runs (gpen-lab setup cuda installs it; see Runtime builds)` : ''}`,
    });
  }
  if (missing.length > 0) {
    findings.push({
      id: 'provider-files-missing',
      verdict: 'fail',
      message: `${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} not in ${dir}: onnxruntime-node ships without the ${provider} provider`,
      fix: 'gpen-lab setup cuda',
    });
  }
  const record = recordFor(provider);
  if (record.length > 0) {
    // the provider library itself, when present: its DT_NEEDED and RUNPATH
    const main = spec.files.find(
      (f) =>
        f !== 'libonnxruntime_providers_shared.so' &&
        (provider === 'tensorrt' ? f.includes('tensorrt') : f.includes(provider)),
    );
    let runpath: string[] = [];
    if (main && present.includes(main)) {
      const file = path.join(dir, main);
      const pkg = buildSpec(DEFAULT_BUILD).providerPackage;
      const e = checkProviderElf(file, record, pkg.version, 'gpen-lab setup cuda');
      r.elf = e.elf;
      runpath = e.runpath;
      findings.push(...e.findings);
      if (e.elf && provider === 'cuda') r.fatbin = readFatbin(file);
    }
    r.libraries = checkNeeded(record, {
      runpath,
      ldLibraryPath: env.LD_LIBRARY_PATH ?? '',
      ldCache: run.ldCache,
      memo: run.memo,
    });
    findings.push(...libraryFindings(r.libraries));
    // the GPU's architecture against the kernels compiled in
    if (r.fatbin && r.fatbin.entries > 0) {
      const k = checkKernels(
        r.fatbin,
        gpu,
        gpu.cudaDriverVersion,
        'use a build with kernels for this GPU, or the webgpu provider',
      );
      r.kernels = k.kernels;
      findings.push(...k.findings);
    }
  }
  if (spec.gpu && gpu.source === 'none' && provider !== 'webgpu') {
    findings.push({
      id: 'no-gpu',
      verdict: 'fail',
      message: `no NVIDIA GPU or driver is visible (${gpu.tried.map((t) => `${t.source}: ${t.error ?? 'ok'}`).join('; ')})`,
      fix: 'run on a machine with an NVIDIA GPU and driver (in a container: --gpus all with the NVIDIA Container Toolkit), or use --provider cpu',
    });
  }
  if (opts.probe !== false) {
    r.probe = await probeProvider(provider, { timeoutMs: opts.probeTimeoutMs ?? 120_000, env });
    if (!r.probe.ok) {
      const text = `${r.probe.error ?? ''}\n${r.probe.stderrTail}`;
      const found: Record<string, string[]> = {};
      for (const c of r.libraries) {
        const dirs = c.candidates.filter((k) => k.matches).map((k) => path.dirname(k.path));
        if (dirs.length) found[c.soname] = dirs;
      }
      const known = new Set(findings.map((f) => f.id));
      // a signature about a library the library section already reported says nothing new
      const missingLibs = r.libraries.filter((c) => !c.path).map((c) => c.soname);
      if (missing.length) known.add('provider-shared-missing').add('provider-file-missing').add('ep-append-failed');
      // the provider file is there but a library it needs is not: the library finding is the cause, not setup
      if (missingLibs.length) known.add('ep-append-failed');
      for (const f of diagnose(text, {
        provider,
        ortBinDir: dir,
        found,
        driverVersion: gpu.driverVersion,
        cudaDriverVersion: gpu.cudaDriverVersion,
        requiredCudaMajor: REQUIRED_CUDA_MAJOR,
        driverMinimum: driverMinimumFor(REQUIRED_CUDA_MAJOR),
      })) {
        if (!known.has(f.id) && !missingLibs.some((l) => f.message.startsWith(l))) findings.push(f);
      }
    }
  }
  r.verdict = r.probe ? (r.probe.ok ? 'ok' : 'fail') : findings.some((f) => f.verdict === 'fail') ? 'fail' : 'ok';
  return r;
}

export async function runDoctor(opts: DoctorOptions = {}): Promise<DoctorReport> {
  const providers = opts.providers?.length ? opts.providers : [...PROVIDERS];
  const system = readSystem();
  const gpu = opts.gpu ?? (await readGpus());
  const run: RunState = { ldCache: readLdCache(), memo: new Map() };
  const findings: Finding[] = [];
  if (gpu.source === 'none') {
    findings.push({
      id: 'no-gpu',
      verdict: 'warn',
      message: `no NVIDIA GPU or driver found: ${gpu.tried.map((t) => `${t.source}: ${t.error ?? 'ok'}`).join('; ')}`,
      fix: 'cpu runs here; GPU providers need an NVIDIA GPU and driver',
    });
  }
  const reports: ProviderReport[] = [];
  for (const p of providers) reports.push(await checkProvider(p, gpu, run, opts));
  const cache = opts.cacheDir ?? defaultCacheDir();
  const choice = buildChoices(gpu, cache, opts.ortBinDir);
  const withBuilds = opts.builds ?? providers.some((p) => p === 'cuda' || p === 'tensorrt');
  const builds = withBuilds
    ? RUNTIME_BUILDS.map((b) =>
        checkBuild(
          b,
          {
            gpu,
            cacheDir: cache,
            ...(opts.ortBinDir ? { ortBinDir: opts.ortBinDir } : {}),
            ldLibraryPath: (opts.env ?? process.env).LD_LIBRARY_PATH ?? '',
            ...run,
          },
          choice,
        ),
      )
    : [];
  const decision = decide({
    gpu,
    providers: reports,
    asked: opts.providers?.length ? providers : 'auto',
    webgpuAdapter: opts.webgpuAdapter !== undefined ? () => opts.webgpuAdapter ?? null : webgpuGate,
    missingFiles: missingProviderFiles,
    ortBinDir: ortBinDir(),
    inContainer: system.container.inContainer,
  });
  return {
    schema: DOCTOR_SCHEMA,
    date: new Date().toISOString(),
    system,
    gpu,
    providers: reports,
    builds,
    buildChoice: choice,
    findings,
    ok: reports.every((r) => r.verdict === 'ok'),
    decision,
  };
}

/** The gate restore's auto puts before WebGPU (face/choose.ts), in its words. */
function webgpuGate(): string | null {
  const probe = probeWebgpuAdapter();
  return probe.ok ? null : `no hardware adapter (${probe.reason})`;
}
