// A stub NVML (libnvidia-ml.so.1) built with cc, answering a chosen driver version, CUDA version and one GPU, so that
// the driver-dependent choices run through the real NVML reader without a GPU. On LD_LIBRARY_PATH it is what a child
// process's koffi.load('libnvidia-ml.so.1') opens.
import { buildLib } from './native.js';

export interface StubGpu {
  name: string;
  /** Compute capability, major and minor. */
  cc: [number, number];
}

export const H100: StubGpu = { name: 'NVIDIA H100 80GB HBM3', cc: [9, 0] };

/**
 * Builds DIR/libnvidia-ml.so.1 answering driver `driver` ("535.183.01") and cuDriverGetVersion-style `cuda`, with
 * `count` such GPUs; GPU 1 and later each run one other process (pid 4242 + index, 1024 MiB).
 */
export function buildNvmlStub(dir: string, driver: string, cuda: number, gpu: StubGpu = H100, count = 1): string {
  return buildLib(
    dir,
    'libnvidia-ml.so.1',
    `#include <string.h>
int nvmlInit_v2(void) { return 0; }
int nvmlShutdown(void) { return 0; }
int nvmlSystemGetDriverVersion(char *v, unsigned n) { strncpy(v, "${driver}", n); return 0; }
int nvmlSystemGetCudaDriverVersion_v2(int *v) { *v = ${cuda}; return 0; }
int nvmlDeviceGetCount_v2(unsigned *n) { *n = ${count}; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void **h) { if (i >= ${count}) return 2; *h = (void *)(0x10 + (unsigned long)i); return 0; }
typedef struct { unsigned pid; unsigned long long used; unsigned gi, ci; } P;
int nvmlDeviceGetComputeRunningProcesses_v3(void *h, unsigned *n, P *p) {
  unsigned i = (unsigned)((unsigned long)h - 0x10);
  if (i == 0) { *n = 0; return 0; }
  if (*n < 1) { *n = 1; return 7; }
  p[0].pid = 4242 + i; p[0].used = 1073741824ULL; p[0].gi = 0; p[0].ci = 0; *n = 1; return 0;
}
int nvmlDeviceGetName(void *h, char *s, unsigned n) { strncpy(s, "${gpu.name}", n); return 0; }
int nvmlDeviceGetCudaComputeCapability(void *h, int *a, int *b) { *a = ${gpu.cc[0]}; *b = ${gpu.cc[1]}; return 0; }
typedef struct { unsigned long long total, free, used; } M;
int nvmlDeviceGetMemoryInfo(void *h, M *m) { m->total = 85520809984ULL; m->used = (unsigned long)h == 0x10 ? 0 : 1073741824ULL; m->free = m->total - m->used; return 0; }`,
  );
}
