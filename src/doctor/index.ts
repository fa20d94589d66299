// `gpen-lab doctor`: why each execution provider will or will not run here, and the exact fix. Sections: system,
// GPU and driver, the libraries each provider needs (resolved as the loader would, versions read by calling them),
// checks against the rules (driver minimum, kernel architectures, cuDNN major), a try-load in a child process, a
// diagnosis of whatever failed from a knowledge base of known error texts, and the decision over them (decision.ts).
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Provider } from '../runtime/providers.js';
import { PROVIDERS, PROVIDER_SPECS, missingProviderFiles, ortBinDir } from '../runtime/providers.js';
import { probeWebgpuAdapter } from '../runtime/webgpu-adapter.js';
import type { Decision } from './decision.js';
import { decide } from './decision.js';
import { expandOrigin, readElfDynamic } from './elf.js';
import { kernelVerdict, readFatbin } from './fatbin.js';
import { driverSupportsCuda, maxCudaForDriver, readGpus } from './gpu.js';
import { checkLibrary, exportLine, formatCandidate, readLdCache, versionTiedToSoname } from './libs.js';
import { probeProvider } from './probe.js';
import { PROVIDER_REQUIREMENTS, REQUIRED_CUDA_MAJOR, driverMinimumFor, familyOf } from './requirements.js';
import { diagnose } from './signatures.js';
import type { SystemReport } from './system.js';
import { readSystem } from './system.js';
import type { Finding, GpuReport, LibraryCheck, ProviderReport } from './types.js';

export type { ProviderReport } from './types.js';

export const DOCTOR_SCHEMA = 'gpen-lab.doctor/1';

export interface DoctorReport {
  schema: typeof DOCTOR_SCHEMA;
  date: string;
  system: SystemReport;
  gpu: GpuReport;
  providers: ProviderReport[];
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
}

const major = (v: string | null): number | null => (v && /^\d+/.test(v) ? Number(/^\d+/.exec(v)![0]) : null);
const sonameMajor = (s: string): number | null => {
  const m = /\.so\.(\d+)/.exec(s);
  return m ? Number(m[1]) : null;
};

export function libraryFindings(checks: LibraryCheck[]): Finding[] {
  const out: Finding[] = [];
  // missing libraries grouped by family (cuDNN's nine files are one finding)
  const groups = new Map<string, LibraryCheck[]>();
  for (const c of checks.filter((x) => !x.path)) {
    const key = familyOf(c.soname)?.prefix ?? c.soname;
    groups.set(key, [...(groups.get(key) ?? []), c]);
  }
  for (const group of groups.values()) {
    const first = group[0];
    const need = sonameMajor(first.soname);
    const fam = familyOf(first.soname);
    const good = group.flatMap((c) => c.candidates).find((k) => k.matches);
    const others = [
      ...new Map(
        group
          .flatMap((c) => c.candidates)
          .filter((k) => !k.matches)
          .map((k) => [k.path, k]),
      ).values(),
    ].map((k) => formatCandidate(k, need ?? 0));
    const names = group.map((c) => c.soname).join(', ');
    out.push({
      id: 'lib-missing',
      verdict: 'fail',
      message: `${names} (${fam?.what ?? 'library'}, ${first.neededBy}) not found by the dynamic loader${good ? `; a matching copy is in ${path.dirname(good.path)}` : ''}${others.length ? `; elsewhere: ${others.join('; ')}` : ''}`,
      fix: good
        ? exportLine(path.dirname(good.path))
        : `install ${fam?.install ?? first.soname}, then export LD_LIBRARY_PATH=<its folder>:$LD_LIBRARY_PATH`,
    });
  }
  for (const c of checks.filter((x) => x.path)) {
    const need = sonameMajor(c.soname);
    const good = c.candidates.find((k) => k.matches);
    if (c.version && need !== null && versionTiedToSoname(c.soname) && major(c.version) !== need) {
      out.push({
        id: 'lib-wrong-major',
        verdict: 'fail',
        message: `${c.soname} resolves to ${c.path}, version ${c.version}: this build needs ${need}.x`,
        fix: good
          ? exportLine(path.dirname(good.path))
          : `install ${familyOf(c.soname)?.install ?? `the CUDA ${need} runtime`}`,
      });
    } else if (c.candidates.length && c.candidates.every((k) => !k.matches)) {
      out.push({
        id: 'lib-other-major-on-path',
        verdict: 'warn',
        message: `LD_LIBRARY_PATH holds ${c.candidates.map((k) => formatCandidate(k, need ?? 0)).join('; ')}; it is not used: ${c.soname} resolves to ${c.path} (${c.version ?? 'version unknown'}) via ${c.foundVia}`,
        fix: `remove ${[...new Set(c.candidates.map((k) => path.dirname(k.path)))].join(', ')} from LD_LIBRARY_PATH if nothing else needs it`,
      });
    }
  }
  return out;
}

function recordFor(provider: Provider): { soname: string; neededBy: string }[] {
  const rec =
    (PROVIDER_REQUIREMENTS as Record<string, { soname: string; neededBy: string; system?: boolean }[] | undefined>)[
      provider
    ] ?? [];
  return rec.filter((r) => !r.system);
}

async function checkProvider(
  provider: Provider,
  gpu: GpuReport,
  cache: Map<string, string>,
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
      try {
        const dyn = readElfDynamic(file);
        runpath = expandOrigin(dyn.runpath.length ? dyn.runpath : dyn.rpath, file);
        const recorded = new Set(record.filter((x) => x.neededBy === 'DT_NEEDED').map((x) => x.soname));
        const system = /^(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|ld-linux-[\w-]+)\.so/;
        const needed = dyn.needed.filter((n) => !system.test(n));
        r.elf = {
          file,
          needed: dyn.needed,
          runpath,
          notInRecord: needed.filter((n) => !recorded.has(n)),
          recordedNotNeeded: [...recorded].filter((n) => !needed.includes(n)),
        };
        if (r.elf.notInRecord.length || r.elf.recordedNotNeeded.length) {
          findings.push({
            id: 'needed-differs',
            verdict: 'warn',
            message: `${main} needs ${needed.join(', ')}; the project's record differs (not recorded: ${r.elf.notInRecord.join(', ') || 'none'}; recorded but not needed: ${r.elf.recordedNotNeeded.join(', ') || 'none'}): another build than ${'0.4.9'}?`,
            fix: 'gpen-lab setup cuda (installs the recorded build)',
          });
        }
        if (provider === 'cuda') r.fatbin = readFatbin(file);
      } catch (e) {
        findings.push({
          id: 'provider-unreadable',
          verdict: 'fail',
          message: `${file} cannot be read as a shared library: ${(e as Error).message}`,
          fix: 'gpen-lab setup cuda --remove && gpen-lab setup cuda',
        });
      }
    }
    for (const req of record) {
      r.libraries.push(
        checkLibrary(req.soname, req.neededBy, sonameMajor(req.soname) ?? 0, {
          runpath,
          ldLibraryPath: env.LD_LIBRARY_PATH ?? '',
          cache,
        }),
      );
    }
    findings.push(...libraryFindings(r.libraries));
    // the driver against the runtime's CUDA major
    if (gpu.driverVersion && !driverSupportsCuda(gpu.driverVersion, REQUIRED_CUDA_MAJOR)) {
      findings.push({
        id: 'driver-too-old',
        verdict: 'fail',
        message: `driver ${gpu.driverVersion} supports CUDA <= ${maxCudaForDriver(gpu.driverVersion)}; this build needs ${REQUIRED_CUDA_MAJOR}.x`,
        fix: `update the NVIDIA driver to >= ${driverMinimumFor(REQUIRED_CUDA_MAJOR) ?? '?'} or use the cpu/webgpu provider`,
      });
    }
    // the GPU's architecture against the kernels compiled in
    if (r.fatbin && r.fatbin.entries > 0) {
      for (const d of gpu.devices) {
        if (!d.computeCapability) continue;
        const v = kernelVerdict(d.computeCapability, r.fatbin);
        r.kernels.push({ gpu: d.index, computeCapability: d.computeCapability, ...v });
        if (!v.runs)
          findings.push({
            id: 'no-kernel-image',
            verdict: 'fail',
            message: `GPU ${d.index} (${d.name}, compute capability ${d.computeCapability}): ${v.reason}`,
            fix: 'use a build with kernels for this GPU, or the webgpu provider',
          });
      }
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
  const cache = readLdCache();
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
  for (const p of providers) reports.push(await checkProvider(p, gpu, cache, opts));
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
