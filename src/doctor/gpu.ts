// GPUs and the driver without Python: NVML (libnvidia-ml.so.1) through koffi, else the CUDA driver API (libcuda.so.1),
// else nvidia-smi; the source that answered and why the others did not are part of the report.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import koffi from '../runtime/koffi.js';
import { driverMinimumFor } from './requirements.js';
import type { GpuDevice, GpuReport } from './types.js';

export function formatCudaVersion(n: number): string {
  return `${Math.floor(n / 1000)}.${Math.floor((n % 1000) / 10)}`;
}

const cmp = (a: string, b: string): number => {
  const x = a.split('.').map(Number),
    y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++)
    if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
  return 0;
};

export function driverSupportsCuda(driverVersion: string, cudaMajor: number): boolean {
  const min = driverMinimumFor(cudaMajor);
  return min ? cmp(driverVersion, min) >= 0 : false;
}

/**
 * The newest CUDA a Linux driver supports (NVIDIA's toolkit/driver table, by the driver branch: 525 -> 12.0,
 * 530 -> 12.1, 535 -> 12.2, 545 -> 12.3, 550 -> 12.4, 555 -> 12.5, 560 -> 12.6, 565 -> 12.7, 570 -> 12.8,
 * 575 -> 12.9, 580 -> 13.0).
 */
const DRIVER_CUDA: [number, string][] = [
  [580, '13.0'],
  [575, '12.9'],
  [570, '12.8'],
  [565, '12.7'],
  [560, '12.6'],
  [555, '12.5'],
  [550, '12.4'],
  [545, '12.3'],
  [535, '12.2'],
  [530, '12.1'],
  [525, '12.0'],
  [520, '11.8'],
  [515, '11.7'],
  [510, '11.6'],
  [495, '11.5'],
  [470, '11.4'],
  [465, '11.3'],
  [460, '11.2'],
  [455, '11.1'],
  [450, '11.0'],
];

export function maxCudaForDriver(driverVersion: string): string {
  const branch = Number(driverVersion.split('.')[0]);
  for (const [b, v] of DRIVER_CUDA) if (branch >= b) return v;
  return '10.2';
}

/** The oldest driver branch that runs CUDA `version` ("12.2" -> 535), null when the table does not reach it. */
export function driverBranchFor(version: string): number | null {
  const fits = DRIVER_CUDA.filter(([, v]) => cmp(v, version) >= 0);
  return fits.length ? fits[fits.length - 1][0] : null;
}

/** nvidia-smi --query-gpu=index,name,compute_cap,memory.total,driver_version --format=csv,noheader,nounits */
export function parseSmiCsv(text: string): GpuDevice[] {
  return text
    .trim()
    .split('\n')
    .filter((l) => l.includes(','))
    .map((l) => {
      const [index, name, cc, mem] = l.split(',').map((s) => s.trim());
      return {
        index: Number(index),
        name,
        computeCapability: /^\d+\.\d+$/.test(cc) ? cc : null,
        memoryTotalMiB: Number.isFinite(Number(mem)) ? Number(mem) : null,
      };
    });
}

let memType: ReturnType<typeof koffi.struct> | null = null;
/** nvmlMemory_t, declared once per process (koffi type names are global; a second declaration throws). */
export function nvmlMemoryType(): ReturnType<typeof koffi.struct> {
  memType ??= koffi.struct('nvmlMemory_t', {
    total: 'unsigned long long',
    free: 'unsigned long long',
    used: 'unsigned long long',
  });
  return memType;
}

let procType: ReturnType<typeof koffi.struct> | null = null;
/** nvmlProcessInfo_t (the v2/v3 layout): pid, usedGpuMemory, gpuInstanceId, computeInstanceId. */
export function nvmlProcType(): ReturnType<typeof koffi.struct> {
  procType ??= koffi.struct('gpenNvmlProc', {
    pid: 'unsigned int',
    usedGpuMemory: 'unsigned long long',
    gpuInstanceId: 'unsigned int',
    computeInstanceId: 'unsigned int',
  });
  return procType;
}

/** nvmlDeviceGetComputeRunningProcesses_v3 of an opened NVML, or null for a driver without it. */
export function nvmlProcsFn(lib: ReturnType<typeof koffi.load>): ((...args: unknown[]) => unknown) | null {
  try {
    return lib.func('nvmlDeviceGetComputeRunningProcesses_v3', 'int', [
      'void *',
      koffi.inout(koffi.pointer('unsigned int')),
      'void *',
    ]);
  } catch {
    return null;
  }
}

/** A process's name (/proc/PID/comm), or null where it is not visible here (another container's). */
function commOf(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() || null;
  } catch {
    return null;
  }
}

function loadError(lib: string, e: unknown): string {
  return `${lib}: ${(e as Error).message}`;
}

function viaNvml(file: string): Omit<GpuReport, 'source' | 'tried'> {
  const lib = koffi.load(file);
  const init = lib.func('int nvmlInit_v2(void)');
  const rc = init() as number;
  if (rc !== 0) throw new Error(`nvmlInit_v2 returned ${rc}${rc === 9 ? ' (driver not loaded)' : ''}`);
  try {
    const buf = Buffer.alloc(96);
    lib.func('int nvmlSystemGetDriverVersion(_Out_ uint8_t *v, unsigned int n)')(buf, 96);
    const driver = buf.toString('latin1', 0, buf.indexOf(0));
    const cv = [0];
    lib.func('int nvmlSystemGetCudaDriverVersion_v2(_Out_ int *v)')(cv);
    const count = [0];
    lib.func('int nvmlDeviceGetCount_v2(_Out_ unsigned int *n)')(count);
    const getHandle = lib.func('int nvmlDeviceGetHandleByIndex_v2(unsigned int i, _Out_ void **h)');
    const getName = lib.func('int nvmlDeviceGetName(void *h, _Out_ uint8_t *name, unsigned int n)');
    const getCc = lib.func('int nvmlDeviceGetCudaComputeCapability(void *h, _Out_ int *major, _Out_ int *minor)');
    const Mem = nvmlMemoryType();
    const getMem = lib.func('nvmlDeviceGetMemoryInfo', 'int', ['void *', koffi.out(koffi.pointer(Mem))]);
    const Proc = nvmlProcType();
    const getProcs = nvmlProcsFn(lib);
    const procBuf = Buffer.alloc(koffi.sizeof(Proc) * 64);
    const devices: GpuDevice[] = [];
    for (let i = 0; i < count[0]; i++) {
      const h: unknown[] = [null];
      if (getHandle(i, h) !== 0) continue;
      const nb = Buffer.alloc(96);
      getName(h[0], nb, 96);
      const a = [0],
        b = [0];
      const okCc = getCc(h[0], a, b) === 0;
      const m: { total?: number | bigint; used?: number | bigint }[] = [{}];
      const okMem = getMem(h[0], m) === 0;
      let processes: GpuDevice['processes'] = null;
      const n = [64];
      if (getProcs && getProcs(h[0], n, procBuf) === 0) {
        processes = [];
        for (let k = 0; k < n[0]; k++) {
          const p = koffi.decode(procBuf, k * koffi.sizeof(Proc), Proc) as {
            pid: number;
            usedGpuMemory: number | bigint;
          };
          processes.push({
            pid: p.pid,
            usedMiB: Math.round(Number(p.usedGpuMemory) / 2 ** 20),
            command: commOf(p.pid),
          });
        }
      }
      devices.push({
        index: i,
        name: nb.toString('latin1', 0, nb.indexOf(0)),
        computeCapability: okCc ? `${a[0]}.${b[0]}` : null,
        memoryTotalMiB: okMem && m[0].total !== undefined ? Math.round(Number(m[0].total) / 2 ** 20) : null,
        memoryUsedMiB: okMem && m[0].used !== undefined ? Math.round(Number(m[0].used) / 2 ** 20) : null,
        processes,
      });
    }
    return { driverVersion: driver || null, cudaDriverVersion: cv[0] ? formatCudaVersion(cv[0]) : null, devices };
  } finally {
    lib.func('int nvmlShutdown(void)')();
  }
}

function viaCudaDriver(file: string): Omit<GpuReport, 'source' | 'tried'> {
  const lib = koffi.load(file);
  const rc = lib.func('int cuInit(unsigned int flags)')(0) as number;
  const v = [0];
  lib.func('int cuDriverGetVersion(_Out_ int *v)')(v);
  if (rc !== 0)
    throw new Error(
      `cuInit returned ${rc}${rc === 100 ? ' (CUDA_ERROR_NO_DEVICE)' : rc === 35 ? ' (CUDA_ERROR_INSUFFICIENT_DRIVER)' : ''}; the driver supports CUDA ${formatCudaVersion(v[0])}`,
    );
  const n = [0];
  lib.func('int cuDeviceGetCount(_Out_ int *n)')(n);
  const get = lib.func('int cuDeviceGet(_Out_ int *d, int ordinal)');
  const name = lib.func('int cuDeviceGetName(_Out_ uint8_t *name, int len, int dev)');
  const attr = lib.func('int cuDeviceGetAttribute(_Out_ int *v, int attrib, int dev)');
  const mem = lib.func('int cuDeviceTotalMem_v2(_Out_ size_t *bytes, int dev)');
  const devices: GpuDevice[] = [];
  for (let i = 0; i < n[0]; i++) {
    const d = [0];
    get(d, i);
    const nb = Buffer.alloc(96);
    name(nb, 96, d[0]);
    const a = [0],
      b = [0],
      t = [0];
    attr(a, 75, d[0]);
    attr(b, 76, d[0]);
    mem(t, d[0]);
    devices.push({
      index: i,
      name: nb.toString('latin1', 0, nb.indexOf(0)),
      computeCapability: `${a[0]}.${b[0]}`,
      memoryTotalMiB: Math.round(Number(t[0]) / 2 ** 20),
    });
  }
  return { driverVersion: null, cudaDriverVersion: formatCudaVersion(v[0]), devices };
}

function viaSmi(smi: string): Omit<GpuReport, 'source' | 'tried'> {
  const q = spawnSync(
    smi,
    ['--query-gpu=index,name,compute_cap,memory.total,driver_version', '--format=csv,noheader,nounits'],
    { encoding: 'utf8', timeout: 20_000 },
  );
  if (q.error)
    throw new Error(`${smi}: ${(q.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : q.error.message}`);
  if (q.status !== 0) throw new Error(`${smi} exited ${q.status}: ${(q.stdout + q.stderr).trim().split('\n')[0]}`);
  const devices = parseSmiCsv(q.stdout);
  const driver = q.stdout.trim().split('\n')[0]?.split(',')[4]?.trim() ?? null;
  const plain = spawnSync(smi, [], { encoding: 'utf8', timeout: 20_000 });
  const cuda = /CUDA Version:\s*([\d.]+)/.exec(plain.stdout ?? '');
  return { driverVersion: driver, cudaDriverVersion: cuda ? cuda[1] : null, devices };
}

export async function readGpus(opts: { nvmlPath?: string; cudaPath?: string; smi?: string } = {}): Promise<GpuReport> {
  const tried: GpuReport['tried'] = [];
  const sources: [GpuReport['source'], () => Omit<GpuReport, 'source' | 'tried'>, string][] = [
    ['nvml', () => viaNvml(opts.nvmlPath ?? 'libnvidia-ml.so.1'), opts.nvmlPath ?? 'libnvidia-ml.so.1'],
    ['cuda-driver', () => viaCudaDriver(opts.cudaPath ?? 'libcuda.so.1'), opts.cudaPath ?? 'libcuda.so.1'],
    ['nvidia-smi', () => viaSmi(opts.smi ?? 'nvidia-smi'), opts.smi ?? 'nvidia-smi'],
  ];
  for (const [source, run, what] of sources) {
    try {
      const r = run();
      tried.push({ source, ok: true });
      // the driver version when the answering source lacks it (the CUDA driver API does not say it)
      return { source, tried, ...r };
    } catch (e) {
      tried.push({ source, ok: false, error: source === 'nvidia-smi' ? (e as Error).message : loadError(what, e) });
    }
  }
  return { source: 'none', tried, driverVersion: null, cudaDriverVersion: null, devices: [] };
}
