// Which runtime build `gpen-lab setup cuda` installs: the one named with --runtime, else the newest the NVIDIA driver
// runs (NVML's driver version against each build's driver minimum; the CUDA version the driver answers when no
// version string does), else, with no driver answering, the default build (a machine being prepared for a GPU).
import { GpenLabError } from '../errors.js';
import type { RuntimeBuild } from '../runtime/builds.js';
import { DEFAULT_BUILD, RUNTIME_BUILDS, buildSpec } from '../runtime/builds.js';
import { maxCudaForDriver } from './gpu.js';
import type { GpuReport } from './types.js';

export interface SetupChoice {
  build: RuntimeBuild;
  /** runtime: --runtime named it; driver: the newest build the driver runs; no-driver: none answers, the default. */
  by: 'runtime' | 'driver' | 'no-driver';
  reason: string;
  driverVersion: string | null;
  /** The newest CUDA the driver runs ("12.2"); null when no driver answers. */
  cudaCeiling: string | null;
  /** Whether the driver runs the chosen build; null when no driver answers. */
  driverFits: boolean | null;
}

const leadingInt = (v: string | null): number | null => (v && /^\d+/.test(v) ? Number(/^\d+/.exec(v)![0]) : null);

/** The driver as setup and the doctor weigh it: its version, its CUDA ceiling, and whether it runs each build. */
export function driverFacts(gpu: GpuReport): {
  driverVersion: string | null;
  cudaCeiling: string | null;
  runs: (b: RuntimeBuild) => boolean | null;
} {
  const driverVersion = gpu.driverVersion;
  const cudaCeiling = gpu.cudaDriverVersion ?? (driverVersion ? maxCudaForDriver(driverVersion) : null);
  const branch = leadingInt(driverVersion);
  const ceiling = leadingInt(cudaCeiling);
  const runs = (b: RuntimeBuild): boolean | null => {
    const s = buildSpec(b);
    if (branch !== null) return branch >= s.driverMin;
    return ceiling !== null ? ceiling >= s.cudaMajor : null;
  };
  return { driverVersion, cudaCeiling, runs };
}

/** "driver >= 525 (CUDA 12) or >= 580 (CUDA 13)": every build's need, oldest first. */
export function buildNeeds(): string {
  return [...RUNTIME_BUILDS]
    .sort((a, b) => buildSpec(a).driverMin - buildSpec(b).driverMin)
    .map((b, i) => `${i ? '' : 'driver '}>= ${buildSpec(b).driverMin} (CUDA ${buildSpec(b).cudaMajor})`)
    .join(' or ');
}

/** The newest driver branch any build needs: what a refusal tells to install. */
const newestNeed = (): number => Math.max(...RUNTIME_BUILDS.map((b) => buildSpec(b).driverMin));

/** The build to install here; E_PROVIDER_UNAVAILABLE when a driver answers and runs none of them. */
export function chooseSetupBuild(gpu: GpuReport, runtime?: RuntimeBuild): SetupChoice {
  const d = driverFacts(gpu);
  const driver = d.driverVersion ? `driver ${d.driverVersion}` : d.cudaCeiling ? 'the driver' : null;
  const ceiling = `runs CUDA ${d.cudaCeiling ?? '?'} at most`;
  const said = driver && `${driver} (${gpu.source}) ${ceiling}`;
  const base = { driverVersion: d.driverVersion, cudaCeiling: d.cudaCeiling };
  const need = (b: RuntimeBuild) => `${b} needs driver >= ${buildSpec(b).driverMin} (CUDA ${buildSpec(b).cudaMajor})`;
  if (runtime) {
    const fits = d.runs(runtime);
    return {
      ...base,
      build: runtime,
      by: 'runtime',
      driverFits: fits,
      reason: `--runtime ${runtime}${fits === false && said ? `; ${said} and ${need(runtime)}: it will not run here until the driver is updated` : ''}`,
    };
  }
  if (!said) {
    return {
      ...base,
      build: DEFAULT_BUILD,
      by: 'no-driver',
      driverFits: null,
      reason: `no NVIDIA driver answers here (${gpu.tried.map((t) => `${t.source}: ${t.error ?? 'ok'}`).join('; ')}): the default build ${DEFAULT_BUILD}; --runtime names another`,
    };
  }
  const fitting = RUNTIME_BUILDS.filter((b) => d.runs(b)).sort(
    (a, b) => buildSpec(b).cudaMajor - buildSpec(a).cudaMajor,
  );
  if (fitting.length === 0) {
    const want = newestNeed();
    throw new GpenLabError(
      'E_PROVIDER_UNAVAILABLE',
      `${driver} ${ceiling}; gpen-lab's builds need ${buildNeeds()}: no GPU provider build runs on it`,
      `install NVIDIA driver ${want} or newer, e.g. apt-get install nvidia-driver-${want} (or --runtime BUILD to install a build for a later driver)`,
      { input: 'driver', driverVersion: d.driverVersion, cudaCeiling: d.cudaCeiling },
    );
  }
  const [best, ...rest] = fitting;
  const others = RUNTIME_BUILDS.filter((b) => b !== best && !rest.includes(b));
  return {
    ...base,
    build: best,
    by: 'driver',
    driverFits: true,
    reason: `${said}: ${need(best)}${others.length ? `; ${others.map(need).join('; ')}` : ''}`,
  };
}
