// The doctor's report per runtime build: where its files are (beside onnxruntime-node's library for ort1.29-cuda13,
// in <cache>/runtimes/<build> for another), what its providers need and what each resolves to, the driver's CUDA
// ceiling against the build's, its kernels against each GPU, whether it fits this machine, and the first fix.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { GpenLabError } from '../errors.js';
import type { RuntimeBuild } from '../runtime/builds.js';
import { RUNTIME_BUILDS, buildForDriver, buildLibraryPath, buildSpec, providerDir } from '../runtime/builds.js';
import type { Needed } from './checks.js';
import { checkKernels, checkNeeded, checkProviderElf, libraryFindings } from './checks.js';
import { kernelVerdict, readFatbin } from './fatbin.js';
import { PROVIDER_PACKAGES } from './provider-files.js';
import { BUILD_REQUIREMENTS, RECORDED_KERNELS, driverMinimumFor } from './requirements.js';
import { chooseSetupBuild, driverFacts } from './setup-choice.js';
import type { BuildReport, FatbinSummary, Finding, GpuReport, LibraryCheck } from './types.js';

export interface BuildChoices {
  /** The build a GPU run takes without --runtime (buildForDriver over the installed builds). */
  run: { build: RuntimeBuild | null; reason: string };
  /** The build `gpen-lab setup cuda` installs here; null with the refusal when the driver runs none. */
  setup: { build: RuntimeBuild | null; reason: string };
}

export interface BuildContext {
  gpu: GpuReport;
  cacheDir: string;
  /** For tests: the folder taken for onnxruntime-node's (ort1.29-cuda13's library and providers). */
  ortBinDir?: string;
  ldLibraryPath: string;
  ldCache: Map<string, string>;
  memo: Map<string, LibraryCheck>;
}

/** "12.2" -> 12020, cuDriverGetVersion's encoding. */
const cudaInt = (v: string): number => {
  const [a, b] = v.split('.').map(Number);
  return a * 1000 + (b || 0) * 10;
};

/** Where a build's providers and libonnxruntime are, as builds.ts says (onnxruntime-node's folder replaceable). */
function locate(b: RuntimeBuild, cacheDir: string, ortBinDir?: string): { dir: string; lib: string } {
  const lib = buildSpec(b).library;
  if (lib.from === 'onnxruntime-node' && ortBinDir) return { dir: ortBinDir, lib: path.join(ortBinDir, lib.file) };
  return { dir: providerDir(b, cacheDir), lib: buildLibraryPath(b, cacheDir) };
}

/** installedBuilds, with onnxruntime-node's folder replaceable: the library and the CUDA provider are in place. */
function installed(cacheDir: string, ortBinDir?: string): RuntimeBuild[] {
  return RUNTIME_BUILDS.filter((b) => {
    const at = locate(b, cacheDir, ortBinDir);
    return existsSync(at.lib) && existsSync(path.join(at.dir, 'libonnxruntime_providers_cuda.so'));
  });
}

export function buildChoices(gpu: GpuReport, cacheDir: string, ortBinDir?: string): BuildChoices {
  const d = driverFacts(gpu);
  const run = buildForDriver(d.cudaCeiling ? cudaInt(d.cudaCeiling) : null, installed(cacheDir, ortBinDir));
  try {
    const c = chooseSetupBuild(gpu);
    return { run, setup: { build: c.build, reason: c.reason } };
  } catch (e) {
    if (!(e instanceof GpenLabError)) throw e;
    return { run, setup: { build: null, reason: `${e.message}: ${e.fix}` } };
  }
}

const record = (b: RuntimeBuild, p: 'cuda' | 'tensorrt'): Needed[] => BUILD_REQUIREMENTS[b][p].filter((r) => !r.system);

/**
 * A resolved library's copies of another major that another build needs are that build's, not strays on the path:
 * they are left out of the warning about other majors (kept for a missing one, where they say what is there).
 */
function forOthers(build: RuntimeBuild): (c: LibraryCheck) => LibraryCheck {
  const theirs = new Set(
    RUNTIME_BUILDS.filter((b) => b !== build).flatMap((b) =>
      [...record(b, 'cuda'), ...record(b, 'tensorrt')].map((r) => r.soname),
    ),
  );
  return (c) => (c.path ? { ...c, candidates: c.candidates.filter((k) => !theirs.has(k.soname)) } : c);
}

/** The newest other build that `ok` accepts, for a fix that names it. */
function other(build: RuntimeBuild, ok: (b: RuntimeBuild) => boolean): RuntimeBuild | null {
  const list = RUNTIME_BUILDS.filter((b) => b !== build && ok(b));
  return list.sort((a, b) => buildSpec(b).cudaMajor - buildSpec(a).cudaMajor)[0] ?? null;
}

export function checkBuild(build: RuntimeBuild, ctx: BuildContext, choices: BuildChoices): BuildReport {
  const spec = buildSpec(build);
  const pkg = `${spec.providerPackage.name}@${spec.providerPackage.version}`;
  const { dir, lib: libPath } = locate(build, ctx.cacheDir, ctx.ortBinDir);
  const installedHere = installed(ctx.cacheDir, ctx.ortBinDir);
  const names = PROVIDER_PACKAGES[build].files.map((f) => f.name);
  const present = names.filter((f) => existsSync(path.join(dir, f)));
  const missing = names.filter((f) => !present.includes(f));
  const isInstalled = installedHere.includes(build);
  const d = driverFacts(ctx.gpu);
  const runsBuild = d.runs(build);
  const noGpu = ctx.gpu.devices.length === 0;
  const setup = `gpen-lab setup cuda${choices.setup.build === build ? '' : ` --runtime ${build}`}`;
  const findings: Finding[] = [];

  if (runsBuild === false) {
    const alt = other(build, (b) => d.runs(b) === true);
    findings.push({
      id: 'driver-too-old',
      verdict: 'fail',
      message: `${d.driverVersion ? `driver ${d.driverVersion}` : 'the driver'} runs CUDA ${d.cudaCeiling} at most; ${build} needs CUDA ${spec.cudaMajor} (driver >= ${driverMinimumFor(spec.cudaMajor) ?? spec.driverMin})`,
      fix: `install NVIDIA driver ${spec.driverMin} or newer, e.g. apt-get install nvidia-driver-${spec.driverMin}${alt ? `; or use ${alt}, which this driver runs${installedHere.includes(alt) ? ' (installed)' : ` (gpen-lab setup cuda${choices.setup.build === alt ? '' : ` --runtime ${alt}`} installs it)`}` : ''}`,
    });
  }
  const libraryThere = existsSync(libPath);
  if (!isInstalled || missing.length) {
    const absent = [...(libraryThere ? [] : [path.basename(libPath)]), ...missing];
    // installed with only TensorRT's file absent (--no-tensorrt): CUDA runs, TensorRT does not
    const onlyTrt = isInstalled && missing.every((f) => f.includes('tensorrt'));
    findings.push({
      id: isInstalled ? 'provider-files-missing' : 'build-not-installed',
      verdict: onlyTrt ? 'warn' : 'fail',
      message: `${absent.join(', ')} ${absent.length > 1 ? 'are' : 'is'} not in ${dir}: ${onlyTrt ? `${build}'s TensorRT provider is not installed` : `${build} is not installed${isInstalled ? ' completely' : ''}`}`,
      fix: setup,
    });
  }

  const cudaFile = path.join(dir, 'libonnxruntime_providers_cuda.so');
  let runpath: string[] = [];
  let fatbin: FatbinSummary = { file: `recorded for ${pkg}`, ...RECORDED_KERNELS[build] };
  let elf: BuildReport['elf'] = null;
  if (present.includes('libonnxruntime_providers_cuda.so')) {
    const e = checkProviderElf(cudaFile, record(build, 'cuda'), pkg, setup);
    elf = e.elf;
    runpath = e.runpath;
    findings.push(...e.findings);
    // a file without kernels (a stand-in) keeps the record's
    const read = e.elf ? readFatbin(cudaFile) : null;
    if (read && read.entries > 0) fatbin = read;
  }
  const look = { ldLibraryPath: ctx.ldLibraryPath, ldCache: ctx.ldCache, memo: ctx.memo };
  const libraries = checkNeeded(record(build, 'cuda'), { ...look, runpath });
  findings.push(...libraryFindings(libraries.map(forOthers(build)), spec.cudaMajor));

  // each GPU against its kernels: the fix names a build whose recorded kernels run on every GPU, when one does
  const runsOn = (k: Omit<FatbinSummary, 'file'>) =>
    ctx.gpu.devices.every((g) => !g.computeCapability || kernelVerdict(g.computeCapability, { file: '', ...k }).runs);
  const withKernels = other(build, (b) => runsOn(RECORDED_KERNELS[b]));
  const k = checkKernels(
    fatbin,
    ctx.gpu,
    d.cudaCeiling,
    withKernels ? `use ${withKernels}, which has kernels for it` : 'use a GPU that one of the builds has kernels for',
  );
  findings.push(...k.findings);

  // TensorRT's own needs beyond the CUDA provider's: optional, so warnings
  const cudaNames = new Set(libraries.map((l) => l.soname));
  const trtFile = path.join(dir, 'libonnxruntime_providers_tensorrt.so');
  const trtRunpath = present.includes(path.basename(trtFile))
    ? checkProviderElf(trtFile, record(build, 'tensorrt'), pkg, setup).runpath
    : [];
  const tensorrtLibraries = checkNeeded(
    record(build, 'tensorrt').filter((r) => !cudaNames.has(r.soname)),
    { ...look, runpath: trtRunpath },
  );
  for (const f of libraryFindings(tensorrtLibraries.map(forOthers(build)), spec.cudaMajor))
    findings.push({ ...f, id: `tensorrt-${f.id}`, verdict: 'warn', message: `TensorRT provider: ${f.message}` });

  const fits = noGpu || runsBuild === null ? null : runsBuild && k.kernels.every((x) => x.runs);
  const failing = findings.filter((f) => f.verdict === 'fail');
  return {
    build,
    ortVersion: spec.ortVersion,
    providerPackage: pkg,
    needs: { cudaMajor: spec.cudaMajor, cudnnMajor: spec.cudnnMajor, driverMinimum: driverMinimumFor(spec.cudaMajor) },
    installed: isInstalled,
    library: { path: libPath, present: libraryThere },
    files: { dir, present, missing },
    elf,
    libraries,
    tensorrtLibraries,
    fatbin,
    kernels: k.kernels,
    driver: { version: d.driverVersion, cudaCeiling: d.cudaCeiling, runsBuild },
    fits,
    ready: isInstalled && fits === true && failing.length === 0,
    findings,
    fix: noGpu ? null : (failing[0]?.fix ?? null),
  };
}
