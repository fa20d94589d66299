// Builds stub shared libraries with the system C compiler at test time: one per soname, exporting the version
// functions of the real library with chosen values, so the doctor's loader search and version calls run on real ELF
// files without CUDA. Fails loudly when no compiler is installed (.ci/run installs gcc).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export function haveCc(): boolean {
  return spawnSync('cc', ['--version']).status === 0;
}

export function requireCc(): void {
  if (!haveCc())
    throw new Error('these tests build stub shared libraries and need a C compiler: apt-get install -y gcc');
}

/** C bodies of the version functions, keyed by family, each answering `v` (the library's own integer encoding). */
export const VERSION_C: Record<string, (v: number) => string> = {
  cudart: (v) => `int cudaRuntimeGetVersion(int *v) { *v = ${v}; return 0; }`,
  cuda: (v) => `int cuDriverGetVersion(int *v) { *v = ${v}; return 0; }`,
  cublasLt: (v) => `#include <stddef.h>\nsize_t cublasLtGetVersion(void) { return ${v}; }`,
  cublas: (v) =>
    `int cublasGetProperty(int t, int *v) { *v = t == 0 ? ${Math.floor(v / 10000)} : t == 1 ? ${Math.floor((v % 10000) / 100)} : ${v % 100}; return 0; }`,
  curand: (v) => `int curandGetVersion(int *v) { *v = ${v}; return 0; }`,
  cufft: (v) => `int cufftGetVersion(int *v) { *v = ${v}; return 0; }`,
  nvrtc: (v) => `int nvrtcVersion(int *a, int *b) { *a = ${Math.floor(v / 10)}; *b = ${v % 10}; return 0; }`,
  cudnn: (v) => `#include <stddef.h>\nsize_t cudnnGetVersion(void) { return ${v}; }`,
  nvinfer: (v) => `int getInferLibVersion(void) { return ${v}; }`,
};

/** Compiles `body` into DIR/SONAME with that soname; extra linker arguments (-L, -l, -Wl,...) after the source. */
export function buildLib(dir: string, soname: string, body: string, extra: string[] = []): string {
  mkdirSync(dir, { recursive: true });
  const src = path.join(dir, `${soname}.c`);
  writeFileSync(src, `${body}\n`);
  const out = path.join(dir, soname);
  execFileSync('cc', ['-shared', '-fPIC', '-o', out, src, `-Wl,-soname,${soname}`, ...extra], { stdio: 'pipe' });
  return out;
}

/** Debian's CUDA 12.4 runtime set (trixie non-free) as stubs answering its versions: soname -> C body. */
export const DEBIAN_CUDA_12_4: [string, string][] = [
  ['libcudart.so.12', VERSION_C.cudart(12040)],
  ['libcublas.so.12', VERSION_C.cublas(120405)],
  ['libcublasLt.so.12', VERSION_C.cublasLt(120405)],
  ['libcurand.so.10', VERSION_C.curand(10305)],
  ['libcufft.so.11', VERSION_C.cufft(11201)],
  ['libnvrtc.so.12', VERSION_C.nvrtc(124)],
];

/** Stubs of a set in `dir`, leaving out the sonames in `without`. */
export function buildSet(dir: string, set: [string, string][], without: string[] = []): void {
  for (const [n, body] of set) if (!without.includes(n)) buildLib(dir, n, body);
}
