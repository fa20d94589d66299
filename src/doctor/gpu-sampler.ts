// Samples GPU utilisation and memory while a lab cell runs: NVML through koffi (device utilisation, memory used, and
// the memory each process holds), else a streaming nvidia-smi; "none" with the reason where neither answers.
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import koffi from '../runtime/koffi.js';
import { nvmlMemoryType, nvmlProcType, nvmlProcsFn } from './gpu.js';

export interface GpuSample {
  t: number;
  util: number;
  memUsedMiB: number;
  /** Memory held by the watched processes (NVML only). */
  procMiB: number | null;
}

export interface GpuSampling {
  source: 'nvml' | 'nvidia-smi' | 'none';
  reason: string | null;
  samples: GpuSample[];
}

interface Nvml {
  sample(pids: Set<number>): Omit<GpuSample, 't'>;
  close(): void;
}

// koffi type names are global: declared once per process (a second declaration throws)
type CType = ReturnType<typeof koffi.struct>;
let types: { Util: CType; Mem: CType; Proc: CType } | null = null;
function structs(): NonNullable<typeof types> {
  types ??= {
    Util: koffi.struct('gpenNvmlUtil', { gpu: 'unsigned int', memory: 'unsigned int' }),
    Mem: nvmlMemoryType(),
    Proc: nvmlProcType(),
  };
  return types;
}

function openNvml(file: string, deviceIndex: number): Nvml {
  const lib = koffi.load(file);
  const rc = lib.func('int nvmlInit_v2(void)')() as number;
  if (rc !== 0) throw new Error(`nvmlInit_v2 returned ${rc}`);
  const h: unknown[] = [null];
  if ((lib.func('int nvmlDeviceGetHandleByIndex_v2(unsigned int i, _Out_ void **h)')(deviceIndex, h) as number) !== 0)
    throw new Error(`no GPU ${deviceIndex}`);
  const { Util, Mem, Proc } = structs();
  const util = lib.func('nvmlDeviceGetUtilizationRates', 'int', ['void *', koffi.out(koffi.pointer(Util))]);
  const mem = lib.func('nvmlDeviceGetMemoryInfo', 'int', ['void *', koffi.out(koffi.pointer(Mem))]);
  const procs = nvmlProcsFn(lib);
  const buf = Buffer.alloc(koffi.sizeof(Proc) * 64);
  return {
    sample(pids) {
      const u: { gpu?: number }[] = [{}];
      const m: { used?: number | bigint }[] = [{}];
      util(h[0], u);
      mem(h[0], m);
      let procMiB: number | null = null;
      if (procs) {
        const n = [64];
        if (procs(h[0], n, buf) === 0) {
          procMiB = 0;
          for (let i = 0; i < n[0]; i++) {
            const p = koffi.decode(buf, i * koffi.sizeof(Proc), Proc) as {
              pid: number;
              usedGpuMemory: number | bigint;
            };
            if (pids.has(p.pid)) procMiB += Number(p.usedGpuMemory) / 2 ** 20;
          }
        }
      }
      return { util: u[0].gpu ?? 0, memUsedMiB: Number(m[0].used ?? 0) / 2 ** 20, procMiB };
    },
    close() {
      lib.func('int nvmlShutdown(void)')();
    },
  };
}

/** Starts sampling every `intervalMs`; `stop()` returns what was seen. `pids()` names the processes to count. */
export function startGpuSampler(opts: {
  intervalMs?: number;
  pids: () => Iterable<number>;
  nvmlPath?: string;
  smi?: string;
  deviceIndex?: number;
}): { stop(): GpuSampling } {
  const intervalMs = opts.intervalMs ?? 100;
  const samples: GpuSample[] = [];
  const t0 = Date.now();
  let nvml: Nvml | null = null;
  let reason: string | null = null;
  try {
    nvml = openNvml(opts.nvmlPath ?? 'libnvidia-ml.so.1', opts.deviceIndex ?? 0);
  } catch (e) {
    reason = `NVML (${opts.nvmlPath ?? 'libnvidia-ml.so.1'}): ${(e as Error).message}`;
  }
  if (nvml) {
    const n = nvml;
    const tick = () => samples.push({ t: Date.now() - t0, ...n.sample(new Set(opts.pids())) });
    tick();
    const timer = setInterval(tick, intervalMs);
    return {
      stop() {
        clearInterval(timer);
        tick();
        n.close();
        return { source: 'nvml', reason: null, samples };
      },
    };
  }
  let smi: ChildProcess | null = null;
  let smiError: string | null = null;
  let buffered = '';
  smi = spawn(
    opts.smi ?? 'nvidia-smi',
    [
      '--query-gpu=utilization.gpu,memory.used',
      '--format=csv,noheader,nounits',
      `-lms`,
      String(intervalMs),
      `--id=${opts.deviceIndex ?? 0}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  smi.on('error', (e) => {
    smiError = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'nvidia-smi not found' : e.message;
  });
  smi.stdout?.on('data', (d: Buffer) => {
    buffered += d.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const l of lines) {
      const [u, m] = l.split(',').map((x) => Number(x.trim()));
      if (Number.isFinite(u) && Number.isFinite(m))
        samples.push({ t: Date.now() - t0, util: u, memUsedMiB: m, procMiB: null });
    }
  });
  return {
    stop() {
      // only a child that started: killing one whose spawn failed (ENOENT) can reach kill(0, SIGKILL), which kills
      // this whole process group (seen in CI as the test runner and its shell dying with 137)
      if (smi?.pid !== undefined && smi.exitCode === null && smi.signalCode === null) smi.kill('SIGKILL');
      if (samples.length) return { source: 'nvidia-smi', reason: `${reason}; per-process memory needs NVML`, samples };
      return { source: 'none', reason: `${reason}; nvidia-smi: ${smiError ?? 'no samples'}`, samples };
    },
  };
}

/** What a lab cell records of its GPU use (results.json's `gpu`). */
export interface GpuSummary {
  source: GpuSampling['source'];
  reason: string | null;
  samples: number;
  utilMean: number | null;
  utilPeak: number | null;
  memUsedPeakMiB: number | null;
  /** Memory the cell's processes held, as the driver reports per process. */
  processPeakMiB: number | null;
}

export function summarizeGpu(s: GpuSampling): GpuSummary {
  if (!s.samples.length)
    return {
      source: s.source,
      reason: s.reason,
      samples: 0,
      utilMean: null,
      utilPeak: null,
      memUsedPeakMiB: null,
      processPeakMiB: null,
    };
  const u = s.samples.map((x) => x.util);
  const p = s.samples.map((x) => x.procMiB).filter((x): x is number => x !== null);
  return {
    source: s.source,
    reason: s.reason,
    samples: s.samples.length,
    utilMean: u.reduce((a, b) => a + b, 0) / u.length,
    utilPeak: Math.max(...u),
    memUsedPeakMiB: Math.max(...s.samples.map((x) => x.memUsedMiB)),
    processPeakMiB: p.length ? Math.max(...p) : null,
  };
}
