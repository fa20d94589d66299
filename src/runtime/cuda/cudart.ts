// The CUDA runtime functions the C API route calls itself, from the libcudart that ONNX Runtime's CUDA provider has
// already loaded (libcudart.so.13 for ort1.29, .12 for ort1.19: the build's CUDA major): copies between host and
// GPU-bound tensors, and page-locking host buffers.
import { loadFunctions } from '../koffi.js';
import { GpenLabError } from '../../errors.js';
import { buildSpec } from '../builds.js';
import { load } from '../capi/api.js';

export interface Cudart {
  memcpy: (dst: unknown, src: unknown, bytes: number, kind: number) => number;
  hostRegister: (p: unknown, bytes: number, flags: number) => number;
  hostUnregister: (p: unknown) => number;
  getLastError: () => number;
}

let cudartFns: Cudart | null = null;

/** The CUDA runtime's functions, loaded once. */
export function cudart(): Cudart {
  cudartFns ??= loadFunctions<Cudart>(cudartName(), {
    memcpy: 'int cudaMemcpy(void *dst, void *src, size_t count, int kind)',
    hostRegister: 'int cudaHostRegister(void *p, size_t bytes, unsigned int flags)',
    hostUnregister: 'int cudaHostUnregister(void *p)',
    getLastError: 'int cudaGetLastError()',
  });
  return cudartFns;
}

/** The soname of the CUDA runtime the process's build links (its C API loaded by the session that needs it). */
export function cudartName(): string {
  return `libcudart.so.${buildSpec(load().build).cudaMajor}`;
}

/** cudaMemcpy of `bytes`, `kind` 1 host to device, 2 device to host; a CUDA error is a coded error. */
export function memcpy(dst: unknown, src: unknown, bytes: number, kind: 1 | 2): void {
  const rc = cudart().memcpy(dst, src, bytes, kind);
  if (rc !== 0) {
    throw new GpenLabError(
      'E_INFERENCE',
      `cudaMemcpy (${kind === 1 ? 'host to device' : 'device to host'}, ${bytes} bytes) failed with CUDA error ${rc}`,
      'Run `gpen-lab doctor --provider cuda`.',
    );
  }
}
