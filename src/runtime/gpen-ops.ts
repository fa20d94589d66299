// gpen-lab's own ONNX operators, registered with C API sessions (capi/, CapiOptions.gpenOps) as an ONNX Runtime
// custom-op domain whose callbacks are JavaScript functions (koffi). One operator for now, FusedAct (domain gpen_lab):
//   y[n, h, w, c] = prelu(cat(x, f)[n, h, w, c] + bias[n, c], slope[c]) * scale[n, c]
// over NHWC tensors, f and scale optional, bias [C] or [N, C], slope [C], scale [N, C] (float32). It is the tail of
// GPEN's styled convolution (the feature concatenation, FusedLeakyReLU's bias and slope, the next layer's modulation),
// which ONNX Runtime runs as four passes over the activation and fuses none of (docs/gpu.md).
// On CUDA the compute callback launches a PTX kernel (act-ptx.ts) on ONNX Runtime's stream: under a CUDA graph only
// the capture calls JavaScript, the replays do not. On the CPU it computes in JavaScript: the reference the tests run.
import koffi, { loadFunctions } from './koffi.js';
import { GpenLabError } from '../errors.js';
import { halfToFloat, floatToHalf } from '../io/tensor.js';
import type { Api } from './capi/api.js';
import { check } from './capi/api.js';
import { GPEN_OPS } from '../onnx/custom-ops.js';
import { ACT_KERNELS, ACT_PARAMS, actLaunch, actPtx } from './act-ptx.js';

const FLOAT = 1;
const FLOAT16 = 10;
/** OrtCustomOpInputOutputCharacteristic */
const REQUIRED = 0;
const OPTIONAL = 1;
/**
 * The OrtCustomOp version we fill in: 16, the first whose compute callback returns a status (KernelComputeV2), so that
 * a failure is the run's error; ONNX Runtime reads no field added after it (shape inference, opset ranges: 17).
 */
const OP_VERSION = 16;
/** OrtErrorCode ORT_FAIL. */
const ORT_FAIL = 1;

const OrtCustomOp = koffi.struct('gpenOrtCustomOp', {
  version: 'uint32_t',
  CreateKernel: 'void *',
  GetName: 'void *',
  GetExecutionProviderType: 'void *',
  GetInputType: 'void *',
  GetInputTypeCount: 'void *',
  GetOutputType: 'void *',
  GetOutputTypeCount: 'void *',
  KernelCompute: 'void *',
  KernelDestroy: 'void *',
  GetInputCharacteristic: 'void *',
  GetOutputCharacteristic: 'void *',
  GetInputMemoryType: 'void *',
  GetVariadicInputMinArity: 'void *',
  GetVariadicInputHomogeneity: 'void *',
  GetVariadicOutputMinArity: 'void *',
  GetVariadicOutputHomogeneity: 'void *',
  CreateKernelV2: 'void *',
  KernelComputeV2: 'void *',
  InferOutputShapeFn: 'void *',
  GetStartVersion: 'void *',
  GetEndVersion: 'void *',
  GetMayInplace: 'void *',
  ReleaseMayInplace: 'void *',
  GetAliasMap: 'void *',
  ReleaseAliasMap: 'void *',
});
const P = {
  createKernel: koffi.proto('void *gpenCreateKernel(void *op, void *api, void *info)'),
  str: koffi.proto('const char *gpenOpStr(void *op)'),
  typeAt: koffi.proto('int gpenOpTypeAt(void *op, size_t index)'),
  count: koffi.proto('size_t gpenOpCount(void *op)'),
  compute: koffi.proto('void *gpenKernelCompute(void *kernel, void *context)'),
  destroy: koffi.proto('void gpenKernelDestroy(void *kernel)'),
  intAt: koffi.proto('int gpenOpIntAt(void *op, size_t index)'),
  int: koffi.proto('int gpenOpInt(void *op)'),
};

/** The CUDA driver functions the GPU kernels need (libcuda.so.1, the driver's own library). */
interface Driver {
  loadData: (out: unknown[], image: string) => number;
  getFunction: (out: unknown[], module: unknown, name: string) => number;
  launch: (
    f: unknown,
    gx: number,
    gy: number,
    gz: number,
    bx: number,
    by: number,
    bz: number,
    shared: number,
    stream: unknown,
    params: unknown,
    extra: unknown,
  ) => number;
  errorString: (code: number, out: unknown[]) => number;
  ctxGetCurrent: (out: unknown[]) => number;
  ctxSetCurrent: (ctx: unknown) => number;
  primaryCtxRetain: (out: unknown[], device: number) => number;
}
let driver: Driver | null = null;
function cuda(): Driver {
  driver ??= loadFunctions<Driver>('libcuda.so.1', {
    loadData: 'int cuModuleLoadData(_Out_ void **module, const char *image)',
    getFunction: 'int cuModuleGetFunction(_Out_ void **f, void *module, const char *name)',
    launch:
      'int cuLaunchKernel(void *f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by, unsigned int bz, unsigned int shared, void *stream, void *params, void *extra)',
    errorString: 'int cuGetErrorString(int code, _Out_ const char **s)',
    ctxGetCurrent: 'int cuCtxGetCurrent(_Out_ void **ctx)',
    ctxSetCurrent: 'int cuCtxSetCurrent(void *ctx)',
    primaryCtxRetain: 'int cuDevicePrimaryCtxRetain(_Out_ void **ctx, int device)',
  });
  return driver;
}
function cuCheck(rc: number, what: string): void {
  if (rc === 0) return;
  const s: unknown[] = [null];
  cuda().errorString(rc, s);
  throw new GpenLabError(
    'E_INFERENCE',
    `CUDA driver: ${what} failed with error ${rc} (${String(s[0] ?? 'unknown')})`,
    'Run `gpen-lab doctor --provider cuda`, or leave fused_act out of the CUDA options.',
  );
}

/**
 * The CUDA context current for this call: ONNX Runtime's thread has it current, but a call made on another thread
 * (the primer's run on a worker thread calls back into JavaScript on the main thread) may have none: it gets the one
 * seen before, or device 0's primary context (the one ONNX Runtime uses).
 */
let seenCtx: unknown = null;
function ensureContext(): unknown {
  const cur: unknown[] = [null];
  cuCheck(cuda().ctxGetCurrent(cur), 'cuCtxGetCurrent');
  if (cur[0]) {
    seenCtx ??= cur[0];
    return cur[0];
  }
  if (!seenCtx) {
    const p: unknown[] = [null];
    cuCheck(cuda().primaryCtxRetain(p, 0), 'cuDevicePrimaryCtxRetain(0)');
    seenCtx = p[0];
  }
  cuCheck(cuda().ctxSetCurrent(seenCtx), 'cuCtxSetCurrent');
  return seenCtx;
}

/** The module's functions by name, per CUDA context (a module belongs to the context it was loaded in: one per GPU). */
const kernels = new Map<unknown, Map<string, unknown>>();
function kernelFn(ctx: unknown, name: string): unknown {
  let fns = kernels.get(ctx);
  if (!fns) {
    const mod: unknown[] = [null];
    cuCheck(cuda().loadData(mod, actPtx()), 'cuModuleLoadData(FusedAct PTX)');
    fns = new Map();
    for (const k of Object.values(ACT_KERNELS)) {
      const f: unknown[] = [null];
      cuCheck(cuda().getFunction(f, mod[0], k), `cuModuleGetFunction(${k})`);
      fns.set(k, f[0]);
    }
    kernels.set(ctx, fns);
  }
  return fns.get(name);
}

interface Tensor {
  ptr: bigint;
  dims: number[];
}

/** An input of the kernel context (null where an optional one is absent), with its dims. */
function input(a: Api, ctx: unknown, i: number): Tensor | null {
  const v: unknown[] = [null];
  check(a, a.fns.KernelContext_GetInput(ctx, i, v), 'KernelContext_GetInput');
  if (!v[0]) return null;
  return { ptr: dataOf(a, v[0]), dims: dimsOf(a, v[0]) };
}
function dimsOf(a: Api, value: unknown): number[] {
  const info: unknown[] = [null];
  check(a, a.fns.GetTensorTypeAndShape(value, info), 'GetTensorTypeAndShape');
  try {
    const n: unknown[] = [0];
    check(a, a.fns.GetDimensionsCount(info[0], n), 'GetDimensionsCount');
    const dims = new BigInt64Array(Number(n[0]));
    check(a, a.fns.GetDimensions(info[0], dims, dims.length), 'GetDimensions');
    return Array.from(dims, Number);
  } finally {
    a.fns.ReleaseTensorTypeAndShapeInfo(info[0]);
  }
}
function dataOf(a: Api, value: unknown): bigint {
  const d: unknown[] = [null];
  check(a, a.fns.GetTensorMutableData(value, d), 'GetTensorMutableData');
  return BigInt(d[0] as bigint | number);
}

/** FusedAct's shapes checked: x [N, H, W, C1], f [N, H, W, C2], bias [C] or [N, C], slope [C], scale [N, C]. */
export function actShapes(
  x: number[],
  f: number[] | null,
  bias: number[],
  slope: number[],
  scale: number[] | null,
): { n: number; hw: number; c1: number; c2: number; ct: number; bstride: number } {
  const bad = (what: string) =>
    new GpenLabError(
      'E_INFERENCE',
      `FusedAct: ${what} (x ${x.join('x')}, f ${f?.join('x') ?? '-'}, bias ${bias.join('x')}, slope ${slope.join('x')}, scale ${scale?.join('x') ?? '-'})`,
      'The graph was built wrongly: rebuild the model (report this as a bug).',
    );
  if (x.length !== 4) throw bad('x must be NHWC');
  const [n, h, w, c1] = x;
  const c2 = f ? f[3] : 0;
  if (f && (f.length !== 4 || f[0] !== n || f[1] !== h || f[2] !== w)) throw bad('f must match x but for its channels');
  const ct = c1 + c2;
  const bstride = bias.length === 2 ? ct : 0;
  if (bias[bias.length - 1] !== ct || (bias.length === 2 && bias[0] !== n) || bias.length > 2)
    throw bad('bias must be [C] or [N, C]');
  if (slope.length !== 1 || slope[0] !== ct) throw bad('slope must be [C]');
  if (scale && (scale.length !== 2 || scale[0] !== n || scale[1] !== ct)) throw bad('scale must be [N, C]');
  return { n, hw: h * w, c1, c2, ct, bstride };
}

/** A node's inputs, their shapes checked, and its output allocated (NHWC, the channels of x and f together). */
function gather(
  a: Api,
  ctx: unknown,
): {
  x: Tensor;
  f: Tensor | null;
  bias: Tensor;
  slope: Tensor;
  scale: Tensor | null;
  s: ReturnType<typeof actShapes>;
  out: bigint;
} {
  const [x, f, bias, slope, scale] = [0, 1, 2, 3, 4].map((i) => input(a, ctx, i));
  if (!x || !bias || !slope)
    throw new GpenLabError(
      'E_INFERENCE',
      'FusedAct: x, bias and slope are required',
      'The graph was built wrongly: rebuild the model (report this as a bug).',
    );
  const s = actShapes(x.dims, f?.dims ?? null, bias.dims, slope.dims, scale?.dims ?? null);
  const outV: unknown[] = [null];
  check(
    a,
    a.fns.KernelContext_GetOutput(ctx, 0, BigInt64Array.from([s.n, x.dims[1], x.dims[2], s.ct].map(BigInt)), 4, outV),
    'KernelContext_GetOutput',
  );
  return { x, f, bias, slope, scale, s, out: dataOf(a, outV[0]) };
}

/** FusedAct on the CPU (the reference): host pointers read and written through views. */
function computeCpu(a: Api, ctx: unknown, half: boolean): void {
  const { x, f, bias, slope, scale, s, out } = gather(a, ctx);
  const eb = half ? 2 : 4;
  const view = (t: Tensor, count: number) =>
    half ? new Uint16Array(koffi.view(t.ptr, count * eb)) : new Float32Array(koffi.view(t.ptr, count * eb));
  const px = s.n * s.hw;
  const xs = view(x, px * s.c1);
  const fs = f ? view(f, px * s.c2) : null;
  const b = new Float32Array(koffi.view(bias.ptr, (s.bstride ? s.n : 1) * s.ct * 4));
  const sl = new Float32Array(koffi.view(slope.ptr, s.ct * 4));
  const sc = scale ? new Float32Array(koffi.view(scale.ptr, s.n * s.ct * 4)) : null;
  const ys = view({ ptr: out, dims: [] }, px * s.ct);
  const rd = (arr: Uint16Array | Float32Array, i: number) => (half ? halfToFloat(arr[i]) : arr[i]);
  for (let p = 0; p < px; p++) {
    const nb = Math.floor(p / s.hw);
    for (let c = 0; c < s.ct; c++) {
      let v = c < s.c1 ? rd(xs, p * s.c1 + c) : rd(fs!, p * s.c2 + c - s.c1);
      v += b[nb * s.bstride + c];
      if (v < 0) v *= sl[c];
      if (sc) v *= sc[nb * s.ct + c];
      ys[p * s.ct + c] = half ? floatToHalf(v) : v;
    }
  }
}

/** Per node (kernel instance): the launch's parameter block, allocated once (cuLaunchKernel copies it at each launch). */
interface GpuKernel {
  store: bigint;
  argv: bigint;
}
function computeCuda(a: Api, k: GpuKernel, ctx: unknown, half: boolean): void {
  const { x, f, bias, slope, scale, s, out } = gather(a, ctx);
  const stream: unknown[] = [null];
  check(a, a.fns.KernelContext_GetGPUComputeStream(ctx, stream), 'KernelContext_GetGPUComputeStream');
  const elements = s.n * s.hw * s.ct;
  if (elements === 0) return;
  const cuCtx = ensureContext();
  const l = actLaunch(half, s.c1, s.c2, elements);
  const values: bigint[] = [
    x.ptr,
    f?.ptr ?? 0n,
    bias.ptr,
    slope.ptr,
    scale?.ptr ?? 0n,
    out,
    BigInt(s.c1),
    BigInt(s.c2),
    BigInt(s.hw),
    BigInt(l.count),
    BigInt(s.bstride),
    BigInt(scale ? s.ct : 0),
  ];
  values.forEach((v, i) => koffi.encode(k.store, i * 8, 'uint64', v));
  const block = 256;
  cuCheck(
    cuda().launch(kernelFn(cuCtx, l.kernel), Math.ceil(l.count / block), 1, 1, block, 1, 1, 0, stream[0], k.argv, null),
    `cuLaunchKernel(${l.kernel})`,
  );
}

type Provider = 'cpu' | 'cuda';
/** The domain per provider, made once per process (ONNX Runtime needs the domain and its ops to outlive sessions). */
const domains = new Map<Provider, unknown>();
/** Everything the registered callbacks and structs hold, kept reachable for the process's life. */
const keep: unknown[] = [];

function makeOp(a: Api, provider: Provider, half: boolean): bigint {
  // FusedAct over float32 and over float16 tensors (x, f, y); bias, slope and scale float32 in both
  const name = half ? GPEN_OPS.fusedAct.fp16 : GPEN_OPS.fusedAct.fp32;
  const ep = provider === 'cuda' ? 'CUDAExecutionProvider' : 'CPUExecutionProvider';
  const io = half ? FLOAT16 : FLOAT;
  const inputTypes = [io, io, FLOAT, FLOAT, FLOAT];
  const kernelsMade = new Map<bigint, GpuKernel | null>();
  let nextId = 1n;
  const reg = (fn: (...args: never[]) => unknown, proto: unknown) => {
    const p = koffi.register(fn as (...args: unknown[]) => unknown, koffi.pointer(proto as never));
    keep.push(p);
    return p;
  };
  // the kernel handle is a small integer ORT passes back; the state lives here
  const createKernel = reg(() => {
    const id = nextId++;
    if (provider === 'cuda') {
      const store = koffi.alloc('uint64', ACT_PARAMS.length) as bigint;
      const argv = koffi.alloc('uint64', ACT_PARAMS.length) as bigint;
      for (let i = 0; i < ACT_PARAMS.length; i++) koffi.encode(argv, i * 8, 'uint64', store + BigInt(i * 8));
      kernelsMade.set(id, { store, argv });
    } else kernelsMade.set(id, null);
    return id;
  }, P.createKernel);
  const compute = reg((kernel: bigint, ctx: unknown) => {
    // a throw cannot cross into ONNX Runtime: it goes back as the status of the node, the run's error
    try {
      const k = kernelsMade.get(BigInt(kernel));
      if (provider === 'cuda') computeCuda(a, k!, ctx, half);
      else computeCpu(a, ctx, half);
      return null;
    } catch (e) {
      return a.fns.CreateStatus(ORT_FAIL, `${name} (${provider}): ${(e as Error).message}`);
    }
  }, P.compute);
  const destroy = reg((kernel: bigint) => {
    const k = kernelsMade.get(BigInt(kernel));
    if (k) {
      koffi.free(k.store);
      koffi.free(k.argv);
    }
    kernelsMade.delete(BigInt(kernel));
  }, P.destroy);
  const nameC = koffi.alloc('char', name.length + 1) as bigint;
  koffi.encode(nameC, 'char', name, name.length + 1);
  const epC = koffi.alloc('char', ep.length + 1) as bigint;
  koffi.encode(epC, 'char', ep, ep.length + 1);
  const op = koffi.alloc(OrtCustomOp, 1) as bigint;
  keep.push(nameC, epC, op);
  koffi.encode(op, OrtCustomOp, {
    version: OP_VERSION,
    CreateKernel: createKernel,
    GetName: reg(() => nameC, P.str),
    GetExecutionProviderType: reg(() => epC, P.str),
    GetInputType: reg((_op: unknown, i: number) => inputTypes[Number(i)], P.typeAt),
    GetInputTypeCount: reg(() => inputTypes.length, P.count),
    GetOutputType: reg(() => io, P.typeAt),
    GetOutputTypeCount: reg(() => 1, P.count),
    KernelCompute: null,
    KernelDestroy: destroy,
    GetInputCharacteristic: reg(
      (_op: unknown, i: number) => (Number(i) === 1 || Number(i) === 4 ? OPTIONAL : REQUIRED),
      P.intAt,
    ),
    GetOutputCharacteristic: reg(() => REQUIRED, P.intAt),
    GetInputMemoryType: reg(() => 0, P.intAt), // OrtMemTypeDefault: the provider's device
    GetVariadicInputMinArity: reg(() => 1, P.int),
    GetVariadicInputHomogeneity: reg(() => 1, P.int),
    GetVariadicOutputMinArity: reg(() => 1, P.int),
    GetVariadicOutputHomogeneity: reg(() => 1, P.int),
    CreateKernelV2: null,
    KernelComputeV2: compute,
    InferOutputShapeFn: null,
    GetStartVersion: null,
    GetEndVersion: null,
    GetMayInplace: null,
    ReleaseMayInplace: null,
    GetAliasMap: null,
    ReleaseAliasMap: null,
  });
  return op;
}

/** The gpen_lab domain for sessions of `provider` (FusedAct in both precisions), made on first use. */
export function gpenOpsDomain(a: Api, provider: Provider): unknown {
  let d = domains.get(provider);
  if (d) return d;
  const out: unknown[] = [null];
  check(a, a.fns.CreateCustomOpDomain(GPEN_OPS.domain, out), 'CreateCustomOpDomain');
  d = out[0];
  for (const half of [false, true])
    check(a, a.fns.CustomOpDomain_Add(d, makeOp(a, provider, half)), 'CustomOpDomain_Add');
  domains.set(provider, d);
  return d;
}
