// ONNX Runtime's C API reached directly through koffi, in the same libonnxruntime.so.1 that onnxruntime-node loads:
// the route to what the stock binding does not pass to the CUDA provider (cudnn_conv_algo_search, prefer_nhwc,
// enable_cuda_graph, arena settings). OrtGetApiBase() -> GetApi(version) -> a table of function pointers, called by
// index (the order of OrtApi in onnxruntime_c_api.h, append-only across versions). Runs are synchronous.
import path from 'node:path';
import koffi from 'koffi';
import { GpenLabError } from '../errors.js';
import { ortBinDir } from './providers.js';

/** Indices in OrtApi (onnxruntime_c_api.h, stable since the version each entry was added). */
const IX = {
  GetErrorMessage: 2, CreateEnv: 3, CreateSession: 7, CreateSessionFromArray: 8, Run: 9, CreateSessionOptions: 10,
  SetSessionGraphOptimizationLevel: 23, SetIntraOpNumThreads: 24, CreateTensorWithDataAsOrtValue: 49,
  GetTensorMutableData: 51, CreateCpuMemoryInfo: 69, ReleaseEnv: 92, ReleaseStatus: 93, ReleaseMemoryInfo: 94,
  ReleaseSession: 95, ReleaseValue: 96, ReleaseSessionOptions: 100,
  SessionOptionsAppendExecutionProvider_CUDA_V2: 204, CreateCUDAProviderOptions: 205, UpdateCUDAProviderOptions: 206,
  ReleaseCUDAProviderOptions: 208,
} as const;
const API_VERSION = 14;
const TABLE = 210;

type Fn = (...args: unknown[]) => unknown;
interface Api { fns: Record<keyof typeof IX, Fn>; version: string }

let api: Api | null = null;
let env: unknown = null;

function load(): Api {
  if (api) return api;
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
  };
  const fns = {} as Record<keyof typeof IX, Fn>;
  for (const [name, i] of Object.entries(IX) as [keyof typeof IX, number][]) {
    const proto = koffi.proto(protos[name].replace(/\bf\(/, `gpenOrt${name}(`));
    const ptr = ptrs[i];
    fns[name] = (...args: unknown[]) => koffi.call(ptr, proto, ...args);
  }
  api = { fns, version };
  return api;
}

/** Throws the message of a non-null OrtStatus (and releases it). */
function check(a: Api, status: unknown, what: string): void {
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
}

/** A session created through the C API; run() is synchronous and writes the first output into a new array. */
export class CapiSession {
  private released = false;
  private constructor(private readonly a: Api, private readonly session: unknown, private readonly info: unknown, readonly runtimeVersion: string) {}

  static create(model: string | Uint8Array, o: CapiOptions): CapiSession {
    const a = load();
    const out: unknown[] = [null];
    if (!env) {
      check(a, a.fns.CreateEnv(3, 'gpen-lab', out), 'CreateEnv');
      env = out[0];
    }
    check(a, a.fns.CreateSessionOptions(out), 'CreateSessionOptions');
    const opts = out[0];
    try {
      check(a, a.fns.SetSessionGraphOptimizationLevel(opts, 99), 'SetSessionGraphOptimizationLevel');
      if (o.intraOpNumThreads) check(a, a.fns.SetIntraOpNumThreads(opts, o.intraOpNumThreads), 'SetIntraOpNumThreads');
      if (o.provider === 'cuda') {
        check(a, a.fns.CreateCUDAProviderOptions(out), 'CreateCUDAProviderOptions');
        const cudaOpts = out[0];
        try {
          const entries = Object.entries({ device_id: '0', ...o.cuda });
          check(a, a.fns.UpdateCUDAProviderOptions(cudaOpts, entries.map((e) => e[0]), entries.map((e) => e[1]), entries.length), 'UpdateCUDAProviderOptions');
          check(a, a.fns.SessionOptionsAppendExecutionProvider_CUDA_V2(opts, cudaOpts), 'SessionOptionsAppendExecutionProvider_CUDA_V2');
        } finally {
          a.fns.ReleaseCUDAProviderOptions(cudaOpts);
        }
      }
      if (typeof model === 'string') check(a, a.fns.CreateSession(env, model, opts, out), 'CreateSession');
      else check(a, a.fns.CreateSessionFromArray(env, model, model.byteLength, opts, out), 'CreateSessionFromArray');
      const session = out[0];
      check(a, a.fns.CreateCpuMemoryInfo(1, 0, out), 'CreateCpuMemoryInfo');
      return new CapiSession(a, session, out[0], a.version);
    } finally {
      a.fns.ReleaseSessionOptions(opts);
    }
  }

  /** Runs input `input` (float32, dims) and returns output `output` (same element count as `outLength`). */
  run(x: Float32Array, dims: number[], outLength: number, names: { input: string; output: string } = { input: 'input', output: 'output' }): Float32Array {
    if (this.released) throw new GpenLabError('E_ARGUMENT', 'This C API session was released', 'Create a new one.');
    const a = this.a;
    const val: unknown[] = [null];
    check(a, a.fns.CreateTensorWithDataAsOrtValue(this.info, x, x.byteLength, BigInt64Array.from(dims.map(BigInt)), dims.length, 1, val), 'CreateTensorWithDataAsOrtValue');
    const outputs: unknown[] = [null];
    try {
      check(a, a.fns.Run(this.session, null, [names.input], [val[0]], 1, [names.output], 1, outputs), 'Run');
      const data: unknown[] = [null];
      check(a, a.fns.GetTensorMutableData(outputs[0], data), 'GetTensorMutableData');
      return new Float32Array(koffi.view(data[0], outLength * 4)).slice();
    } finally {
      a.fns.ReleaseValue(val[0]);
      if (outputs[0]) a.fns.ReleaseValue(outputs[0]);
    }
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.a.fns.ReleaseSession(this.session);
    this.a.fns.ReleaseMemoryInfo(this.info);
  }
}
