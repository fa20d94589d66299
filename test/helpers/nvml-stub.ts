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

/** Builds DIR/libnvidia-ml.so.1 answering driver `driver` ("535.183.01") and cuDriverGetVersion-style `cuda`. */
export function buildNvmlStub(dir: string, driver: string, cuda: number, gpu: StubGpu = H100): string {
  return buildLib(
    dir,
    'libnvidia-ml.so.1',
    `#include <string.h>
int nvmlInit_v2(void) { return 0; }
int nvmlShutdown(void) { return 0; }
int nvmlSystemGetDriverVersion(char *v, unsigned n) { strncpy(v, "${driver}", n); return 0; }
int nvmlSystemGetCudaDriverVersion_v2(int *v) { *v = ${cuda}; return 0; }
int nvmlDeviceGetCount_v2(unsigned *n) { *n = 1; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void **h) { *h = (void *)0x10; return 0; }
int nvmlDeviceGetName(void *h, char *s, unsigned n) { strncpy(s, "${gpu.name}", n); return 0; }
int nvmlDeviceGetCudaComputeCapability(void *h, int *a, int *b) { *a = ${gpu.cc[0]}; *b = ${gpu.cc[1]}; return 0; }
typedef struct { unsigned long long total, free, used; } M;
int nvmlDeviceGetMemoryInfo(void *h, M *m) { m->total = 85520809984ULL; m->free = 0; m->used = 0; return 0; }`,
  );
}
