// What runs when a user names nothing: the provider candidates of `auto`, the routes (fast, stock), the precisions, and
// the measured-best CUDA option set per workload. The table of valid combinations is written here once; the CLI, the
// pipeline, the service, the lab and docs/routes.md derive from it.
import { GpenLabError } from '../errors.js';
import { DEFAULT_BUILD, ROUTES, buildSpec, checkBuildCombination, type Route, type RuntimeBuild } from './builds.js';
import type { Provider } from './providers.js';
import { PROVIDERS, PROVIDER_SPECS } from './providers.js';
import type { RuntimeChoice } from './runtime-choice.js';

export const PROVIDER_CHOICES = ['auto', ...PROVIDERS] as const;
export type ProviderChoice = (typeof PROVIDER_CHOICES)[number];
/** The providers `auto` tries, in order: the first whose session is created runs. */
export const AUTO_ORDER: readonly Provider[] = ['cuda', 'webgpu', 'cpu'];

export { ROUTES };
export type { Route };
import { PRECISIONS } from '../onnx/precision.js';
import type { Precision as RoutePrecision } from '../onnx/precision.js';

export { PRECISIONS };
export type { RoutePrecision };

/** How a session is made: onnxruntime-node's own binding, or ONNX Runtime's C API through koffi (runtime/capi/). */
export type Binding = 'stock' | 'capi';

/**
 * The job's shape, which decides the CUDA option set: one image (a cold start: the set that is ready soonest), several
 * images (the set fastest per image once warm), a long-running service (the same, its slower start paid once).
 */
export const WORKLOADS = ['single', 'batch', 'service'] as const;
export type Workload = (typeof WORKLOADS)[number];

export interface Combination {
  provider: Provider;
  route: Route;
  precision: RoutePrecision;
  binding: Binding;
  /** Why this route runs this way on this provider. */
  note: string;
}

const FAST_IS_STOCK: Record<Exclude<Provider, 'cuda'>, string> = {
  cpu: 'fast is the stock binding: no C API set was measured faster on the CPU provider',
  webgpu: 'fast is the stock binding: the C API route drives the CUDA provider only',
  tensorrt: 'fast is the stock binding: the C API route drives the CUDA provider only',
};

/** Every valid provider x route x precision, and how it runs. */
export const COMBINATIONS: readonly Combination[] = PROVIDERS.flatMap((provider) =>
  ROUTES.flatMap((route) =>
    PRECISIONS.map((precision): Combination => {
      if (route === 'stock')
        return {
          provider,
          route,
          precision,
          binding: 'stock',
          note: "onnxruntime-node's binding: the baseline, provider options beyond deviceId cannot be passed",
        };
      if (provider === 'cuda')
        return {
          provider,
          route,
          precision,
          binding: 'capi',
          note: 'the C API route with the measured-best option set for the workload (CUDA_SETS)',
        };
      return { provider, route, precision, binding: 'stock', note: FAST_IS_STOCK[provider] };
    }),
  ),
);

/**
 * The combination, or a coded error for one outside the table, the runtime build's (builds.ts) or options it cannot
 * take. On a build other than onnxruntime-node's every route is the C API's.
 */
export function combination(
  provider: Provider,
  route: Route,
  precision: RoutePrecision,
  cudaOptions?: Record<string, string>,
  build: RuntimeBuild = DEFAULT_BUILD,
): Combination {
  checkBuildCombination(build, provider, route);
  const c = COMBINATIONS.find((x) => x.provider === provider && x.route === route && x.precision === precision);
  if (!c) {
    throw new GpenLabError(
      'E_ARGUMENT',
      `There is no ${route} route for ${provider} in ${precision}`,
      `Use one of these routes and precisions for ${provider}: ${COMBINATIONS.filter((x) => x.provider === provider)
        .map((x) => `${x.route} in ${x.precision}`)
        .join('; ')}.`,
      { input: 'route' },
    );
  }
  if (cudaOptions && Object.keys(cudaOptions).length > 0) {
    if (provider !== 'cuda') {
      throw new GpenLabError(
        'E_ARGUMENT',
        `cudaOptions were given but the provider is ${provider}`,
        'Use the cuda provider (or auto on a machine with CUDA) with cudaOptions, or leave cudaOptions out.',
        { input: 'cudaOptions', option: 'cudaOptions' },
      );
    }
    if (route === 'stock') {
      throw new GpenLabError(
        'E_ARGUMENT',
        "cudaOptions cannot be passed on the stock route: onnxruntime-node's binding passes only deviceId to the CUDA provider",
        'Use the fast route (it takes cudaOptions), or leave cudaOptions out.',
        { input: 'cudaOptions', option: 'cudaOptions' },
      );
    }
  }
  if (build !== DEFAULT_BUILD && c.binding !== 'capi') {
    return {
      ...c,
      binding: 'capi',
      note: `${build}: the C API route (the stock binding is onnxruntime-node's own build)`,
    };
  }
  return c;
}

/**
 * The providers the C API route drives: cpu and cuda. A build other than onnxruntime-node's runs only there, so
 * another provider with it is a coded error naming the option `runtime`.
 */
export function checkCapiProvider(provider: Provider, build: RuntimeBuild): 'cpu' | 'cuda' {
  if (provider === 'cpu' || provider === 'cuda') return provider;
  throw new GpenLabError(
    'E_ARGUMENT',
    build === DEFAULT_BUILD
      ? `The C API route drives the cpu and cuda providers, not ${provider}`
      : `The runtime ${build} runs through the C API route, which drives the cpu and cuda providers, not ${provider}`,
    `Use provider cuda or cpu with runtime ${build}, or runtime ${DEFAULT_BUILD} (onnxruntime-node's binding) for ${provider}.`,
    { input: 'runtime', option: 'runtime', received: build, provider },
  );
}

/**
 * The CUDA provider's option sets on the fast route (ONNX Runtime's names and gpen-lab's session keys, runtime/capi/options.ts):
 * `cold` is the soonest to a first image (cuDNN's heuristic search, the optimised graph cached in ONNX Runtime's format,
 * the first-use kernels primed on worker threads); `warm` the fastest per image (CUDA graphs, NHWC, the FusedAct
 * operator, cuDNN's exhaustive search, the arena grown as requested and split beyond 1 MiB unused). docs/routes.md.
 */
export const CUDA_SETS = {
  cold: { cudnn_conv_algo_search: 'HEURISTIC', graph_optimization_level: '0', prime: '1', graph_cache: 'ort' },
  warm: {
    enable_cuda_graph: '1',
    prefer_nhwc: '1',
    fused_act: '1',
    arena_extend_strategy: 'kSameAsRequested',
    'arena.max_dead_bytes_per_chunk': '1048576',
  },
} as const satisfies Record<string, Record<string, string>>;
export type CudaSet = keyof typeof CUDA_SETS;

/** Which set a workload takes: a cold start the cold set, several images and the service the warm one. */
export function cudaSetFor(workload: Workload): CudaSet {
  return workload === 'single' ? 'cold' : 'warm';
}

/**
 * The fast route's CUDA options for a workload. fused_act=1 only where gpen-lab builds the graph (a .pth, synthetic
 * weights): a ready-made ONNX file has no FusedAct nodes and keeps its own layout. A build without NHWC kernels
 * (ort1.19-cuda12) takes neither.
 */
export function fastCudaOptions(
  workload: Workload,
  builtHere: boolean,
  build: RuntimeBuild = DEFAULT_BUILD,
): Record<string, string> {
  const set: Record<string, string> = { ...CUDA_SETS[cudaSetFor(workload)] };
  if (!builtHere) delete set.fused_act;
  // a build without NHWC kernels: CUDA graphs and the arena settings stay, NHWC and FusedAct go
  if (!buildSpec(build).nhwc) {
    delete set.prefer_nhwc;
    delete set.fused_act;
  }
  return set;
}

/** Default precision: fp16 on GPU providers (agreement with fp32 >= 45 dB, measured), fp32 on the CPU. */
export function defaultPrecision(provider: Provider): RoutePrecision {
  return PROVIDER_SPECS[provider].gpu ? 'fp16' : 'fp32';
}

/**
 * Default faces per inference: on CUDA's C API route 32 (per face as fast as any larger batch; runs padded to one
 * size), but 1 for a cold start, whose primer has run the batch-1 shapes (the Solvay photo cold: 1.54 s against 1.89 s
 * at 32, H100); through the stock binding on CUDA and TensorRT, and on WebGPU, 8 (the binding's CUDA arena held 16 GB
 * for GPEN-512 fp32 at 8); on the CPU 4 (larger batches only hold more memory there).
 */
export function defaultBatch(provider: Provider, binding: Binding, workload: Workload = 'batch'): number {
  if (provider === 'cuda' && binding === 'capi') return workload === 'single' ? 1 : 32;
  return provider === 'cpu' ? 4 : 8;
}

/**
 * Where the face detector runs: on CUDA beside the warm set (its graphs on the C API route, NHWC), on the CPU for a
 * cold start (its CUDA session's first run would compete with GPEN's) and on every other provider.
 */
export function detectorPlacement(
  provider: Provider,
  binding: Binding,
  workload: Workload,
): { provider: Provider; capi: boolean } {
  if (provider === 'cuda' && workload !== 'single') return { provider: 'cuda', capi: binding === 'capi' };
  return { provider: 'cpu', capi: false };
}

export function parseChoice<T extends string>(values: readonly T[], v: unknown, flag: string): T {
  if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T;
  throw new GpenLabError(
    'E_ARGUMENT',
    `Expected one of ${values.join(', ')} for ${flag} but received ${JSON.stringify(v)}`,
    `Pass ${flag} ${values.join('|')}.`,
    { input: flag, received: v },
  );
}

/** A provider skipped by `auto`, and why. */
export interface Skipped {
  provider: Provider;
  reason: string;
}

/** What was asked for and what runs: one line on the console, a field of every RestoreResult and of /readyz. */
export interface RouteChoice {
  asked: { provider: ProviderChoice; route: Route; precision: RoutePrecision | null };
  provider: Provider;
  route: Route;
  binding: Binding;
  precision: RoutePrecision;
  workload: Workload;
  /** The CUDA set the fast route took (null elsewhere, or when --cuda-options replaced it). */
  set: CudaSet | null;
  /** The options the session was made with on the C API route (null on the stock binding). */
  options: Record<string, string> | null;
  batch: number;
  detector: { provider: Provider; capi: boolean };
  skipped: Skipped[];
  note: string;
  /** The runtime build asked for (or auto), the one that runs and why (runtime-choice.ts); set by every session chosen. */
  runtime?: RuntimeChoice;
}

/** The one console line: what was asked, what was chosen, why the others were skipped. */
export function describeChoice(c: RouteChoice): string {
  const asked = c.asked.provider === 'auto' ? 'auto' : c.asked.provider;
  const how =
    c.binding === 'capi' ? `C API${c.set ? `, ${c.set} set` : c.options ? ', --cuda-options' : ''}` : 'stock binding';
  const r = c.runtime;
  // a build chosen here is said with its reason where it matters: on a GPU, or where it is not onnxruntime-node's
  const gpu = c.provider === 'cuda' || c.provider === 'tensorrt';
  const why = r && r.asked === 'auto' && (gpu || r.build !== DEFAULT_BUILD);
  const build = r && !why ? `; runtime ${r.build}` : '';
  const head = `provider ${asked} -> ${c.provider} (${c.route} route: ${how}; ${c.precision}; batch ${c.batch}; detector on ${c.detector.provider}; ${c.workload}${build})`;
  const skipped = c.skipped.map((s) => `${s.provider} skipped: ${s.reason}`);
  return [head, ...(why ? [`runtime auto -> ${r.build}: ${r.reason}`] : []), ...skipped].join('; ');
}
