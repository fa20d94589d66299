// Which runtime build (builds.ts) a restore, a service or a bench runs, chosen the way `--provider auto` chooses and
// said the same way: asked for, it is checked (installed, fits the driver) and never replaced by another; not asked
// for, a GPU provider takes the installed build that fits the driver, everything else onnxruntime-node's own.
import { existsSync } from 'node:fs';
import { GpenLabError } from '../errors.js';
import {
  DEFAULT_BUILD,
  buildForDriver,
  buildLibraryPath,
  buildSpec,
  checkBuildCombination,
  installedBuilds,
  parseRuntimeBuild,
  providerDir,
  type Route,
  type RuntimeBuild,
} from './builds.js';
import { driverCudaVersion } from './cuda/driver.js';
import type { Provider } from './providers.js';

/** The build asked for (or auto), the one that runs, and why. */
export interface RuntimeChoice {
  asked: 'auto' | RuntimeBuild;
  build: RuntimeBuild;
  reason: string;
}

/** What the choice reads of the machine (tests fake it). */
export interface RuntimeProbe {
  /** The builds whose library and CUDA provider are in place (builds.ts installedBuilds). */
  installed: () => readonly RuntimeBuild[];
  /** cuDriverGetVersion's answer (cuda/driver.ts), null without a driver. */
  driverCuda: () => number | null;
  /** Whether the build's libonnxruntime is in place (all a CPU run needs of it). */
  hasLibrary: (b: RuntimeBuild) => boolean;
}

export const machineProbe: RuntimeProbe = {
  installed: () => installedBuilds(),
  driverCuda: () => driverCudaVersion(),
  hasLibrary: (b) => existsSync(buildLibraryPath(b)),
};

const isGpu = (p: Provider | 'auto'): boolean => p === 'cuda' || p === 'tensorrt';

/**
 * The build for `provider` (auto: the one its CUDA candidate takes) on `route`. Asked for: a provider or route the
 * build lacks is E_ARGUMENT, a build not installed or too new for the driver E_RUNTIME_VERSION, each naming the
 * option `runtime` and the command that fixes it. Not asked for: on cuda, tensorrt and auto the installed build
 * that fits the driver (the newest such), else onnxruntime-node's own with the reason; on the others and the stock
 * route onnxruntime-node's own. The driver is asked only where a build other than onnxruntime-node's is installed.
 */
export function chooseRuntime(
  o: { runtime?: RuntimeBuild | undefined; provider: Provider | 'auto'; route: Route },
  probe: RuntimeProbe = machineProbe,
): RuntimeChoice {
  if (o.runtime !== undefined) {
    const b = parseRuntimeBuild(o.runtime);
    // under auto each candidate is checked against the build; the route is the same for all of them
    checkBuildCombination(b, o.provider === 'auto' ? 'cpu' : o.provider, o.route);
    checkInstalled(b, o.provider, probe);
    return { asked: b, build: b, reason: 'asked for' };
  }
  const own = `onnxruntime-node's own build`;
  if (o.route === 'stock') return { asked: 'auto', build: DEFAULT_BUILD, reason: `the stock route is ${own}` };
  if (!isGpu(o.provider) && o.provider !== 'auto')
    return { asked: 'auto', build: DEFAULT_BUILD, reason: `the ${o.provider} provider runs ${own}` };
  const installed = probe.installed();
  if (!installed.some((b) => b !== DEFAULT_BUILD)) {
    return {
      asked: 'auto',
      build: DEFAULT_BUILD,
      reason: installed.length
        ? `${own}, the only build with its CUDA provider installed`
        : `${own}: no build has its CUDA provider installed (gpen-lab setup cuda)`,
    };
  }
  const r = buildForDriver(probe.driverCuda(), installed);
  if (r.build) return { asked: 'auto', build: r.build, reason: r.reason };
  return { asked: 'auto', build: DEFAULT_BUILD, reason: `${own}: ${r.reason}` };
}

/** A build asked for must be in place: its library, and for a GPU provider its CUDA provider and a driver that runs it. */
function checkInstalled(b: RuntimeBuild, provider: Provider | 'auto', probe: RuntimeProbe): void {
  // onnxruntime-node's own library is always there; its providers' absence is the session's diagnosis
  if (b === DEFAULT_BUILD) return;
  const spec = buildSpec(b);
  const details = { input: 'runtime', option: 'runtime', received: b };
  const setup = `Run \`gpen-lab setup cuda --runtime ${b}\``;
  if (!probe.hasLibrary(b)) {
    throw new GpenLabError(
      'E_RUNTIME_VERSION',
      `The runtime ${b} is not installed: its library ${buildLibraryPath(b)} is missing`,
      `${setup} (it fetches ONNX Runtime ${spec.ortVersion}'s library and its CUDA provider), or leave runtime out.`,
      details,
    );
  }
  if (!isGpu(provider)) return;
  if (!probe.installed().includes(b)) {
    throw new GpenLabError(
      'E_RUNTIME_VERSION',
      `The runtime ${b} has no CUDA provider installed: libonnxruntime_providers_cuda.so is missing from ${providerDir(b)}`,
      `${setup}, or use provider cpu with runtime ${b}.`,
      details,
    );
  }
  const driver = probe.driverCuda();
  // no answer from the driver: the session says why the GPU cannot be used
  if (driver === null) return;
  const ceiling = Math.floor(driver / 1000);
  if (ceiling < spec.cudaMajor) {
    const fits = buildForDriver(driver, probe.installed()).build;
    throw new GpenLabError(
      'E_RUNTIME_VERSION',
      `The runtime ${b} does not fit this machine: it needs CUDA ${spec.cudaMajor} (an NVIDIA driver ${spec.driverMin} or newer) and the driver runs CUDA ${ceiling} at most`,
      fits
        ? `Use runtime ${fits} (installed, and this driver runs it), or install an NVIDIA driver ${spec.driverMin} or newer.`
        : `Install an NVIDIA driver ${spec.driverMin} or newer, or run \`gpen-lab setup cuda\` (it installs the build this driver runs).`,
      details,
    );
  }
}
