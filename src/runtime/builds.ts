// The closed set of ONNX Runtime builds gpen-lab runs, written once: where each one's libonnxruntime comes from, the
// C API version it offers, what it needs of the machine (CUDA, cuDNN, the driver) and which providers and routes it
// supports. A process runs one build: both libraries are named libonnxruntime.so.1 (their SONAME), and the second
// loaded would resolve to the first.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { GpenLabError, checkOneOf } from '../errors.js';
import { cacheDir } from '../io/cache.js';
import type { Provider } from './providers.js';
import { ortBinDir } from './providers.js';

export const RUNTIME_BUILDS = ['ort1.29-cuda13', 'ort1.19-cuda12'] as const;
export type RuntimeBuild = (typeof RUNTIME_BUILDS)[number];
/** The build of onnxruntime-node's own package: the one a process loads when none is named. */
export const DEFAULT_BUILD: RuntimeBuild = 'ort1.29-cuda13';

/** How a session is made: fast (gpen-lab's choice per provider), stock (onnxruntime-node's binding). */
export const ROUTES = ['fast', 'stock'] as const;
export type Route = (typeof ROUTES)[number];

/** Where a build's libonnxruntime comes from. */
export type BuildLibrary =
  | { from: 'onnxruntime-node'; file: string }
  | {
      /** Fetched with `npm pack` (which runs no install script) into the cache; never a dependency. */
      from: 'npm-pack';
      spec: string;
      /** The file's path inside the package tarball. */
      member: string;
      file: string;
      sha256: string;
      bytes: number;
    };

export interface BuildSpec {
  /** ONNX Runtime's version, as the library's GetVersionString answers. */
  ortVersion: string;
  library: BuildLibrary;
  /** The npm package carrying its CUDA and TensorRT providers (`gpen-lab setup cuda`). */
  providerPackage: { name: string; version: string };
  /** The highest C API version the library offers (GetApi answers null above it), which the C API route asks. */
  apiVersion: number;
  /**
   * OrtApi entries known to be in its table (onnxruntime_c_api.cc's asserted size for its C API version; for 1.29
   * only that of version 24, 412): the C API route reads no pointer at or past it.
   */
  tableEntries: number;
  cudaMajor: number;
  cudnnMajor: number;
  /** The oldest NVIDIA driver (major) that runs its CUDA major. */
  driverMin: number;
  providers: readonly Provider[];
  routes: readonly Route[];
  /**
   * Whether its CUDA provider has NHWC kernels (prefer_nhwc=1, and the FusedAct operator, which works on NHWC):
   * 0.2.1's was built without, and its session creation refuses prefer_nhwc=1 (measured on an H100).
   */
  nhwc: boolean;
}

const PROVIDER_PACKAGE = 'com.github.asus4.onnxruntime.linux-x64-gpu';

export const BUILD_SPECS = {
  'ort1.29-cuda13': {
    ortVersion: '1.29.0',
    library: { from: 'onnxruntime-node', file: 'libonnxruntime.so.1' },
    providerPackage: { name: PROVIDER_PACKAGE, version: '0.4.9' },
    apiVersion: 29,
    tableEntries: 412,
    cudaMajor: 13,
    cudnnMajor: 9,
    driverMin: 580,
    providers: ['cpu', 'cuda', 'tensorrt', 'webgpu'],
    routes: ['fast', 'stock'],
    nhwc: true,
  },
  'ort1.19-cuda12': {
    ortVersion: '1.19.2',
    library: {
      from: 'npm-pack',
      spec: 'onnxruntime-node@1.19.2',
      member: 'package/bin/napi-v3/linux/x64/libonnxruntime.so.1.19.2',
      file: 'libonnxruntime.so.1.19.2',
      sha256: 'b0889fdeb0759987052b28c66c6a0b170426d0d70bfee84daad020f49d594043',
      bytes: 19243808,
    },
    providerPackage: { name: PROVIDER_PACKAGE, version: '0.2.1' },
    apiVersion: 19,
    // version 18's table ends at index 279 and version 19 adds none
    tableEntries: 280,
    cudaMajor: 12,
    cudnnMajor: 9,
    driverMin: 525,
    providers: ['cpu', 'cuda', 'tensorrt'],
    routes: ['fast'],
    nhwc: false,
  },
} as const satisfies Record<RuntimeBuild, BuildSpec>;

export function buildSpec(b: RuntimeBuild): BuildSpec {
  return BUILD_SPECS[b];
}

/** The C API versions of the builds: an entry added after the lowest is absent on some build. */
export type BuildApiVersion = (typeof BUILD_SPECS)[RuntimeBuild]['apiVersion'];

export function parseRuntimeBuild(v: unknown, input = 'runtime'): RuntimeBuild {
  return checkOneOf(
    input,
    v,
    RUNTIME_BUILDS,
    `Pass ${input} ${RUNTIME_BUILDS.join('|')} (docs/routes.md, Runtime builds).`,
  );
}

/** The folder a fetched build's library is kept in: `<cache>/runtimes/<build>` (its providers go beside it). */
export function buildDir(b: RuntimeBuild, cache = cacheDir()): string {
  return path.join(cache, 'runtimes', b);
}

/** Where the build's libonnxruntime is (onnxruntime-node's own, or the fetched file in the cache). */
export function buildLibraryPath(b: RuntimeBuild, cache = cacheDir()): string {
  const lib = buildSpec(b).library;
  return lib.from === 'onnxruntime-node' ? path.join(ortBinDir(), lib.file) : path.join(buildDir(b, cache), lib.file);
}

/**
 * A coded E_ARGUMENT (naming the option `runtime`) for a provider or route the build does not have: the stock binding
 * and WebGPU are onnxruntime-node 1.29.0's alone.
 */
export function checkBuildCombination(build: RuntimeBuild, provider: Provider, route: Route): void {
  const spec = buildSpec(build);
  const details = { input: 'runtime', option: 'runtime', received: build };
  const has = `it supports the providers ${spec.providers.join(', ')} on the ${spec.routes.join(' and ')} route${spec.routes.length > 1 ? 's' : ''}`;
  const withIt = RUNTIME_BUILDS.filter((b) => {
    const s = buildSpec(b);
    return s.providers.includes(provider) && s.routes.includes(route);
  });
  const elsewhere = withIt.length ? `, or runtime ${withIt.join('|')} for ${provider} on the ${route} route` : '';
  if (!spec.providers.includes(provider)) {
    throw new GpenLabError(
      'E_ARGUMENT',
      `The runtime ${build} has no ${provider} provider: ${has}`,
      `Use one of ${spec.providers.join(', ')} with runtime ${build}${elsewhere}.`,
      details,
    );
  }
  if (!spec.routes.includes(route)) {
    throw new GpenLabError(
      'E_ARGUMENT',
      `The runtime ${build} has no ${route} route (onnxruntime-node's binding is ${buildSpec(DEFAULT_BUILD).ortVersion}'s): ${has}`,
      `Use route ${spec.routes.join('|')} with runtime ${build}${elsewhere}.`,
      details,
    );
  }
}

/** Where a build's CUDA and TensorRT providers live: beside onnxruntime-node's library for 1.29, else its own folder. */
export function providerDir(b: RuntimeBuild, cache = cacheDir()): string {
  return buildSpec(b).library.from === 'onnxruntime-node' ? ortBinDir() : buildDir(b, cache);
}

/** The builds whose library and CUDA provider are in place (`gpen-lab setup cuda` installs them), in set order. */
export function installedBuilds(cache = cacheDir()): RuntimeBuild[] {
  return RUNTIME_BUILDS.filter(
    (b) =>
      existsSync(buildLibraryPath(b, cache)) &&
      existsSync(path.join(providerDir(b, cache), 'libonnxruntime_providers_cuda.so')),
  );
}

/**
 * The build a GPU run takes without `runtime`: the newest installed one whose CUDA major the driver runs
 * (`driverCuda`: cuDriverGetVersion's value, 13000 for CUDA 13.0), else null with why.
 */
export function buildForDriver(
  driverCuda: number | null,
  installed: readonly RuntimeBuild[],
): { build: RuntimeBuild; reason: string } | { build: null; reason: string } {
  if (installed.length === 0)
    return { build: null, reason: 'no build has its CUDA provider installed (gpen-lab setup cuda)' };
  if (driverCuda === null) return { build: null, reason: 'no NVIDIA driver answers here' };
  const ceiling = Math.floor(driverCuda / 1000);
  const fits = installed.filter((b) => buildSpec(b).cudaMajor <= ceiling);
  if (fits.length === 0) {
    return {
      build: null,
      reason: `the driver runs CUDA ${ceiling} at most, and the installed builds need ${installed.map((b) => `${b}: CUDA ${buildSpec(b).cudaMajor}`).join(', ')}`,
    };
  }
  const best = fits.reduce((x, y) => (buildSpec(y).cudaMajor > buildSpec(x).cudaMajor ? y : x));
  return { build: best, reason: `the driver runs CUDA ${ceiling}; ${best} needs CUDA ${buildSpec(best).cudaMajor}` };
}
