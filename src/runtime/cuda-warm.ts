// CUDA warmed up beside a cold start: the primary context (cudaFree(0)), then cuDNN's and cuBLAS's libraries and a
// first handle of each (cuDNN loads its sub-libraries on its first cudnnCreate), all on libuv worker threads through
// koffi's async calls. ONNX Runtime's CUDA provider later finds the same libraries (same sonames) and the same
// primary context already there, so a `restore` on CUDA pays them while node loads its modules and the photo decodes.
// An optimisation only: what it did and how long each step took is reported (startup_ms.warmup), failures included.
import koffi from './koffi.js';

export interface WarmStep {
  ms: number;
  ok: boolean;
  error?: string;
}
export interface WarmReport {
  /** Milliseconds since the process started when the warm-up began. */
  startedAt: number;
  steps: Record<string, WarmStep>;
}

const RTLD_NOW_GLOBAL = 0x2 | 0x100;

type AsyncFn = ((...a: unknown[]) => unknown) & { async: (...a: unknown[]) => void };

function callAsync(f: AsyncFn, ...args: unknown[]): Promise<unknown> {
  return new Promise((resolve, reject) =>
    f.async(...args, (err: unknown, res: unknown) => (err ? reject(err) : resolve(res))),
  );
}

let libc: { dlopen: AsyncFn; dlsym: AsyncFn; dlerror: () => string | null } | null = null;

type Proto = ReturnType<typeof koffi.proto>;

/**
 * The named functions of a library, found entirely on worker threads (dlopen, then dlsym) and decoded here with
 * `protos`. The JavaScript thread never calls dlopen itself: the dynamic loader's lock is held for as long as a large
 * library (cuBLAS Lt, cuDNN's engines) takes to map and relocate, and a dlopen here would wait for it (the model
 * stage of a CUDA cold start would stall while the warm-up loads its libraries).
 */
export async function functionsAsync(soname: string, protos: Record<string, Proto>): Promise<Record<string, AsyncFn>> {
  libc ??= (() => {
    const l = koffi.load('libc.so.6');
    return {
      dlopen: l.func('void *dlopen(const char *file, int mode)') as AsyncFn,
      dlsym: l.func('void *dlsym(void *handle, const char *name)') as AsyncFn,
      dlerror: l.func('const char *dlerror()') as () => string | null,
    };
  })();
  const h = await callAsync(libc.dlopen, soname, RTLD_NOW_GLOBAL);
  if (!h) throw new Error(`${soname} could not be loaded: ${libc.dlerror() ?? 'not found'}`);
  const out: Record<string, AsyncFn> = {};
  for (const [name, proto] of Object.entries(protos)) {
    const ptr = await callAsync(libc.dlsym, h, name);
    if (!ptr) throw new Error(`${name} was not found in ${soname}`);
    out[name] = koffi.decode(ptr, proto) as AsyncFn;
  }
  return out;
}

/** Prototypes, declared once (koffi's type names are global to the process). */
let protos: { free: Proto; create: Proto; destroy: Proto } | null = null;
function warmProtos(): { free: Proto; create: Proto; destroy: Proto } {
  protos ??= {
    free: koffi.proto('int gpenWarmCudaFree(void *p)'),
    create: koffi.proto('int gpenWarmCreate(_Out_ void **handle)'),
    destroy: koffi.proto('int gpenWarmDestroy(void *handle)'),
  };
  return protos;
}

async function step(steps: Record<string, WarmStep>, name: string, work: () => Promise<void>): Promise<boolean> {
  const t = performance.now();
  try {
    await work();
    steps[name] = { ms: performance.now() - t, ok: true };
    return true;
  } catch (e) {
    steps[name] = { ms: performance.now() - t, ok: false, error: (e as Error).message };
    return false;
  }
}

/** Creates one handle with `create(&h)` and destroys it; a non-zero status is an error naming the call. */
async function handleRoundTrip(soname: string, create: string, destroy: string): Promise<void> {
  const p = warmProtos();
  const { [create]: c, [destroy]: d } = await functionsAsync(soname, { [create]: p.create, [destroy]: p.destroy });
  const out: unknown[] = [null];
  const rc = (await callAsync(c, out)) as number;
  if (rc !== 0) throw new Error(`${create} returned ${rc}`);
  await callAsync(d, out[0]);
}

/**
 * Starts the warm-up and returns its report when every step is done. The context first (everything else needs it),
 * then cuDNN and cuBLAS side by side; `cudaMajor` picks the CUDA libraries the runtime build's provider links (13 for
 * ort1.29, 12 for ort1.19: builds.ts).
 */
export async function warmCuda(cudaMajor = 13): Promise<WarmReport> {
  const report: WarmReport = { startedAt: performance.now(), steps: {} };
  const ok = await step(report.steps, 'context', async () => {
    const { cudaFree } = await functionsAsync(`libcudart.so.${cudaMajor}`, { cudaFree: warmProtos().free });
    const rc = (await callAsync(cudaFree, null)) as number;
    if (rc !== 0) throw new Error(`cudaFree(0) returned CUDA error ${rc}`);
  });
  if (!ok) return report;
  await Promise.all([
    step(report.steps, 'cudnn', () => handleRoundTrip('libcudnn.so.9', 'cudnnCreate', 'cudnnDestroy')),
    step(report.steps, 'cublas', () =>
      handleRoundTrip(`libcublas.so.${cudaMajor}`, 'cublasCreate_v2', 'cublasDestroy_v2'),
    ),
  ]);
  return report;
}

let started: Promise<WarmReport> | null = null;

/** Starts the warm-up once per process (for the CUDA major of the process's build); later calls return the same promise. */
export function startCudaWarmup(cudaMajor = 13): Promise<WarmReport> {
  started ??= warmCuda(cudaMajor);
  return started;
}

/** The warm-up of this process, if one was started. */
export function cudaWarmup(): Promise<WarmReport> | null {
  return started;
}
