// The CUDA ceiling of the NVIDIA driver: cuDriverGetVersion of libcuda.so.1 (13000 for CUDA 13.0), which needs no
// cuInit and no GPU context. Which runtime build a GPU run takes depends on it (runtime-choice.ts).
import { loadFunctions } from '../koffi.js';

interface Driver {
  getVersion: (out: number[]) => number;
}

let answer: { version: number | null } | null = null;

/** The highest CUDA version the driver runs (1000 x major + 10 x minor), asked once; null without libcuda or an answer. */
export function driverCudaVersion(): number | null {
  answer ??= { version: ask() };
  return answer.version;
}

function ask(): number | null {
  try {
    const d = loadFunctions<Driver>('libcuda.so.1', { getVersion: 'int cuDriverGetVersion(_Out_ int *version)' });
    const out = [0];
    return d.getVersion(out) === 0 && out[0] > 0 ? out[0] : null;
  } catch {
    // no libcuda.so.1 on this machine (no NVIDIA driver)
    return null;
  }
}
