// ONNX Runtime's C API reached directly through koffi, in the libonnxruntime of the process's runtime build
// (builds.ts; onnxruntime-node's own by default): the route to what the stock binding does not pass to the CUDA
// provider (cudnn_conv_algo_search, prefer_nhwc, enable_cuda_graph, arena settings). OrtGetApiBase() ->
// GetApi(version) -> a table of function pointers, called by index (the order of OrtApi in onnxruntime_c_api.h,
// append-only across versions). Runs are synchronous.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import koffi from '../koffi.js';
import { GpenLabError, INTERNAL_FIX } from '../../errors.js';
import { mark } from '../marks.js';
import { DEFAULT_BUILD, buildLibraryPath, buildSpec, type BuildApiVersion, type RuntimeBuild } from '../builds.js';
import { bindingMapped, claimBuild, foreignBuild } from '../process-build.js';

/**
 * The OrtApi entries used, each as [index in OrtApi, the C API version that added it]. An entry keeps its index in
 * every later version; the versions follow onnxruntime_c_api.h ("\since Version 1.X", and for entries without one
 * the per-version table sizes onnxruntime_c_api.cc asserts).
 */
export const IX = {
  // version 1
  CreateStatus: [0, 1],
  GetErrorMessage: [2, 1],
  CreateEnv: [3, 1],
  CreateSession: [7, 1],
  CreateSessionFromArray: [8, 1],
  Run: [9, 1],
  CreateSessionOptions: [10, 1],
  SetOptimizedModelFilePath: [11, 1],
  EnableProfiling: [14, 1],
  DisableMemPattern: [17, 1],
  SetSessionGraphOptimizationLevel: [23, 1],
  SetIntraOpNumThreads: [24, 1],
  CreateCustomOpDomain: [26, 1],
  CustomOpDomain_Add: [27, 1],
  AddCustomOpDomain: [28, 1],
  CreateRunOptions: [39, 1],
  CreateTensorAsOrtValue: [48, 1],
  CreateTensorWithDataAsOrtValue: [49, 1],
  GetTensorMutableData: [51, 1],
  GetDimensionsCount: [61, 1],
  GetDimensions: [62, 1],
  GetTensorTypeAndShape: [65, 1],
  CreateMemoryInfo: [68, 1],
  CreateCpuMemoryInfo: [69, 1],
  AllocatorFree: [76, 1],
  GetAllocatorWithDefaultOptions: [78, 1],
  KernelContext_GetInput: [90, 1],
  KernelContext_GetOutput: [91, 1],
  ReleaseEnv: [92, 1],
  ReleaseStatus: [93, 1],
  ReleaseMemoryInfo: [94, 1],
  ReleaseSession: [95, 1],
  ReleaseValue: [96, 1],
  ReleaseRunOptions: [97, 1],
  ReleaseTensorTypeAndShapeInfo: [99, 1],
  ReleaseSessionOptions: [100, 1],
  // versions 2 to 11
  SessionEndProfiling: [110, 2],
  AddSessionConfigEntry: [130, 5],
  CreateAllocator: [131, 5],
  ReleaseAllocator: [132, 5],
  RunWithBinding: [133, 5],
  CreateIoBinding: [134, 5],
  ReleaseIoBinding: [135, 5],
  BindInput: [136, 5],
  BindOutput: [137, 5],
  ReleaseArenaCfg: [157, 6],
  CreateArenaCfgV2: [164, 8],
  AddRunConfigEntry: [165, 8],
  UnregisterAllocator: [177, 9],
  KernelContext_GetGPUComputeStream: [193, 10],
  SessionOptionsAppendExecutionProvider_CUDA_V2: [204, 11],
  CreateCUDAProviderOptions: [205, 11],
  UpdateCUDAProviderOptions: [206, 11],
  ReleaseCUDAProviderOptions: [208, 11],
  // later versions
  CreateAndRegisterAllocatorV2: [259, 16],
  GetKeyValuePairs: [298, 22],
  ReleaseKeyValuePairs: [300, 22],
  AllocatorGetStats: [319, 23],
} as const satisfies Record<string, readonly [index: number, since: number]>;

export type ApiName = keyof typeof IX;

/** The pointers read from the table at most: one past the highest index used. */
export const TABLE = 320;

/** The entries used that C API version `version` does not have, in table order. */
export function entriesBeyond(version: number): ApiName[] {
  return (Object.keys(IX) as ApiName[]).filter((n) => IX[n][1] > version).sort((x, y) => IX[x][0] - IX[y][0]);
}

/** ONNX tensor element types used here. */
export const FLOAT = 1;
export const UINT8 = 2;

/** A decoded function pointer: callable, and `.async(...args, callback)` runs it on one of libuv's worker threads. */
export type Fn = ((...args: unknown[]) => unknown) & { async: (...args: unknown[]) => void };

/** Whether A > B, for the small whole numbers of C API versions. */
type Tuple<N extends number, T extends unknown[] = []> = T['length'] extends N ? T : Tuple<N, [...T, 0]>;
type Above<A extends number, B extends number> = Tuple<B> extends [...Tuple<A>, ...unknown[]] ? false : true;
/** The entries some build's C API lacks (added after its version): absent from `fns` there. */
type LateName = {
  [K in ApiName]: BuildApiVersion extends infer V extends number
    ? V extends number
      ? Above<(typeof IX)[K][1], V> extends true
        ? K
        : never
      : never
    : never;
}[ApiName];
export type Fns = Record<Exclude<ApiName, LateName>, Fn> & Partial<Record<LateName, Fn>>;

export interface Api {
  /** The entries of C API version `apiVersion`; those added later are absent (listed in `omitted`). */
  fns: Fns;
  /** ONNX Runtime's version, as the library says (GetVersionString). */
  version: string;
  build: RuntimeBuild;
  /** The C API version asked of GetApi: the build's. */
  apiVersion: number;
  /** The pointers read from the table: no index at or past it is decoded. */
  entries: number;
  /** The entries used elsewhere that this build's C API does not have, in table order. */
  omitted: ApiName[];
  /** koffi closes a library when its handle is collected: the table's pointers stay valid only while this is held. */
  library: unknown;
}

/** Each entry's C signature in koffi's syntax, `f` standing for its name. */
const PROTOS: Record<ApiName, string> = {
  GetErrorMessage: 'const char *f(void *status)',
  CreateEnv: 'void *f(int level, const char *logid, _Out_ void **env)',
  CreateSession: 'void *f(void *env, const char *path, void *options, _Out_ void **session)',
  CreateSessionFromArray: 'void *f(void *env, const void *data, size_t len, void *options, _Out_ void **session)',
  Run:
    'void *f(void *session, void *runOptions, const char **inNames, void **inputs, size_t nIn, ' +
    'const char **outNames, size_t nOut, _Inout_ void **outputs)',
  CreateSessionOptions: 'void *f(_Out_ void **options)',
  SetSessionGraphOptimizationLevel: 'void *f(void *options, int level)',
  SetIntraOpNumThreads: 'void *f(void *options, int n)',
  CreateTensorWithDataAsOrtValue:
    'void *f(void *info, void *data, size_t bytes, const int64_t *shape, size_t rank, ' +
    'int type, _Out_ void **value)',
  GetTensorMutableData: 'void *f(void *value, _Out_ void **data)',
  CreateCpuMemoryInfo: 'void *f(int allocator, int memType, _Out_ void **info)',
  ReleaseEnv: 'void f(void *p)',
  ReleaseStatus: 'void f(void *p)',
  ReleaseMemoryInfo: 'void f(void *p)',
  ReleaseSession: 'void f(void *p)',
  ReleaseValue: 'void f(void *p)',
  ReleaseSessionOptions: 'void f(void *p)',
  SessionOptionsAppendExecutionProvider_CUDA_V2: 'void *f(void *options, void *cudaOptions)',
  CreateCUDAProviderOptions: 'void *f(_Out_ void **cudaOptions)',
  UpdateCUDAProviderOptions: 'void *f(void *cudaOptions, const char **keys, const char **values, size_t n)',
  ReleaseCUDAProviderOptions: 'void f(void *p)',
  SetOptimizedModelFilePath: 'void *f(void *options, const char *path)',
  EnableProfiling: 'void *f(void *options, const char *prefix)',
  DisableMemPattern: 'void *f(void *options)',
  CreateRunOptions: 'void *f(_Out_ void **out)',
  CreateTensorAsOrtValue: 'void *f(void *allocator, const int64_t *shape, size_t rank, int type, _Out_ void **value)',
  CreateMemoryInfo: 'void *f(const char *name, int allocatorType, int id, int memType, _Out_ void **info)',
  AllocatorFree: 'void *f(void *allocator, void *p)',
  GetAllocatorWithDefaultOptions: 'void *f(_Out_ void **allocator)',
  ReleaseRunOptions: 'void f(void *p)',
  SessionEndProfiling: 'void *f(void *session, void *allocator, _Out_ void **file)',
  AddSessionConfigEntry: 'void *f(void *options, const char *key, const char *value)',
  CreateAllocator: 'void *f(void *session, void *info, _Out_ void **allocator)',
  ReleaseAllocator: 'void f(void *p)',
  RunWithBinding: 'void *f(void *session, void *runOptions, void *binding)',
  CreateIoBinding: 'void *f(void *session, _Out_ void **binding)',
  ReleaseIoBinding: 'void f(void *p)',
  BindInput: 'void *f(void *binding, const char *name, void *value)',
  BindOutput: 'void *f(void *binding, const char *name, void *value)',
  AddRunConfigEntry: 'void *f(void *runOptions, const char *key, const char *value)',
  ReleaseArenaCfg: 'void f(void *p)',
  CreateArenaCfgV2: 'void *f(const char **keys, const size_t *values, size_t n, _Out_ void **out)',
  UnregisterAllocator: 'void *f(void *env, void *info)',
  GetKeyValuePairs: 'void f(void *kvps, _Out_ void **keys, _Out_ void **values, _Out_ size_t *n)',
  ReleaseKeyValuePairs: 'void f(void *p)',
  AllocatorGetStats: 'void *f(void *allocator, _Out_ void **kvps)',
  CreateAndRegisterAllocatorV2:
    'void *f(void *env, const char *provider, void *info, void *arenaCfg, ' +
    'const char **keys, const char **values, size_t n)',
  CreateStatus: 'void *f(int code, const char *message)',
  CreateCustomOpDomain: 'void *f(const char *domain, _Out_ void **out)',
  CustomOpDomain_Add: 'void *f(void *domain, void *op)',
  AddCustomOpDomain: 'void *f(void *options, void *domain)',
  GetTensorTypeAndShape: 'void *f(void *value, _Out_ void **info)',
  GetDimensionsCount: 'void *f(void *info, _Out_ size_t *n)',
  GetDimensions: 'void *f(void *info, _Out_ int64_t *dims, size_t n)',
  KernelContext_GetInput: 'void *f(void *context, size_t index, _Out_ void **value)',
  KernelContext_GetOutput: 'void *f(void *context, size_t index, const int64_t *dims, size_t n, _Out_ void **value)',
  ReleaseTensorTypeAndShapeInfo: 'void f(void *p)',
  KernelContext_GetGPUComputeStream: 'void *f(void *context, _Out_ void **stream)',
};

let api: Api | null = null;
let env: unknown = null;

const require = createRequire(import.meta.url);

/** Whether onnxruntime-node's binding (which links its own libonnxruntime.so.1) is loaded in this process. */
function bindingLoaded(): boolean {
  return Object.keys(require.cache).some((k) => k.endsWith('onnxruntime_binding.node')) || bindingMapped();
}

/**
 * The C API's table of runtime build `build` (builds.ts), loaded once: without a build, the one loaded or claimed
 * (process-build.ts), else onnxruntime-node's own. A process runs one build; asking for another is a coded error.
 */
export function load(build?: RuntimeBuild): Api {
  if (api) {
    if (build && build !== api.build) {
      throw new GpenLabError(
        'E_RUNTIME_VERSION',
        `The runtime ${build} was asked for in a process that runs ${api.build}: a process runs one build`,
        `Run ${build} in a process of its own (a new gpen-lab command, or a child process).`,
        { input: 'runtime', option: 'runtime', received: build },
      );
    }
    return api;
  }
  const b = build ?? foreignBuild() ?? DEFAULT_BUILD;
  const spec = buildSpec(b);
  const file = buildLibraryPath(b);
  if (b !== DEFAULT_BUILD && bindingLoaded()) {
    throw new GpenLabError(
      'E_RUNTIME_VERSION',
      `The runtime ${b} was asked for in a process that loaded onnxruntime-node's binding (${buildSpec(DEFAULT_BUILD).ortVersion}): a process runs one build`,
      `Run ${b} in a process of its own, one that does not use the stock route.`,
      { input: 'runtime', option: 'runtime', received: b },
    );
  }
  claimBuild(b);
  if (spec.library.from === 'npm-pack' && !existsSync(file)) {
    throw new GpenLabError(
      'E_RUNTIME_VERSION',
      `The runtime ${b}'s library is not in ${file}`,
      `Fetch it first: ensureBuildLibrary('${b}') (src/runtime/build-fetch.ts) takes it from npm pack ${spec.library.spec}.`,
      { input: 'runtime', option: 'runtime', file },
    );
  }
  mark('capi_load_started');
  const lib = koffi.load(file);
  const ApiBase = koffi.struct('gpenOrtApiBase', { GetApi: 'void *', GetVersionString: 'void *' });
  const base = lib.func('OrtGetApiBase', koffi.pointer(ApiBase), [])() as unknown;
  const bs = koffi.decode(base, ApiBase) as { GetApi: unknown; GetVersionString: unknown };
  const getApi = koffi.proto('void *gpenGetApi(uint32_t version)');
  const getVersion = koffi.proto('const char *gpenGetVersionString()');
  const version = koffi.call(bs.GetVersionString, getVersion) as string;
  const table = koffi.call(bs.GetApi, getApi, spec.apiVersion) as unknown;
  if (!table) {
    throw new GpenLabError(
      'E_RUNTIME_VERSION',
      `${file} (ONNX Runtime ${version}) does not offer C API version ${spec.apiVersion}, which the runtime ${b} offers`,
      spec.library.from === 'onnxruntime-node'
        ? `Use onnxruntime-node ${spec.ortVersion}.`
        : `Remove ${file} and fetch it again (ensureBuildLibrary('${b}')).`,
      { input: 'runtime', option: 'runtime', file },
    );
  }
  // the table holds tableEntries pointers: none past it is read, nor any entry added after the version asked
  const entries = Math.min(spec.tableEntries, TABLE);
  const ptrs = koffi.decode(table, koffi.array('void *', entries)) as unknown[];
  const omitted = entriesBeyond(spec.apiVersion);
  const fns: Partial<Record<ApiName, Fn>> = {};
  for (const [name, [i]] of Object.entries(IX) as [ApiName, readonly [number, number]][]) {
    if (omitted.includes(name)) continue;
    if (i >= entries) {
      throw new GpenLabError('E_INTERNAL', `${name} (index ${i}) lies past the ${entries} entries read`, INTERNAL_FIX);
    }
    const proto = koffi.proto(PROTOS[name].replace(/\bf\(/, `gpenOrt${name}(`));
    fns[name] = koffi.decode(ptrs[i], proto) as Fn;
  }
  api = { fns: fns as Fns, version, build: b, apiVersion: spec.apiVersion, entries, omitted, library: lib };
  mark('capi_loaded');
  return api;
}

/**
 * The C API with the process's environment created (ONNX Runtime's logger, which the providers' loading needs); one
 * environment, of the one build loaded.
 */
export function envLoaded(build?: RuntimeBuild): Api {
  const a = load(build);
  if (!env) {
    const out: unknown[] = [null];
    check(a, a.fns.CreateEnv(3, 'gpen-lab', out), 'CreateEnv');
    env = out[0];
  }
  return a;
}

/** The process's OrtEnv: null until envLoaded() made it. */
export function ortEnv(): unknown {
  return env;
}

let cudaProvider: Promise<void> | null = null;

/**
 * ONNX Runtime loads its CUDA provider library (and the CUDA libraries it links) at the process's first
 * UpdateCUDAProviderOptions: called once on a worker thread (koffi's async call), so that the calling thread goes on
 * meanwhile; later calls find it loaded. A failure is the error sessionOptions() (options.ts) would have thrown.
 */
export function loadCudaProvider(a: Api): Promise<void> {
  cudaProvider ??= new Promise<void>((resolve, reject) => {
    const out: unknown[] = [null];
    check(a, a.fns.CreateCUDAProviderOptions(out), 'CreateCUDAProviderOptions');
    const cudaOpts = out[0];
    a.fns.UpdateCUDAProviderOptions.async(cudaOpts, ['device_id'], ['0'], 1, (err: unknown, status: unknown) => {
      try {
        if (err) throw err instanceof Error ? err : new Error(String(err));
        check(a, status, 'UpdateCUDAProviderOptions');
        resolve();
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      } finally {
        a.fns.ReleaseCUDAProviderOptions(cudaOpts);
      }
    });
  }).catch((e: unknown) => {
    cudaProvider = null; // tried again by the next session (the provider may be installed by then)
    throw e;
  });
  return cudaProvider;
}

/** Throws the message of a non-null OrtStatus (and releases it). */
export function check(a: Api, status: unknown, what: string): void {
  if (!status) return;
  const msg = a.fns.GetErrorMessage(status) as string;
  a.fns.ReleaseStatus(status);
  throw new GpenLabError(
    'E_SESSION',
    `ONNX Runtime C API: ${what} failed: ${msg}`,
    'Run `gpen-lab doctor` for the provider, or use the stock session (without --capi).',
  );
}
