// An allocator without an arena for ONNX Runtime's CUDA provider, through its gpu_external_alloc / gpu_external_free
// options (the route PyTorch's allocator takes into ONNX Runtime; the provider then wraps no arena around it): every
// tensor and workspace gets exactly its bytes from cudaMalloc and gives them back with cudaFree as soon as ONNX Runtime
// frees it, so the process holds only what is in use, at the cost of the driver's calls in every run (cudaFree waits
// for the GPU). The memory-lean configuration of P5, and an exact record of what is in use (bytes, peak, calls).
// Callbacks into JavaScript: only for sessions created and run synchronously on the JavaScript thread (the bench's
// C API variants); koffi would queue a call from another thread until the event loop runs.
import { GpenLabError } from '../errors.js';
import koffi from './koffi.js';

export interface ExactAllocatorStats {
  /** Bytes allocated and not yet freed. */
  inUse: number;
  /** The most bytes in use at once since the allocator was made (or resetPeak). */
  peak: number;
  allocs: number;
  frees: number;
}

export interface ExactAllocator {
  /** The CUDA provider options that make a session use it (function addresses, as ONNX Runtime reads them). */
  readonly options: Record<string, string>;
  stats(): ExactAllocatorStats;
  resetPeak(): void;
}

type Backend = { alloc(n: number): unknown; free(p: unknown): void };

const made = new Map<'cuda' | 'host', ExactAllocator>();

function backend(kind: 'cuda' | 'host'): Backend {
  if (kind === 'cuda') {
    let cudart: ReturnType<typeof koffi.load>;
    try {
      cudart = koffi.load('libcudart.so.13');
    } catch (e) {
      throw new GpenLabError('E_PROVIDER_UNAVAILABLE', `allocator=exact needs the CUDA runtime (libcudart.so.13), which did not load: ${(e as Error).message}`,
        'Run `gpen-lab doctor --provider cuda`: it names the missing library and the line to fix it.', { input: 'allocator' });
    }
    const cudaMalloc = cudart.func('int cudaMalloc(_Out_ void **p, size_t n)') as (out: unknown[], n: number) => number;
    const cudaFree = cudart.func('int cudaFree(void *p)') as (p: unknown) => number;
    return {
      alloc: (n) => { const out: unknown[] = [null]; return cudaMalloc(out, n) === 0 ? out[0] : null; },
      free: (p) => { cudaFree(p); },
    };
  }
  // the host's malloc: the same bookkeeping, testable where there is no GPU
  const libc = koffi.load('libc.so.6');
  const malloc = libc.func('void *malloc(size_t n)') as (n: number) => unknown;
  const free = libc.func('void free(void *p)') as (p: unknown) => void;
  return { alloc: (n) => malloc(n), free: (p) => free(p) };
}

/**
 * The process's exact allocator on `kind` (made once: its callbacks stay registered for the process, since ONNX
 * Runtime frees through them until its sessions are released).
 */
export function exactAllocator(kind: 'cuda' | 'host' = 'cuda'): ExactAllocator {
  const hit = made.get(kind);
  if (hit) return hit;
  const b = backend(kind);
  const sizes = new Map<bigint, number>();
  const s: ExactAllocatorStats = { inUse: 0, peak: 0, allocs: 0, frees: 0 };
  const allocT = koffi.proto(`void *gpenExactAlloc_${kind}(size_t n)`);
  const freeT = koffi.proto(`void gpenExactFree_${kind}(void *p)`);
  const emptyT = koffi.proto(`void gpenExactEmpty_${kind}()`);
  const alloc = koffi.register((n: number | bigint) => {
    const bytes = Number(n);
    const p = b.alloc(bytes);
    if (!p) return null; // ONNX Runtime reports the failed allocation
    sizes.set(koffi.address(p), bytes);
    s.inUse += bytes;
    s.allocs++;
    if (s.inUse > s.peak) s.peak = s.inUse;
    return p;
  }, koffi.pointer(allocT));
  const free = koffi.register((p: unknown) => {
    if (!p) return;
    const at = koffi.address(p);
    const bytes = sizes.get(at);
    if (bytes === undefined) return; // not ours: never freed twice
    sizes.delete(at);
    s.inUse -= bytes;
    s.frees++;
    b.free(p);
  }, koffi.pointer(freeT));
  const empty = koffi.register(() => undefined, koffi.pointer(emptyT));
  const a: ExactAllocator = {
    options: { gpu_external_alloc: String(koffi.address(alloc)), gpu_external_free: String(koffi.address(free)), gpu_external_empty_cache: String(koffi.address(empty)) },
    stats: () => ({ ...s }),
    resetPeak: () => { s.peak = s.inUse; },
  };
  made.set(kind, a);
  return a;
}
