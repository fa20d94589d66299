// Runs a lab: each cell's runs in fresh processes (timeout, crash and hang recorded with the stage reached and the
// tail of stderr), the doctor's library report for the cell's environment, GPU sampling, output agreement; results
// written after every cell so that --resume continues without re-running a completed cell.
import { stripVTControlCharacters } from 'node:util';
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GpenLabError, errorMessage } from '../errors.js';
import { runDoctor } from '../doctor/index.js';
import { REQUIRED_CUDA_MAJOR, driverMinimumFor } from '../doctor/requirements.js';
import { diagnose } from '../doctor/signatures.js';
import { startGpuSampler, summarizeGpu } from '../doctor/gpu-sampler.js';
import { readGpus } from '../doctor/gpu.js';
import { readSystem } from '../doctor/system.js';
import type { RouteChoice } from '../runtime/routes.js';
import type { RestoreResult } from '../face/restore.js';
import { makeDirs, writeFileAtomicSafe } from '../io/files.js';
import { nodeScriptArgs } from '../io/node-script.js';
import { clampRegion, crop, psnr, ssim } from '../metrics/quality.js';
import { timingStats } from '../metrics/stats.js';
import { prepareModel } from '../model/registry.js';
import { PROVIDER_SPECS } from '../runtime/providers.js';
import { inputsOf, modelSpecOf } from './config.js';
import type { CellJob, CellResult, CellSpec, LabConfig, LabResults, OutputAgreement, RunRecord } from './types.js';
import { RESULTS_SCHEMA } from './types.js';
import { LOSSLESS_DB, SLOW_RATIO, cellPassed } from './verdicts.js';
import { writeReport } from './report.js';
import { analyse, readResults, rgbOf } from './analyse.js';

export { LOSSLESS_DB, SLOW_RATIO, cellPassed };
export { analyse, readResults, recommend } from './analyse.js';

const TAIL = 4000;

export interface LabOptions {
  out: string;
  resume?: boolean;
  /** Progress: one line per step (the CLI shows a bar on a TTY). */
  onProgress?: (e: { cell: string; index: number; total: number; line: string }) => void;
}

/** Expands $NAME and ${NAME} from the lab's own environment, so a cell can say "/opt/cuda12/lib:$LD_LIBRARY_PATH". */
export function expandVars(vars: Record<string, string>, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(vars))
    out[k] = v.replace(/\$\{(\w+)\}|\$(\w+)/g, (_m, a: string, b: string) => env[a ?? b] ?? '').replace(/^:+|:+$/g, '');
  return out;
}

interface ChildOutcome {
  events: (Record<string, unknown> & { ev: string; recvAt: number })[];
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  stderrTail: string;
  spawnAt: number;
  pid: number | null;
}

/** The cells' processes running now (each the leader of its process group). */
const live = new Set<number>();

/**
 * Ends every cell process still running, with its process group (the lab's SIGTERM and SIGINT: cells die with the
 * lab). results.json holds every cell finished so far, written after each.
 */
export function stopCells(): void {
  for (const pid of live) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}

function runChild(
  jobFile: string,
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
  pids: Set<number>,
): Promise<ChildOutcome> {
  return new Promise((resolve) => {
    const spawnAt = Date.now();
    // a process group of its own: stopCells ends the cell with whatever it started
    const child = spawn(process.execPath, [...nodeScriptArgs(import.meta.url, 'cell-child'), jobFile], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    if (child.pid) {
      pids.add(child.pid);
      live.add(child.pid);
    }
    const events: ChildOutcome['events'] = [];
    let buf = '';
    let err = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const l of lines) {
        if (!l.startsWith('@@lab ')) continue;
        try {
          events.push({ ...(JSON.parse(l.slice(6)) as { ev: string }), recvAt: Date.now() });
        } catch {
          /* a torn line from a dying process */
        }
      }
    });
    child.stderr.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-64 * 1024);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutMs);
    let settled = false;
    const finish = (code: number | null, signal: string | null, spawnError?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (child.pid) {
        pids.delete(child.pid);
        live.delete(child.pid);
      }
      const tail = (spawnError ? `${spawnError}\n` : '') + stripVTControlCharacters(err).trim().slice(-TAIL);
      resolve({ events, exitCode: code, signal, timedOut, stderrTail: tail, spawnAt, pid: child.pid ?? null });
    };
    child.on('error', (e) => finish(null, null, `could not start ${process.execPath}: ${e.message}`));
    child.on('close', (code, signal) => finish(code, signal));
  });
}

const STAGE_OF_EVENT: Record<string, string> = {
  ready: 'startup',
  module: 'inference',
  session: 'inference',
  restore: 'output',
  output: 'warm',
  done: 'done',
};

function toRunRecord(run: number, o: ChildOutcome, timeoutMs: number): RunRecord {
  const ev = (name: string) => o.events.find((e) => e.ev === name);
  const last = o.events.filter((e) => e.ev !== 'error' && e.ev !== 'warm').at(-1);
  const error = ev('error') as { stage?: string; code?: string; message?: string; fix?: string | null } | undefined;
  let stage = last ? (STAGE_OF_EVENT[last.ev] ?? 'warm') : 'startup';
  if (error?.stage) stage = error.stage;
  const stages: Record<string, number> = {};
  const ready = ev('ready') as { at?: number } | undefined;
  if (ready?.at) stages.spawn = ready.at - o.spawnAt;
  const mod = ev('module') as { ms?: number } | undefined;
  if (mod?.ms !== undefined) stages.module = mod.ms;
  const ses = ev('session') as { parts?: { model: number; session: number; detector: number } } | undefined;
  if (ses?.parts)
    Object.assign(stages, { model: ses.parts.model, session: ses.parts.session, detector: ses.parts.detector });
  const res = ev('restore') as { results?: RestoreResult[] } | undefined;
  for (const r of res?.results ?? [])
    for (const [k, v] of Object.entries(r.stages_ms)) stages[k === 'infer' ? 'infer' : k] = (stages[k] ?? 0) + v;
  const out = ev('output');
  const done = ev('done') as { maxRssMiB?: number } | undefined;
  const ok = !!done && o.exitCode === 0 && !o.timedOut;
  let why: string | null = null;
  if (o.timedOut) why = `timed out after ${timeoutMs / 1000} s at stage ${stage}`;
  else if (error) why = `${error.code ?? 'error'}: ${error.message ?? ''}${error.fix ? ` (fix: ${error.fix})` : ''}`;
  else if (o.signal) why = `the process was killed by ${o.signal} at stage ${stage}`;
  else if (!ok) why = `the process exited ${o.exitCode} at stage ${stage} without a result`;
  return {
    run,
    ok,
    stage: ok ? 'done' : stage,
    exitCode: o.exitCode,
    signal: o.signal,
    timedOut: o.timedOut,
    error: why,
    stderrTail: ok ? '' : o.stderrTail,
    stages_ms: stages,
    total_ms: out ? out.recvAt - o.spawnAt : null,
    maxRssMiB: done?.maxRssMiB ?? null,
  };
}

function statsOf(records: { stages_ms: Record<string, number>; total_ms: number | null }[]): CellResult['cold'] {
  const totals = records.map((r) => r.total_ms).filter((x): x is number => x !== null);
  const keys = [...new Set(records.flatMap((r) => Object.keys(r.stages_ms)))];
  const stages: CellResult['cold']['stages'] = {};
  for (const k of keys) {
    const xs = records.map((r) => r.stages_ms[k]).filter((x): x is number => x !== undefined);
    if (xs.length) stages[k] = timingStats(xs);
  }
  return { total: totals.length ? timingStats(totals) : null, stages };
}

async function agreementVsInput(results: RestoreResult[]): Promise<OutputAgreement[]> {
  const out: OutputAgreement[] = [];
  for (const r of results) {
    if (!r.outputs.gpen) continue;
    const [a, b] = [await rgbOf(r.input), await rgbOf(r.outputs.gpen)];
    let fp = 0,
      fs = 0,
      n = 0;
    for (const f of r.faces) {
      const reg = clampRegion(
        { x: f.box[0], y: f.box[1], width: f.box[2] - f.box[0], height: f.box[3] - f.box[1] },
        a.width,
        a.height,
      );
      if (!reg) continue;
      const [ca, cb] = [crop(a, reg), crop(b, reg)];
      fp += Math.min(psnr(ca, cb), 100);
      fs += ssim(ca, cb);
      n++;
    }
    out.push({
      input: r.input,
      output: r.outputs.gpen,
      psnr: Math.min(psnr(a, b), 100),
      ssim: ssim(a, b),
      facePsnr: n ? fp / n : null,
      faceSsim: n ? fs / n : null,
    });
  }
  return out;
}

const mean = (xs: number[]): number | null => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

function emptyCell(c: CellSpec, cfg: LabConfig): CellResult {
  return {
    id: c.id,
    status: 'running',
    env: {
      provider: c.provider,
      route: c.route,
      precision: c.precision,
      session: c.session ?? {},
      vars: c.env ?? {},
      launcher: c.launcher?.type ?? 'local',
      inputs: inputsOf(cfg, c),
    },
    stages: { startup: null, dependencies: null, inference: null, output: null },
    provider: { asked: c.provider, ran: null, knownByBinary: null },
    runs: [],
    cold: { total: null, stages: {} },
    warm: { total: null, stages: {} },
    gpu: {
      source: 'none',
      reason: 'not sampled',
      samples: 0,
      utilMean: null,
      utilPeak: null,
      memUsedPeakMiB: null,
      processPeakMiB: null,
    },
    output: {
      vsInput: [],
      psnr: null,
      ssim: null,
      deltaDbVsReference: null,
      visuallyLossless: null,
      vsReference: null,
    },
    doctor: null,
    restore: null,
    flags: [],
    finishedAt: null,
  };
}

async function runCell(
  c: CellSpec,
  cfg: LabConfig,
  out: string,
  gpuPresent: string | null,
  progress: (line: string) => void,
): Promise<CellResult> {
  const r = emptyCell(c, cfg);
  const vars = expandVars(c.env ?? {});
  const found: Record<string, string[]> = {};
  let gpuInfo: { driverVersion: string | null; cudaDriverVersion: string | null } | null = null;
  const env = { ...process.env, ...vars };
  // dependencies: the doctor's static report for this environment (the try-load is the cell itself)
  if (c.provider === 'cpu') {
    r.stages.dependencies = {
      ok: true,
      reason: 'the CPU provider is inside libonnxruntime.so.1: nothing else to load',
    };
  } else {
    const d = await runDoctor({ providers: [c.provider], probe: false, env });
    const p = d.providers[0];
    for (const l of p.libraries) {
      const dirs = l.candidates.filter((k) => k.matches).map((k) => path.dirname(k.path));
      if (dirs.length) found[l.soname] = dirs;
    }
    gpuInfo = d.gpu;
    r.doctor = {
      verdict: p.verdict,
      findings: [...d.findings, ...p.findings],
      libraries: p.libraries.map((l) => ({ soname: l.soname, path: l.path, version: l.version })),
    };
    const fail = p.findings.find((f) => f.verdict === 'fail');
    r.stages.dependencies = fail
      ? { ok: false, reason: `${fail.message}${fail.fix ? ` (fix: ${fail.fix})` : ''}` }
      : { ok: true, reason: `${p.libraries.filter((l) => l.path).length} of ${p.libraries.length} libraries resolved` };
  }
  const cellDir = path.join(out, 'cells', c.id);
  await makeDirs(cellDir);
  const pids = new Set<number>();
  const sampler = gpuPresent === null && c.provider !== 'cpu' ? startGpuSampler({ pids: () => pids }) : null;
  const timeoutMs = cfg.timeoutSec * 1000;
  const warmRecords: { stages_ms: Record<string, number>; total_ms: number | null }[] = [];
  for (let i = 0; i < cfg.coldRuns; i++) {
    const last = i === cfg.coldRuns - 1;
    const job: CellJob = {
      cellId: c.id,
      run: i,
      provider: c.provider,
      route: c.route,
      precision: c.precision,
      ...(c.session ? { session: c.session } : {}),
      ...(c.batch ? { batch: c.batch } : {}),
      model: modelSpecOf(cfg.model, path.join(out, '.cache')),
      inputs: inputsOf(cfg, c),
      outDir: cellDir,
      warmRuns: last ? cfg.warmRuns : 0,
    };
    const jobFile = path.join(cellDir, `job-${i}.json`);
    writeFileSync(jobFile, JSON.stringify(job));
    progress(`run ${i + 1}/${cfg.coldRuns}${last && cfg.warmRuns ? ` (+${cfg.warmRuns} warm)` : ''}`);
    const o = await runChild(jobFile, env, timeoutMs, pids);
    const rec = toRunRecord(i, o, timeoutMs);
    r.runs.push(rec);
    const mod = o.events.find((e) => e.ev === 'module') as { providers?: string[] } | undefined;
    if (mod?.providers) r.provider.knownByBinary = mod.providers;
    const res = o.events.find((e) => e.ev === 'restore') as { results?: RestoreResult[] } | undefined;
    if (res?.results?.[0]) {
      r.restore = res.results[0];
      r.provider.ran = res.results[0].provider.ran;
    }
    const ws = o.events.find((e) => e.ev === 'warm-session') as { route?: RouteChoice } | undefined;
    if (ws?.route) r.warmRoute = ws.route;
    for (const w of o.events.filter((e) => e.ev === 'warm') as unknown as {
      ms: number;
      stages: Record<string, number>[];
    }[]) {
      const st: Record<string, number> = {};
      for (const s of w.stages) for (const [k, v] of Object.entries(s)) st[k] = (st[k] ?? 0) + v;
      warmRecords.push({ stages_ms: st, total_ms: w.ms });
    }
    progress(
      rec.ok
        ? `run ${i + 1}: ${((rec.total_ms ?? 0) / 1000).toFixed(2)} s to the first image`
        : `run ${i + 1} failed at ${rec.stage}: ${rec.error}`,
    );
    if (!rec.ok) break; // a failing environment fails the same way again
  }
  // the failure's own words matched against the doctor's known signatures: cause and fix
  const failedRun = r.runs.find((x) => !x.ok);
  if (failedRun) {
    const text = `${failedRun.error ?? ''}\n${failedRun.stderrTail}`;
    const diag = diagnose(text, {
      provider: c.provider,
      found,
      driverVersion: gpuInfo?.driverVersion ?? null,
      cudaDriverVersion: gpuInfo?.cudaDriverVersion ?? null,
      requiredCudaMajor: REQUIRED_CUDA_MAJOR,
      driverMinimum: driverMinimumFor(REQUIRED_CUDA_MAJOR),
    }).filter((f) => !(r.doctor?.findings ?? []).some((x) => x.id === f.id));
    if (diag.length) {
      r.doctor ??= { verdict: 'fail', findings: [], libraries: [] };
      r.doctor.findings.unshift(...diag);
    }
  }
  if (sampler) r.gpu = summarizeGpu(sampler.stop());
  else r.gpu = { ...r.gpu, reason: c.provider === 'cpu' ? 'cpu cell' : `no GPU: ${gpuPresent}` };
  const first = r.runs[0];
  const reached = (s: string) =>
    ['startup', 'inference', 'output', 'warm', 'done'].indexOf(first.stage) >
    ['startup', 'inference', 'output', 'warm', 'done'].indexOf(s);
  r.stages.startup =
    reached('startup') || first.ok
      ? { ok: true, reason: `onnxruntime-node loaded; the binary knows ${r.provider.knownByBinary?.join(', ') ?? '?'}` }
      : { ok: false, reason: first.error };
  r.stages.inference =
    reached('inference') || first.ok
      ? { ok: true, reason: `asked ${c.provider}, ran ${r.provider.ran?.join(' + ') ?? '?'}` }
      : r.stages.startup.ok
        ? { ok: false, reason: first.error }
        : null;
  r.stages.output =
    reached('output') || first.ok
      ? { ok: true, reason: 'written and decoded back' }
      : r.stages.inference?.ok
        ? { ok: false, reason: first.error }
        : null;
  if (r.provider.ran && r.provider.ran.some((p) => p !== c.provider)) {
    r.flags.push(
      `asked for ${c.provider}, but ${r.provider.ran.filter((p) => p !== c.provider).join(', ')} ran some nodes`,
    );
  }
  if (r.doctor && !r.stages.dependencies?.ok && r.stages.inference?.ok)
    r.flags.push('ran although the doctor found a dependency problem');
  const passed = r.runs.filter((x) => x.ok);
  r.cold = statsOf(passed.length ? passed : r.runs.filter((x) => x.total_ms !== null));
  r.warm = statsOf(warmRecords);
  if (r.stages.output?.ok && r.restore) {
    r.output.vsInput = await agreementVsInput([r.restore]);
    r.output.psnr = mean(r.output.vsInput.map((x) => x.psnr));
    r.output.ssim = mean(r.output.vsInput.map((x) => x.ssim));
  }
  r.status = 'done';
  r.finishedAt = new Date().toISOString();
  return r;
}

export async function runLab(cfg: LabConfig, opts: LabOptions): Promise<LabResults> {
  const out = path.resolve(opts.out);
  try {
    await makeDirs(out);
  } catch (e) {
    throw new GpenLabError(
      'E_WRITE',
      `Could not create the lab's folder ${out}: ${errorMessage(e)}`,
      'Pass --out a folder on a writable file system.',
      { input: out },
    );
  }
  const file = path.join(out, 'results.json');
  let res: LabResults;
  if (opts.resume && existsSync(file)) {
    res = readResults(file);
    cfg = res.config; // the interrupted lab's own config: the cells already done were measured under it
  } else {
    if (opts.resume)
      throw new GpenLabError(
        'E_FILE_MISSING',
        `--resume: ${file} does not exist`,
        `Run the lab into ${out} first, or drop --resume.`,
        { input: file },
      );
    // every input checked before the first cell (a missing one would fail every cell, one by one)
    const missing = [...new Set(cfg.cells.flatMap((c) => inputsOf(cfg, c)))].filter((f) => !existsSync(f));
    if (missing.length)
      throw new GpenLabError(
        'E_FILE_MISSING',
        `The lab's inputs are missing: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''}`,
        "Fix the paths in the config (relative paths are resolved from the config's folder).",
        { input: missing[0] },
      );
    const sys = readSystem();
    const gpus = await readGpus();
    res = {
      schema: RESULTS_SCHEMA,
      startedAt: new Date().toISOString(),
      finishedAt: null,
      machine: {
        hostname: os.hostname(),
        cpu: sys.cpu.model,
        cores: sys.cpu.cores,
        memoryGiB: sys.memoryGiB,
        os: `${sys.distro ?? sys.os} (${sys.kernel}, ${sys.arch})`,
        libc: sys.libc,
        container: sys.container,
        node: sys.node,
        onnxruntime: sys.onnxruntime,
        gpu: { source: gpus.source, driver: gpus.driverVersion, cuda: gpus.cudaDriverVersion, devices: gpus.devices },
      },
      config: cfg,
      reference: null,
      cells: [],
      pairs: [],
      recommendations: [],
    };
  }
  const gpuMachine = res.machine.gpu as { source: string; devices: unknown[] };
  const gpuPresent =
    gpuMachine.source === 'none' || gpuMachine.devices.length === 0 ? 'no NVIDIA GPU or driver found' : null;
  const save = () => writeFileAtomicSafe(file, JSON.stringify(res, null, 1));
  // synthetic weights are built once here; the cells' processes load the file like a user's model
  if (cfg.model.synthetic) {
    for (const precision of new Set(cfg.cells.map((c) => c.precision))) {
      const t = Date.now();
      await prepareModel(modelSpecOf(cfg.model, path.join(out, '.cache')), precision);
      opts.onProgress?.({
        cell: 'model',
        index: -1,
        total: cfg.cells.length,
        line: `synthetic GPEN-${cfg.model.synthetic} ${precision} ready in ${path.join(out, '.cache')} (${((Date.now() - t) / 1000).toFixed(1)} s; built once, loaded by every cell)`,
      });
    }
  }
  const total = cfg.cells.length;
  for (let i = 0; i < total; i++) {
    const c = cfg.cells[i];
    const done = res.cells.find((x) => x.id === c.id && x.status === 'done');
    const progress = (line: string) => opts.onProgress?.({ cell: c.id, index: i, total, line });
    if (done) {
      progress('done in an earlier run: kept');
      continue;
    }
    res.cells = res.cells.filter((x) => x.id !== c.id);
    const placeholder = emptyCell(c, cfg);
    res.cells.push(placeholder);
    await save();
    const r = await runCell(c, cfg, out, PROVIDER_SPECS[c.provider].gpu ? gpuPresent : null, progress);
    res.cells[res.cells.indexOf(placeholder)] = r;
    await save();
  }
  // cells in config order
  res.cells.sort((a, b) => cfg.cells.findIndex((c) => c.id === a.id) - cfg.cells.findIndex((c) => c.id === b.id));
  await analyse(res, out);
  res.finishedAt = new Date().toISOString();
  await save();
  await writeReport(res, out);
  return res;
}
