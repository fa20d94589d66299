// `gpen-lab bench --isolate`: each C API variant in a process of its own (bench-child.ts), so that its GPU memory
// counts alone and a crash or a hang is recorded as that variant's failure.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { nodeScriptArgs } from '../io/node-script.js';
import type { Precision } from '../model/gpen-graph.js';
import type { BenchOptions, BenchVariant } from './bench-report.js';
import { unmeasured } from './bench-report.js';

/** A line without its terminal colours (ONNX Runtime colours its own log lines). */
// eslint-disable-next-line no-control-regex
const plain = (l: string): string => l.replace(/\x1b\[[0-9;]*m/g, '');

/** What bench-child.ts is asked: one C API variant, its result written to `out`. */
export interface IsolatedJob {
  options: Omit<BenchOptions, 'onProgress'>;
  cudaOptions: Record<string, string>;
  precision: Precision;
  out: string;
}

/** How a variant's process ended, for its record when it wrote no result. */
export interface ChildEnd {
  code: number | null;
  signal: string | null;
  stderrTail: string;
  spawnError?: string;
  timedOutMs?: number;
}

/** The variant a process of its own wrote, or, where it wrote none, a failed variant saying how the process ended. */
export function isolatedResult(
  written: string | null,
  cudaOptions: Record<string, string>,
  precision: Precision,
  end: ChildEnd,
): BenchVariant {
  if (written !== null) {
    try {
      return { ...(JSON.parse(written) as BenchVariant), isolated: true };
    } catch {
      /* a torn file: reported below */
    }
  }
  const ended =
    end.timedOutMs !== undefined
      ? `was still running after ${end.timedOutMs / 1000} s and was killed`
      : end.signal
        ? `was killed by ${end.signal}`
        : `exited with code ${end.code}`;
  const what = written === null ? 'before writing its result' : 'and its result could not be read';
  const how = end.spawnError ?? `${ended} ${what}`;
  const last = plain(end.stderrTail)
    .trim()
    .split('\n')
    .filter((l) => l.trim() && !l.includes('W:onnxruntime'))
    .slice(-3)
    .join(' | ');
  return {
    provider: 'cuda',
    route: 'capi',
    capiOptions: cudaOptions,
    precision,
    ok: false,
    isolated: true,
    error: `the variant's process ${how}${last ? ` (last lines: ${last})` : ''}`,
    ...unmeasured(),
  };
}

/** capiVariant in a new process (bench-child.ts), its progress lines passed on as they come. */
export async function isolatedVariant(
  o: BenchOptions,
  cudaOptions: Record<string, string>,
  precision: Precision,
  log: (l: string) => void,
): Promise<BenchVariant> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gpen-bench-variant-'));
  try {
    const { onProgress: _drop, ...options } = o;
    const job: IsolatedJob = { options, cudaOptions, precision, out: path.join(dir, 'variant.json') };
    const jobFile = path.join(dir, 'job.json');
    writeFileSync(jobFile, JSON.stringify(job));
    const end = await new Promise<ChildEnd>((resolve) => {
      const args = [...nodeScriptArgs(import.meta.url, 'bench-child'), jobFile];
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let tail = '';
      let partial = '';
      child.stderr.on('data', (d: Buffer) => {
        const text = partial + d.toString();
        const lines = text.split('\n');
        partial = lines.pop() ?? '';
        for (const l of lines.map(plain)) if (l.trim() && !l.includes('W:onnxruntime')) log(l);
        tail = (tail + d.toString()).slice(-16 * 1024);
      });
      let settled = false;
      let timedOut = false;
      const limit = o.isolateTimeoutMs ?? 20 * 60_000;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, limit);
      const finish = (e: ChildEnd) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(timedOut ? { ...e, timedOutMs: limit } : e);
      };
      child.on('error', (e) =>
        finish({ code: null, signal: null, stderrTail: tail, spawnError: `could not start (${e.message})` }),
      );
      child.on('close', (code, signal) => {
        if (plain(partial).trim() && !partial.includes('W:onnxruntime')) log(plain(partial));
        finish({ code, signal, stderrTail: tail });
      });
    });
    const written = existsSync(job.out) ? readFileSync(job.out, 'utf8') : null;
    const v = isolatedResult(written, cudaOptions, precision, end);
    if (!v.ok && written === null) {
      const set = Object.entries(cudaOptions)
        .map(([k, x]) => `${k}=${x}`)
        .join(',');
      log(`cuda (C API ${set}) ${precision}: ${v.error}`);
    }
    return v;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
