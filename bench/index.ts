// `npm run bench`: the foundation's figures, each task in a fresh process. JSON to bench-results/, a summary to
// stderr. Targets (GPEN-512 build <= 10 s and <= 1.5 GB RSS on 2 cores) are checked here, never in timed tests.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultArch } from '../src/model/arch.js';
import { synthesizeGpen } from '../src/model/registry.js';
import { synthStateDict } from '../src/model/synth.js';
import { formatStats, timingStats } from '../src/metrics/stats.js';
import { runtimeVersion } from '../src/runtime/session.js';
import { saveStateDict } from '../test/helpers/pth-writer.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const SIZE = Number(process.env.BENCH_SIZE ?? 512);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const BUILD_REPEATS = Number(process.env.BENCH_BUILD_REPEATS ?? 3);
const TARGET = { buildMs: 10_000, buildRssMb: 1536 };

function worker<T>(...args: string[]): T {
  const out = execFileSync(process.execPath, ['--import', 'tsx', 'bench/worker.ts', ...args], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
  return JSON.parse(out.trim().split('\n').pop()!) as T;
}
const log = (s: string) => process.stderr.write(s + '\n');

const tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-bench-'));
try {
  const results: Record<string, unknown> = {};
  type Build = { ms: number; maxRssMb: number };
  const builds = (label: string, ...args: string[]) => {
    const runs: Build[] = [];
    for (let i = 0; i < BUILD_REPEATS; i++) runs.push(worker<Build>(...args));
    const s = timingStats(runs.map((r) => r.ms));
    const rss = Math.max(...runs.map((r) => r.maxRssMb));
    const pass = s.max <= TARGET.buildMs && rss <= TARGET.buildRssMb;
    log(`${label}: ${formatStats(s)}; peak RSS ${rss.toFixed(0)} MB ${pass ? '(within target)' : '(OVER TARGET)'}`);
    return { time: s, peakRssMb: rss, runs, target: TARGET, pass };
  };

  log(`GPEN-${SIZE}, ${os.cpus().length} cores, onnxruntime-node ${runtimeVersion()}`);
  results.buildSynthetic = {
    fp32: builds(`build synthetic GPEN-${SIZE} fp32`, 'build-synthetic', String(SIZE), 'fp32'),
    fp16: builds(`build synthetic GPEN-${SIZE} fp16`, 'build-synthetic', String(SIZE), 'fp16'),
  };

  const pth = path.join(tmp, `gpen-${SIZE}.pth`);
  writeFileSync(pth, saveStateDict(synthStateDict(defaultArch(SIZE), 0), { format: 'zip' }));
  results.buildFromPth = {
    fp32: builds(`convert GPEN-${SIZE} .pth -> .onnx fp32`, 'build-pth', pth, path.join(tmp, 'out.onnx'), 'fp32'),
  };

  const onnxFile = path.join(tmp, `gpen-${SIZE}.onnx`);
  writeFileSync(onnxFile, synthesizeGpen(SIZE, 0, 'fp32').bytes);
  type Run = { createMs: number; firstRunMs: number; times: number[]; maxRssMb: number };
  const run = worker<Run>('cpu-run', onnxFile, String(SIZE), String(RUNS));
  const rs = timingStats(run.times);
  log(
    `CPU run GPEN-${SIZE} b1: ${formatStats(rs)}; session ${run.createMs.toFixed(0)} ms, first run ${run.firstRunMs.toFixed(0)} ms, peak RSS ${run.maxRssMb.toFixed(0)} MB`,
  );
  results.cpuRun = {
    batch: 1,
    sessionCreateMs: run.createMs,
    firstRunMs: run.firstRunMs,
    time: rs,
    peakRssMb: run.maxRssMb,
  };

  const report = {
    schema: 'gpen-lab.bench-foundation/1',
    date: new Date().toISOString(),
    size: SIZE,
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      memGb: os.totalmem() / 2 ** 30,
      node: process.version,
      onnxruntime: runtimeVersion(),
    },
    synthetic: true,
    ...results,
  };
  mkdirSync(path.join(root, 'bench-results'), { recursive: true });
  const file = path.join(root, 'bench-results', `foundation-${SIZE}.json`);
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
  process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  log(`wrote ${file}`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
