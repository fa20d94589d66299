// ONNX Runtime's C API reached directly through koffi, in the same libonnxruntime.so.1 that onnxruntime-node loads:
// the route to what the stock binding does not pass to the CUDA provider (cudnn_conv_algo_search, prefer_nhwc,
// enable_cuda_graph, arena settings). OrtGetApiBase() -> GetApi(version) -> a table of function pointers, called by
// index (the order of OrtApi in onnxruntime_c_api.h, append-only across versions). Runs are synchronous.
import { statSync } from 'node:fs';
import path from 'node:path';
import koffi, { loadFunctions } from './koffi.js';
import { GpenLabError } from '../errors.js';
import { mark } from './marks.js';
import { ortBinDir } from './providers.js';
import { gpenOpsDomain } from './gpen-ops.js';

/** Indices in OrtApi (onnxruntime_c_api.h, stable since the version each entry was added). */
const IX = {
  GetErrorMessage: 2, CreateEnv: 3, CreateSession: 7, CreateSessionFromArray: 8, Run: 9, CreateSessionOptions: 10,
  SetSessionGraphOptimizationLevel: 23, SetIntraOpNumThreads: 24, CreateTensorWithDataAsOrtValue: 49,
  GetTensorMutableData: 51, CreateCpuMemoryInfo: 69, ReleaseEnv: 92, ReleaseStatus: 93, ReleaseMemoryInfo: 94,
  ReleaseSession: 95, ReleaseValue: 96, ReleaseSessionOptions: 100,
  SessionOptionsAppendExecutionProvider_CUDA_V2: 204, CreateCUDAProviderOptions: 205, UpdateCUDAProviderOptions: 206,
  ReleaseCUDAProviderOptions: 208,
  SetOptimizedModelFilePath: 11, EnableProfiling: 14, DisableMemPattern: 17, CreateRunOptions: 39, CreateTensorAsOrtValue: 48,
  CreateMemoryInfo: 68, AllocatorFree: 76, GetAllocatorWithDefaultOptions: 78, ReleaseRunOptions: 97, SessionEndProfiling: 110,
  AddSessionConfigEntry: 130, CreateAllocator: 131, ReleaseAllocator: 132, RunWithBinding: 133, CreateIoBinding: 134,
  ReleaseIoBinding: 135, BindInput: 136, BindOutput: 137, AddRunConfigEntry: 165,
  ReleaseArenaCfg: 157, CreateArenaCfgV2: 164, UnregisterAllocator: 177, CreateAndRegisterAllocatorV2: 259,
  GetKeyValuePairs: 298, ReleaseKeyValuePairs: 300, AllocatorGetStats: 319,
  // custom operators (gpen-ops.ts)
  CreateStatus: 0, CreateCustomOpDomain: 26, CustomOpDomain_Add: 27, AddCustomOpDomain: 28, GetTensorTypeAndShape: 65, GetDimensionsCount: 61,
  GetDimensions: 62, KernelContext_GetInput: 90, KernelContext_GetOutput: 91, ReleaseTensorTypeAndShapeInfo: 99,
  KernelContext_GetGPUComputeStream: 193,
} as const;
const API_VERSION = 14;
const TABLE = 320;

/** A decoded function pointer: callable, and `.async(...args, callback)` runs it on one of libuv's worker threads. */
type Fn = ((...args: unknown[]) => unknown) & { async: (...args: unknown[]) => void };
export interface Api {
  fns: Record<keyof typeof IX, Fn>;
  version: string;
  /** koffi closes a library when its handle is collected: the table's pointers stay valid only while this is held. */
  library: unknown;
}

let api: Api | null = null;
let env: unknown = null;

/** The C API's table, loaded once. */
export function load(): Api {
  if (api) return api;
  mark('capi_load_started');
  const lib = koffi.load(path.join(ortBinDir(), 'libonnxruntime.so.1'));
  const ApiBase = koffi.struct('gpenOrtApiBase', { GetApi: 'void *', GetVersionString: 'void *' });
  const base = lib.func('OrtGetApiBase', koffi.pointer(ApiBase), [])() as unknown;
  const b = koffi.decode(base, ApiBase) as { GetApi: unknown; GetVersionString: unknown };
  const getApi = koffi.proto('void *gpenGetApi(uint32_t version)');
  const getVersion = koffi.proto('const char *gpenGetVersionString()');
  const version = koffi.call(b.GetVersionString, getVersion) as string;
  const table = koffi.call(b.GetApi, getApi, API_VERSION) as unknown;
  if (!table) throw new GpenLabError('E_RUNTIME_VERSION', `libonnxruntime.so.1 ${version} does not offer C API version ${API_VERSION}`, 'Use onnxruntime-node 1.29.0.');
  const ptrs = koffi.decode(table, koffi.array('void *', TABLE)) as unknown[];
  const protos: Record<keyof typeof IX, string> = {
    GetErrorMessage: 'const char *f(void *status)',
    CreateEnv: 'void *f(int level, const char *logid, _Out_ void **env)',
    CreateSession: 'void *f(void *env, const char *path, void *options, _Out_ void **session)',
    CreateSessionFromArray: 'void *f(void *env, const void *data, size_t len, void *options, _Out_ void **session)',
    Run: 'void *f(void *session, void *runOptions, const char **inNames, void **inputs, size_t nIn, const char **outNames, size_t nOut, _Inout_ void **outputs)',
    CreateSessionOptions: 'void *f(_Out_ void **options)',
    SetSessionGraphOptimizationLevel: 'void *f(void *options, int level)',
    SetIntraOpNumThreads: 'void *f(void *options, int n)',
    CreateTensorWithDataAsOrtValue: 'void *f(void *info, void *data, size_t bytes, const int64_t *shape, size_t rank, int type, _Out_ void **value)',
    GetTensorMutableData: 'void *f(void *value, _Out_ void **data)',
    CreateCpuMemoryInfo: 'void *f(int allocator, int memType, _Out_ void **info)',
    ReleaseEnv: 'void f(void *p)', ReleaseStatus: 'void f(void *p)', ReleaseMemoryInfo: 'void f(void *p)',
    ReleaseSession: 'void f(void *p)', ReleaseValue: 'void f(void *p)', ReleaseSessionOptions: 'void f(void *p)',
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
    CreateAndRegisterAllocatorV2: 'void *f(void *env, const char *provider, void *info, void *arenaCfg, const char **keys, const char **values, size_t n)',
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
  const fns = {} as Record<keyof typeof IX, Fn>;
  for (const [name, i] of Object.entries(IX) as [keyof typeof IX, number][]) {
    const proto = koffi.proto(protos[name].replace(/\bf\(/, `gpenOrt${name}(`));
    const ptr = ptrs[i];
    fns[name] = koffi.decode(ptr, proto) as Fn;
  }
  api = { fns, version, library: lib };
  mark('capi_loaded');
  return api;
}

/** Throws the message of a non-null OrtStatus (and releases it). */
/** The C API with the process's environment created (ONNX Runtime's logger, which the providers' loading needs). */
function envLoaded(): Api {
  const a = load();
  if (!env) {
    const out: unknown[] = [null];
    check(a, a.fns.CreateEnv(3, 'gpen-lab', out), 'CreateEnv');
    env = out[0];
  }
  return a;
}

let cudaProvider: Promise<void> | null = null;

/**
 * ONNX Runtime loads its CUDA provider library (and the CUDA libraries it links, ~150 ms on a GPU host) at the
 * process's first UpdateCUDAProviderOptions: called once on a worker thread (koffi's async call), so that the calling
 * thread goes on meanwhile; later calls find it loaded. A failure is the error options() would have thrown.
 */
function loadCudaProvider(a: Api): Promise<void> {
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

export function check(a: Api, status: unknown, what: string): void {
  if (!status) return;
  const msg = a.fns.GetErrorMessage(status) as string;
  a.fns.ReleaseStatus(status);
  throw new GpenLabError('E_SESSION', `ONNX Runtime C API: ${what} failed: ${msg}`, 'Run `gpen-lab doctor` for the provider, or use the stock session (without --capi).');
}

export interface CapiOptions {
  provider: 'cpu' | 'cuda';
  /** CUDA provider options by their ONNX Runtime names (device_id, cudnn_conv_algo_search, prefer_nhwc, ...). */
  cuda?: Record<string, string>;
  intraOpNumThreads?: number;
  /** 0 disabled, 1 basic, 2 extended, 99 all (default). */
  graphOptimizationLevel?: 0 | 1 | 2 | 99;
  /** Session config entries (onnxruntime_session_options_config_keys.h), e.g. session.intra_op.allow_spinning. */
  config?: Record<string, string>;
  /** Write the optimised graph here while the session is created (a cache for later cold starts). */
  saveOptimizedTo?: string;
  /** Profile runs into files starting with this prefix (read back by endProfiling). */
  profilePrefix?: string;
  /** ONNX Runtime's memory patterns (one planned block for the activations; default on). */
  memPattern?: boolean;
  /** The CUDA arena's configuration (OrtArenaCfg keys: max_dead_bytes_per_chunk, initial_chunk_size_bytes, ...). */
  arena?: Record<string, number>;
  /** Register gpen-lab's operators (gpen-ops.ts: FusedAct) for graphs built with BuildOptions.fusedAct. */
  gpenOps?: boolean;
}

/** The keys CreateArenaCfgV2 takes (onnxruntime_c_api.h). */
export const ARENA_KEYS = ['max_mem', 'arena_extend_strategy', 'initial_chunk_size_bytes', 'max_dead_bytes_per_chunk', 'initial_growth_chunk_size_bytes', 'max_power_of_two_extend_bytes',
  // CUDA's own stream-ordered pool (cudaMallocFromPoolAsync) in place of the BFC arena (ONNX Runtime 1.23+; not with CUDA graphs)
  'use_cuda_mempool', 'cuda_mempool_release_threshold', 'cuda_mempool_bytes_to_keep_on_shrink'] as const;

/** Creates an OrtArenaCfg (release it with ReleaseArenaCfg); ONNX Runtime's refusal is a coded error. */
function arenaCfg(a: Api, arena: Record<string, number>): unknown {
  const keys = Object.keys(arena);
  const values = BigUint64Array.from(keys.map((k) => BigInt(arena[k])));
  const out: unknown[] = [null];
  check(a, a.fns.CreateArenaCfgV2(keys, values, keys.length, out), `CreateArenaCfgV2(${keys.join(', ')})`);
  return out[0];
}

/** The allocator this process registered with the environment for an arena configuration (one per device). */
let registered: { provider: 'cpu' | 'cuda'; key: string; info: unknown } | null = null;

/**
 * Registers an arena allocator with this configuration in the environment (CreateAndRegisterAllocatorV2), replacing
 * the one registered before; sessions created with session.use_env_allocators=1 then allocate from it. On CUDA it is
 * made from the same provider options (device, gpu_mem_limit, arena_extend_strategy) as the session's provider.
 */
function registerArena(a: Api, provider: 'cpu' | 'cuda', providerOptions: Record<string, string>, arena: Record<string, number>): void {
  const key = JSON.stringify([provider, providerOptions, arena]);
  if (registered?.key === key) return;
  const out: unknown[] = [null];
  if (registered) {
    check(a, a.fns.UnregisterAllocator(env, registered.info), 'UnregisterAllocator');
    a.fns.ReleaseMemoryInfo(registered.info);
    registered = null;
  }
  // OrtArenaAllocator (1) for OrtMemTypeDefault (0) on the provider's device
  check(a, a.fns.CreateMemoryInfo(provider === 'cuda' ? 'Cuda' : 'Cpu', 1, Number(providerOptions.device_id ?? 0), 0, out), 'CreateMemoryInfo');
  const info = out[0];
  // ONNX Runtime builds the allocator from the arena configuration alone: its extend strategy and limit default to
  // power-of-two growth without a limit, whatever the provider options say, so the provider's own are carried over
  const fromProvider: Record<string, number> = {};
  const strategy = providerOptions.arena_extend_strategy;
  if (strategy !== undefined) fromProvider.arena_extend_strategy = strategy === 'kSameAsRequested' || strategy === '1' ? 1 : 0;
  if (providerOptions.gpu_mem_limit !== undefined) fromProvider.max_mem = Number(providerOptions.gpu_mem_limit);
  const cfg = arenaCfg(a, { ...fromProvider, ...arena });
  try {
    const entries = Object.entries(providerOptions);
    check(a, a.fns.CreateAndRegisterAllocatorV2(env, provider === 'cuda' ? 'CUDAExecutionProvider' : 'CPUExecutionProvider', info, cfg, entries.map((e) => e[0]), entries.map((e) => e[1]), entries.length),
      `CreateAndRegisterAllocatorV2(${provider}, ${Object.keys(arena).join(', ')})`);
  } catch (e) {
    a.fns.ReleaseMemoryInfo(info);
    throw e;
  } finally {
    a.fns.ReleaseArenaCfg(cfg);
  }
  registered = { provider, key, info };
}

/** Checks an arena configuration with ONNX Runtime itself (on any machine: it needs no GPU). */
export function checkArenaConfig(arena: Record<string, number>): void {
  const a = load();
  a.fns.ReleaseArenaCfg(arenaCfg(a, arena));
}

/** Keys of a CUDA option set that are session options of gpen-lab's, not CUDA provider options. */
export const SESSION_KEYS = {
  mem_pattern: 'ONNX Runtime memory patterns, 0 or 1',
  graph_optimization_level: 'ONNX Runtime graph optimisations: 0 disabled, 1 basic, 2 extended, 99 all',
  graph_cache: 'ort: cache the optimised graph of an ONNX file in ONNX Runtime\'s own format and load it in later sessions from memory, optimisations off, its weights used in place (no protobuf to parse: the session is created sooner); 0: off',
  prime: '1: create and run a weightless copy of the graph on worker threads beside the session (a cold start\'s per-process first-run costs); 0: off',
  fused_act: '1 (with prefer_nhwc=1): the graph built with gpen-lab\'s FusedAct operator, one GPU kernel for each styled convolution\'s concatenation, bias, leaky ReLU and next modulation (C API route only)',
  'arena.*': 'the CUDA arena (OrtArenaCfg): arena.max_dead_bytes_per_chunk, arena.initial_chunk_size_bytes, arena.arena_extend_strategy (0 power of two, 1 as requested), arena.max_mem, ...; arena.use_cuda_mempool=1: CUDA\'s stream-ordered pool instead of the arena (not with enable_cuda_graph), arena.cuda_mempool_release_threshold: the bytes it keeps at a synchronisation',
  'session.*': 'any other key with a dot: an ONNX Runtime session config entry (e.g. session.use_device_allocator_for_initializers=1)',
} as const;

const LEVELS = [0, 1, 2, 99] as const;

/** Splits gpen-lab's session keys (SESSION_KEYS) from the CUDA provider options, checking them. */
export function splitCudaOptions(all: Record<string, string>): { cuda: Record<string, string>; memPattern?: boolean; graphOptimizationLevel?: 0 | 1 | 2 | 99; config?: Record<string, string>; graphCache?: false | 'ort'; prime?: number; arena?: Record<string, number>; fusedAct?: boolean } {
  const { mem_pattern: mp, graph_optimization_level: gl, graph_cache: gc, prime: pr, fused_act: fa, ...rest } = all;
  // arena.<key>=<bytes>: the CUDA arena's configuration; other keys with a dot are session config entries
  const arenaEntries = Object.entries(rest).filter(([k]) => k.startsWith('arena.'));
  const arena: Record<string, number> = {};
  for (const [k, v] of arenaEntries) {
    const key = k.slice('arena.'.length);
    if (!(ARENA_KEYS as readonly string[]).includes(key) || !/^\d+$/.test(v)) {
      throw new GpenLabError('E_ARGUMENT', `Expected ${k} to be one of arena.${ARENA_KEYS.join(', arena.')} with a whole number of bytes, but received "${k}=${v}"`,
        `Pass e.g. arena.max_dead_bytes_per_chunk=1048576 (${SESSION_KEYS['arena.*']}).`, { input: k });
    }
    arena[key] = Number(v);
  }
  const cuda = Object.fromEntries(Object.entries(rest).filter(([k]) => !k.includes('.')));
  const config = Object.fromEntries(Object.entries(rest).filter(([k]) => k.includes('.') && !k.startsWith('arena.')));
  let level: 0 | 1 | 2 | 99 | undefined;
  if (gl !== undefined) {
    level = LEVELS.find((l) => String(l) === gl);
    if (level === undefined) throw new GpenLabError('E_ARGUMENT', `Expected graph_optimization_level to be one of ${LEVELS.join(', ')} but received "${gl}"`, `Pass graph_optimization_level=${LEVELS.join('|')} (${SESSION_KEYS.graph_optimization_level}).`, { input: 'graph_optimization_level' });
  }
  if (gc !== undefined && !['0', 'ort'].includes(gc)) throw new GpenLabError('E_ARGUMENT', `Expected graph_cache to be 0 or ort but received "${gc}"`, `Pass graph_cache=ort (${SESSION_KEYS.graph_cache}) or leave it out.`, { input: 'graph_cache' });
  if (fa !== undefined && !['0', '1'].includes(fa)) throw new GpenLabError('E_ARGUMENT', `Expected fused_act to be 0 or 1 but received "${fa}"`, `Pass fused_act=1 (${SESSION_KEYS.fused_act}) or leave it out.`, { input: 'fused_act' });
  if (fa === '1' && rest.prefer_nhwc !== '1') throw new GpenLabError('E_ARGUMENT', 'fused_act=1 needs prefer_nhwc=1: the FusedAct operator works on NHWC tensors', 'Add prefer_nhwc=1, or leave fused_act out.', { input: 'fused_act' });
  if (pr !== undefined && !['0', '1'].includes(pr)) throw new GpenLabError('E_ARGUMENT', `Expected prime to be 0 or 1 but received "${pr}"`, `Pass prime=1 (${SESSION_KEYS.prime}) or leave it out.`, { input: 'prime' });
  return { cuda, ...(pr !== undefined ? { prime: Number(pr) } : {}), ...(mp !== undefined ? { memPattern: mp !== '0' } : {}), ...(level !== undefined ? { graphOptimizationLevel: level } : {}), ...(Object.keys(config).length ? { config } : {}), ...(gc !== undefined ? { graphCache: gc === '0' ? false as const : 'ort' as const } : {}), ...(arenaEntries.length ? { arena } : {}), ...(fa !== undefined ? { fusedAct: fa === '1' } : {}) };
}

/** ONNX tensor element types used here. */
const FLOAT = 1;
const UINT8 = 2;

/** The CUDA runtime functions used here, from the libcudart.so.13 the CUDA provider has already loaded (once). */
interface Cudart {
  memcpy: (dst: unknown, src: unknown, bytes: number, kind: number) => number;
  hostRegister: (p: unknown, bytes: number, flags: number) => number;
  hostUnregister: (p: unknown) => number;
  getLastError: () => number;
}
let cudartFns: Cudart | null = null;
function cudart(): Cudart {
  cudartFns ??= loadFunctions<Cudart>('libcudart.so.13', {
    memcpy: 'int cudaMemcpy(void *dst, void *src, size_t count, int kind)',
    hostRegister: 'int cudaHostRegister(void *p, size_t bytes, unsigned int flags)',
    hostUnregister: 'int cudaHostUnregister(void *p)',
    getLastError: 'int cudaGetLastError()',
  });
  return cudartFns;
}

function memcpy(dst: unknown, src: unknown, bytes: number, kind: 1 | 2): void {
  const rc = cudart().memcpy(dst, src, bytes, kind);
  if (rc !== 0) throw new GpenLabError('E_INFERENCE', `cudaMemcpy (${kind === 1 ? 'host to device' : 'device to host'}, ${bytes} bytes) failed with CUDA error ${rc}`, 'Run `gpen-lab doctor --provider cuda`.');
}

/** What HostPins holds locked, and why locking stopped (null while it works). */
export interface PinnedStats { buffers: number; bytes: number; error: string | null }

/**
 * Host buffers page-locked in place (cudaHostRegister) for copies to and from the GPU: a copy from pageable memory goes
 * through the driver's staging buffer in pieces, one from locked pages is a single DMA (the Solvay photo's 29 faces
 * are 91 MB each way). The buffers are the pipeline's pooled crops (SharedArrayBuffers the face workers fill), so each
 * is locked once and reused; at most `most` stay locked, the least recently used unlocked first, all on release. An
 * optimisation: a buffer that cannot be locked is copied as before, and the failure is kept in `stats().error`.
 */
export class HostPins {
  private readonly pinned = new Map<ArrayBufferLike, number>();
  private error: string | null = null;
  private fns: Cudart | null = null;
  constructor(private readonly most = 4, private readonly minBytes = 8 << 20) {}

  /** Locks the whole buffer under `a` unless it is small, locked already, or locking failed before. */
  pin(a: Float32Array | Uint8Array): void {
    const buf = a.buffer;
    if (buf.byteLength < this.minBytes || this.error) return;
    if (this.pinned.has(buf)) {
      // most recently used last
      this.pinned.delete(buf);
      this.pinned.set(buf, buf.byteLength);
      return;
    }
    try {
      this.fns ??= cudart();
    } catch (e) {
      this.error = `the CUDA runtime (libcudart.so.13) could not be loaded to lock host memory: ${(e as Error).message}`;
      return;
    }
    while (this.pinned.size >= this.most) this.unpin(this.pinned.keys().next().value!);
    const rc = this.fns.hostRegister(new Uint8Array(buf), buf.byteLength, 0);
    if (rc !== 0) {
      // the runtime keeps the failure as its last error, which ONNX Runtime's next kernel check would report as its own
      // ("cudaErrorHostMemoryAlreadyRegistered" failed the next session's first run): cleared here
      this.fns.getLastError();
      this.error = `cudaHostRegister of ${buf.byteLength} bytes failed with CUDA error ${rc}: copies go through pageable memory`;
      return;
    }
    this.pinned.set(buf, buf.byteLength);
  }

  private unpin(buf: ArrayBufferLike): void {
    this.pinned.delete(buf);
    this.fns?.hostUnregister(new Uint8Array(buf));
  }

  /** What is locked now, and why locking stopped (null while it works). */
  stats(): PinnedStats {
    return { buffers: this.pinned.size, bytes: [...this.pinned.values()].reduce((x, y) => x + y, 0), error: this.error };
  }

  release(): void {
    for (const buf of [...this.pinned.keys()]) this.unpin(buf);
  }
}

/** Several named inputs and outputs on the GPU, bound once (a detector's byte input and its four outputs). */
export interface DeviceIo {
  /** Copies `x` to bound input `i` on the GPU. */
  upload(i: number, x: Float32Array | Uint8Array): void;
  /** Copies bound output `j` from the GPU into `into`. */
  download(j: number, into: Float32Array): void;
  /** Runs the session on the bound tensors (synchronous: returns when the GPU is done). */
  run(): void;
  release(): void;
}

/** Input and output tensors that live on the GPU, bound once: runs then move no data unless asked. */
export interface DeviceBinding {
  dims: number[];
  elements: number;
  /** Copies `x` to the bound input on the GPU. */
  upload(x: Float32Array): void;
  /** Copies the bound output from the GPU into `into`. */
  download(into: Float32Array): void;
  /** Runs the session on the bound tensors (synchronous: returns when the GPU is done). */
  run(): void;
  release(): void;
}

/** A file mapped into memory (read-only for its users, private to this process): a model ONNX Runtime reads in place. */
export interface MappedFile {
  readonly file: string;
  readonly ptr: unknown;
  readonly length: number;
  unmap(): void;
}

let libcMap: { open: (f: string, flags: number) => number; close: (fd: number) => number; mmap: (...a: unknown[]) => unknown; munmap: (p: unknown, n: number) => number } | null = null;

/**
 * Maps `file` with mmap (copy-on-write, so that nothing reaches the file): ONNX Runtime can then take its bytes in
 * place (session.use_ort_model_bytes_directly) where JavaScript memory could move or be collected under it.
 */
export function mapFile(file: string): MappedFile {
  libcMap ??= (() => {
    const l = koffi.load('libc.so.6');
    return {
      open: l.func('int open(const char *file, int flags)') as (f: string, flags: number) => number,
      close: l.func('int close(int fd)') as (fd: number) => number,
      mmap: l.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)') as (...a: unknown[]) => unknown,
      munmap: l.func('int munmap(void *addr, size_t len)') as (p: unknown, n: number) => number,
    };
  })();
  let length: number;
  try {
    length = statSync(file).size;
  } catch {
    throw new GpenLabError('E_FILE_MISSING', `Cannot map ${file}: it does not exist (expected a cached ONNX Runtime model)`, 'Run again: the cache entry is written anew.', { input: file });
  }
  const fd = libcMap.open(file, 0 /* O_RDONLY */);
  if (fd < 0) throw new GpenLabError('E_FILE_UNREADABLE', `Cannot open ${file} to map it`, 'Check that the cache folder is readable.', { input: file });
  let ptr: unknown;
  try {
    ptr = libcMap.mmap(null, length, 0x1 | 0x2 /* PROT_READ | PROT_WRITE */, 0x2 /* MAP_PRIVATE */, fd, 0);
  } finally {
    libcMap.close(fd);
  }
  if (!ptr || koffi.address(ptr) === 0xffffffffffffffffn) throw new GpenLabError('E_FILE_UNREADABLE', `Cannot map ${file} into memory`, 'Check the free memory and the cache folder.', { input: file });
  let mapped = true;
  const m = libcMap;
  return { file, ptr, length, unmap: () => { if (mapped) { mapped = false; m.munmap(ptr, length); } } };
}

/** A session created through the C API; run() is synchronous and writes the first output into a new array. */
export class CapiSession {
  private released = false;
  private readonly bindings = new Set<DeviceIo>();
  private mapped: MappedFile | null = null;
  private constructor(private readonly a: Api, private readonly session: unknown, private readonly info: unknown, readonly runtimeVersion: string, readonly cudaOptions: Record<string, string> | null) {}

  static create(model: string | Uint8Array, o: CapiOptions): CapiSession {
    const { a, opts, cudaAsked } = CapiSession.options(o);
    const out: unknown[] = [null];
    try {
      if (typeof model === 'string') check(a, a.fns.CreateSession(env, model, opts, out), 'CreateSession');
      else check(a, a.fns.CreateSessionFromArray(env, model, model.byteLength, opts, out), 'CreateSessionFromArray');
    } finally {
      a.fns.ReleaseSessionOptions(opts);
    }
    return CapiSession.wrap(a, out[0], cudaAsked);
  }

  /**
   * The same, with CreateSession on a worker thread (koffi's async call): the JavaScript thread goes on meanwhile,
   * e.g. decoding and detecting the first image of a cold start while CUDA and the model load.
   */
  static async createAsync(model: string | Uint8Array | MappedFile, o: CapiOptions): Promise<CapiSession> {
    if (o.provider === 'cuda') await loadCudaProvider(envLoaded());
    const { a, opts, cudaAsked } = CapiSession.options(o);
    const out: unknown[] = [null];
    try {
      const status = await new Promise<unknown>((resolve, reject) => {
        const done = (err: unknown, res: unknown) => (err ? reject(err) : resolve(res));
        if (typeof model === 'string') a.fns.CreateSession.async(env, model, opts, out, done);
        else if (model instanceof Uint8Array) a.fns.CreateSessionFromArray.async(env, model, model.byteLength, opts, out, done);
        else a.fns.CreateSessionFromArray.async(env, model.ptr, model.length, opts, out, done);
      });
      check(a, status, typeof model === 'string' ? 'CreateSession' : 'CreateSessionFromArray');
    } finally {
      a.fns.ReleaseSessionOptions(opts);
    }
    const s = CapiSession.wrap(a, out[0], cudaAsked);
    // a mapped model stays mapped while the session may read it (released with the session)
    if (!(typeof model === 'string' || model instanceof Uint8Array)) s.mapped = model;
    return s;
  }

  /** The environment (once) and the session options for `o`; the caller releases the options. */
  private static options(o: CapiOptions): { a: Api; opts: unknown; cudaAsked: Record<string, string> | null } {
    const a = envLoaded();
    const out: unknown[] = [null];
    check(a, a.fns.CreateSessionOptions(out), 'CreateSessionOptions');
    const opts = out[0];
    let cudaAsked: Record<string, string> | null = null;
    try {
      check(a, a.fns.SetSessionGraphOptimizationLevel(opts, o.graphOptimizationLevel ?? 99), 'SetSessionGraphOptimizationLevel');
      if (o.intraOpNumThreads) check(a, a.fns.SetIntraOpNumThreads(opts, o.intraOpNumThreads), 'SetIntraOpNumThreads');
      for (const [k, v] of Object.entries(o.config ?? {})) check(a, a.fns.AddSessionConfigEntry(opts, k, v), `AddSessionConfigEntry(${k}=${v})`);
      if (o.gpenOps) check(a, a.fns.AddCustomOpDomain(opts, gpenOpsDomain(a, o.provider)), 'AddCustomOpDomain(gpen_lab)');
      if (o.saveOptimizedTo) check(a, a.fns.SetOptimizedModelFilePath(opts, o.saveOptimizedTo), 'SetOptimizedModelFilePath');
      if (o.profilePrefix) check(a, a.fns.EnableProfiling(opts, o.profilePrefix), 'EnableProfiling');
      // CUDA graphs replay fixed addresses: ONNX Runtime's memory patterns must be off with them
      const graphs = o.provider === 'cuda' && o.cuda?.enable_cuda_graph === '1';
      if (o.memPattern === false || graphs) check(a, a.fns.DisableMemPattern(opts), 'DisableMemPattern');
      if (o.provider === 'cuda') cudaAsked = { device_id: '0', ...o.cuda };
      if (o.arena) {
        // ONNX Runtime takes an arena configuration for its CUDA provider only as an allocator registered with the
        // environment (UpdateCUDAProviderOptionsWithValue knows user_compute_stream alone); sessions opt in
        registerArena(a, o.provider, cudaAsked ?? {}, o.arena);
        check(a, a.fns.AddSessionConfigEntry(opts, 'session.use_env_allocators', '1'), 'AddSessionConfigEntry(session.use_env_allocators=1)');
      }
      if (cudaAsked) {
        check(a, a.fns.CreateCUDAProviderOptions(out), 'CreateCUDAProviderOptions');
        const cudaOpts = out[0];
        try {
          const entries = Object.entries(cudaAsked);
          check(a, a.fns.UpdateCUDAProviderOptions(cudaOpts, entries.map((e) => e[0]), entries.map((e) => e[1]), entries.length), 'UpdateCUDAProviderOptions');
          check(a, a.fns.SessionOptionsAppendExecutionProvider_CUDA_V2(opts, cudaOpts), 'SessionOptionsAppendExecutionProvider_CUDA_V2');
        } finally {
          a.fns.ReleaseCUDAProviderOptions(cudaOpts);
        }
      }
    } catch (e) {
      a.fns.ReleaseSessionOptions(opts);
      throw e;
    }
    return { a, opts, cudaAsked };
  }

  private static wrap(a: Api, session: unknown, cudaAsked: Record<string, string> | null): CapiSession {
    const out: unknown[] = [null];
    check(a, a.fns.CreateCpuMemoryInfo(1, 0, out), 'CreateCpuMemoryInfo');
    return new CapiSession(a, session, out[0], a.version, cudaAsked);
  }

  private live(): void {
    if (this.released) throw new GpenLabError('E_ARGUMENT', 'This C API session was released', 'Create a new one.');
  }

  /** A float32 (or, for bytes, uint8) tensor over `x` (ONNX Runtime reads it in place); release it with ReleaseValue. */
  private inputTensor(x: Float32Array | Uint8Array, dims: number[]): unknown {
    const val: unknown[] = [null];
    check(this.a, this.a.fns.CreateTensorWithDataAsOrtValue(this.info, x, x.byteLength, BigInt64Array.from(dims.map(BigInt)), dims.length, x instanceof Uint8Array ? UINT8 : FLOAT, val), 'CreateTensorWithDataAsOrtValue');
    return val[0];
  }

  /** Runs one input and returns several float outputs (`length` elements each), copied out: a detector's run. */
  runMulti(input: { name: string; x: Float32Array | Uint8Array; dims: number[] }, outputs: { name: string; length: number }[]): Float32Array[] {
    this.live();
    const a = this.a;
    const val = this.inputTensor(input.x, input.dims);
    const values: unknown[] = outputs.map(() => null);
    try {
      check(a, a.fns.Run(this.session, null, [input.name], [val], 1, outputs.map((o) => o.name), outputs.length, values), 'Run');
      return outputs.map((o, j) => this.readOutput(values[j], o.length));
    } finally {
      a.fns.ReleaseValue(val);
      for (const v of values) if (v) a.fns.ReleaseValue(v);
    }
  }

  /**
   * Runs input `input` (float32, dims; the tensor reads `x` in place) and returns output `output` (`outLength`
   * elements), copied into `into` when given.
   */
  run(x: Float32Array, dims: number[], outLength: number, names: { input: string; output: string } = { input: 'input', output: 'output' }, into?: Float32Array): Float32Array {
    this.live();
    const a = this.a;
    const val = [this.inputTensor(x, dims)];
    const outputs: unknown[] = [null];
    try {
      check(a, a.fns.Run(this.session, null, [names.input], [val[0]], 1, [names.output], 1, outputs), 'Run');
      return this.readOutput(outputs[0], outLength, into);
    } finally {
      a.fns.ReleaseValue(val[0]);
      if (outputs[0]) a.fns.ReleaseValue(outputs[0]);
    }
  }

  /**
   * Runs once on a worker thread (koffi's async call) and discards the output: the primer's run (primer.ts). Real runs
   * stay on the JavaScript thread: ONNX Runtime keeps CUDA graphs and cuDNN/cuBLAS handles per calling thread.
   */
  async runOnceAsync(input: { name: string; x: Float32Array; dims: number[] } | null, output: string): Promise<void> {
    this.live();
    const a = this.a;
    const val = [input ? this.inputTensor(input.x, input.dims) : null];
    const outputs: unknown[] = [null];
    try {
      await this.runOnWorker(input ? [input.name] : [], val[0] ? [val[0]] : [], output, outputs);
    } finally {
      if (val[0]) a.fns.ReleaseValue(val[0]);
      if (outputs[0]) a.fns.ReleaseValue(outputs[0]);
    }
  }

  /**
   * run() on a worker thread: the JavaScript thread is free meanwhile. For a cold start's first run, which waits on
   * first-use work on the GPU (later runs on the JavaScript thread set up their own per-thread handles once).
   */
  async runAsync(x: Float32Array, dims: number[], outLength: number, names: { input: string; output: string } = { input: 'input', output: 'output' }, into?: Float32Array): Promise<Float32Array> {
    this.live();
    const a = this.a;
    const val = this.inputTensor(x, dims);
    const outputs: unknown[] = [null];
    try {
      await this.runOnWorker([names.input], [val], names.output, outputs);
      return this.readOutput(outputs[0], outLength, into);
    } finally {
      a.fns.ReleaseValue(val);
      if (outputs[0]) a.fns.ReleaseValue(outputs[0]);
    }
  }

  /** A float output's `length` values copied out of ONNX Runtime's tensor, into `into` when given. */
  private readOutput(value: unknown, length: number, into?: Float32Array): Float32Array {
    const data: unknown[] = [null];
    check(this.a, this.a.fns.GetTensorMutableData(value, data), 'GetTensorMutableData');
    const view = new Float32Array(koffi.view(data[0], length * 4));
    if (!into) return view.slice();
    into.set(view);
    return into;
  }

  private async runOnWorker(inNames: string[], inValues: unknown[], output: string, outputs: unknown[]): Promise<void> {
    const a = this.a;
    const status = await new Promise<unknown>((resolve, reject) => a.fns.Run.async(this.session, null, inNames, inValues, inNames.length, [output], 1, outputs,
      (err: unknown, res: unknown) => (err ? reject(err) : resolve(res))));
    check(a, status, 'Run');
  }

  /**
   * Input and output of shape `dims` allocated by the session's CUDA allocator and bound by name (IO binding): the
   * route to CUDA graphs, which replay the same addresses. `graphId` tags the run for ONNX Runtime's per-shape
   * graph capture (run config gpu_graph_id) when the session was created with enable_cuda_graph=1.
   */
  bindDevice(dims: number[], names: { input: string; output: string } = { input: 'input', output: 'output' }, graphId?: number): DeviceBinding {
    const io = this.bindDeviceIo([{ name: names.input, dims, type: 'float32' }], [{ name: names.output, dims }], graphId);
    return {
      dims, elements: dims.reduce((x, y) => x * y, 1),
      upload: (x) => io.upload(0, x),
      download: (into) => io.download(0, into),
      run: () => io.run(),
      release: () => io.release(),
    };
  }

  /** bindDevice for several inputs (float32 or uint8) and float32 outputs, each bound by name at its shape. */
  bindDeviceIo(inputs: { name: string; dims: number[]; type: 'float32' | 'uint8' }[], outputs: { name: string; dims: number[] }[], graphId?: number): DeviceIo {
    this.live();
    const a = this.a;
    const out: unknown[] = [null];
    const owned: { kind: 'value' | 'binding' | 'runOptions' | 'allocator' | 'info'; p: unknown }[] = [];
    const release = () => {
      for (const o of owned.reverse()) {
        if (o.kind === 'value') a.fns.ReleaseValue(o.p);
        else if (o.kind === 'binding') a.fns.ReleaseIoBinding(o.p);
        else if (o.kind === 'runOptions') a.fns.ReleaseRunOptions(o.p);
        else if (o.kind === 'allocator') a.fns.ReleaseAllocator(o.p);
        else a.fns.ReleaseMemoryInfo(o.p);
      }
      owned.length = 0;
    };
    try {
      // OrtArenaAllocator (1) on device 0, OrtMemTypeDefault (0)
      check(a, a.fns.CreateMemoryInfo('Cuda', 1, Number(this.cudaOptions?.device_id ?? 0), 0, out), 'CreateMemoryInfo(Cuda)');
      owned.push({ kind: 'info', p: out[0] });
      check(a, a.fns.CreateAllocator(this.session, owned[0].p, out), 'CreateAllocator(Cuda)');
      const allocator = out[0];
      owned.push({ kind: 'allocator', p: allocator });
      /** A tensor on the GPU: its value (owned) and its data pointer. */
      const tensor = (what: string, dims: number[], type: number): { value: unknown; ptr: unknown; bytes: number } => {
        check(a, a.fns.CreateTensorAsOrtValue(allocator, BigInt64Array.from(dims.map(BigInt)), dims.length, type, out), `CreateTensorAsOrtValue(${what})`);
        const value = out[0];
        owned.push({ kind: 'value', p: value });
        check(a, a.fns.GetTensorMutableData(value, out), `GetTensorMutableData(${what})`);
        return { value, ptr: out[0], bytes: dims.reduce((x, y) => x * y, 1) * (type === UINT8 ? 1 : 4) };
      };
      const ins = inputs.map((t) => tensor(`input ${t.name}`, t.dims, t.type === 'uint8' ? UINT8 : FLOAT));
      const outs = outputs.map((t) => tensor(`output ${t.name}`, t.dims, FLOAT));
      check(a, a.fns.CreateIoBinding(this.session, out), 'CreateIoBinding');
      const binding = out[0];
      owned.push({ kind: 'binding', p: binding });
      inputs.forEach((t, i) => check(a, a.fns.BindInput(binding, t.name, ins[i].value), `BindInput(${t.name})`));
      outputs.forEach((t, j) => check(a, a.fns.BindOutput(binding, t.name, outs[j].value), `BindOutput(${t.name})`));
      check(a, a.fns.CreateRunOptions(out), 'CreateRunOptions');
      const runOptions = out[0];
      owned.push({ kind: 'runOptions', p: runOptions });
      if (graphId !== undefined) check(a, a.fns.AddRunConfigEntry(runOptions, 'gpu_graph_id', String(graphId)), 'AddRunConfigEntry(gpu_graph_id)');
      const io: DeviceIo = {
        upload: (i, x) => memcpy(ins[i].ptr, x, Math.min(x.byteLength, ins[i].bytes), 1),
        download: (j, into) => memcpy(into, outs[j].ptr, Math.min(into.byteLength, outs[j].bytes), 2),
        run: () => { this.live(); check(a, a.fns.RunWithBinding(this.session, runOptions, binding), 'RunWithBinding'); },
        release: () => { this.bindings.delete(io); release(); },
      };
      this.bindings.add(io);
      return io;
    } catch (e) {
      release();
      throw e;
    }
  }

  /**
   * The statistics of the session's arena on `device` (AllocatorGetStats: InUse, MaxInUse, TotalAllocated, NumAllocs,
   * NumReserves, ... in bytes and counts): MaxInUse is the allocator's peak, what torch's max_memory_allocated counts.
   */
  allocatorStats(device: 'cpu' | 'cuda'): Record<string, number> {
    this.live();
    const a = this.a;
    const out: unknown[] = [null];
    check(a, a.fns.CreateMemoryInfo(device === 'cuda' ? 'Cuda' : 'Cpu', 1, Number(this.cudaOptions?.device_id ?? 0), 0, out), 'CreateMemoryInfo');
    const info = out[0];
    try {
      check(a, a.fns.CreateAllocator(this.session, info, out), `CreateAllocator(${device})`);
      const allocator = out[0];
      try {
        check(a, a.fns.AllocatorGetStats(allocator, out), 'AllocatorGetStats');
        const kvps = out[0];
        try {
          const keys: unknown[] = [null];
          const values: unknown[] = [null];
          const n: number[] = [0];
          a.fns.GetKeyValuePairs(kvps, keys, values, n);
          const k = koffi.decode(keys[0], koffi.array('const char *', n[0])) as string[];
          const v = koffi.decode(values[0], koffi.array('const char *', n[0])) as string[];
          return Object.fromEntries(k.map((key, i) => [key, Number(v[i])]));
        } finally {
          a.fns.ReleaseKeyValuePairs(kvps);
        }
      } finally {
        a.fns.ReleaseAllocator(allocator);
      }
    } finally {
      a.fns.ReleaseMemoryInfo(info);
    }
  }

  /** Ends profiling (the session was created with profilePrefix) and returns the profile's file name. */
  endProfiling(): string {
    const { allocator, out } = this.profilingAllocator();
    check(this.a, this.a.fns.SessionEndProfiling(this.session, allocator, out), 'SessionEndProfiling');
    return this.profileName(allocator, out[0]);
  }

  /** endProfiling on one of libuv's worker threads (ONNX Runtime writes the profile there). */
  async endProfilingAsync(): Promise<string> {
    const { allocator, out } = this.profilingAllocator();
    const status = await new Promise<unknown>((resolve, reject) => this.a.fns.SessionEndProfiling.async(this.session, allocator, out, (err: unknown, res: unknown) => (err ? reject(err) : resolve(res))));
    check(this.a, status, 'SessionEndProfiling');
    return this.profileName(allocator, out[0]);
  }

  /** The allocator SessionEndProfiling writes the profile's name with, and the slot it writes it to. */
  private profilingAllocator(): { allocator: unknown; out: unknown[] } {
    this.live();
    const out: unknown[] = [null];
    check(this.a, this.a.fns.GetAllocatorWithDefaultOptions(out), 'GetAllocatorWithDefaultOptions');
    return { allocator: out[0], out };
  }

  /** The profile's name as a string, its C string given back to `allocator`. */
  private profileName(allocator: unknown, name: unknown): string {
    const s = koffi.decode(name, 'char', -1) as string;
    check(this.a, this.a.fns.AllocatorFree(allocator, name), 'AllocatorFree');
    return s;
  }

  release(): void {
    if (!this.detach()) return;
    this.a.fns.ReleaseSession(this.session);
    this.afterSession();
  }

  /**
   * release() with ReleaseSession on one of libuv's worker threads: a CUDA session's release (its memory freed, its
   * streams ended) took ~10 ms of the JavaScript thread, the primer's in a cold start just before the face's run ends.
   */
  async releaseAsync(): Promise<void> {
    if (!this.detach()) return;
    await new Promise<void>((resolve) => this.a.fns.ReleaseSession.async(this.session, () => resolve()));
    this.afterSession();
  }

  /** Marks the session released and releases its bindings; false when it was released already. */
  private detach(): boolean {
    if (this.released) return false;
    for (const b of [...this.bindings]) b.release();
    this.released = true;
    return true;
  }

  /** What outlives the session: its memory info and the mapped model it read from. */
  private afterSession(): void {
    this.a.fns.ReleaseMemoryInfo(this.info);
    this.mapped?.unmap();
  }
}
