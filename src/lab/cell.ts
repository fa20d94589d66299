// One lab cell: the doctor's library report for its environment, its runs (each in a fresh process, stopping at the
// first that fails), the failure matched against the doctor's signatures, GPU sampling, stage verdicts, timing
// statistics and the output's agreement with its input.
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runDoctor } from '../doctor/index.js';
import { isGpenLabError } from '../errors.js';
import { addedDirs, describeSet, librarySetFindings } from '../doctor/library-set.js';
import { REQUIRED_CUDA_MAJOR, driverMinimumFor } from '../doctor/requirements.js';
import { diagnose } from '../doctor/signatures.js';
import { startGpuSampler, summarizeGpu } from '../doctor/gpu-sampler.js';
import { DEFAULT_BUILD, buildSpec } from '../runtime/builds.js';
import type { RouteChoice } from '../runtime/routes.js';
import type { RestoreResult } from '../face/restore.js';
import { makeDirs } from '../io/files.js';
import { clampRegion, crop, psnr, ssim } from '../metrics/quality.js';
import { timingStats } from '../metrics/stats.js';
import { inputsOf, modelSpecOf } from './config.js';
import type { CellJob, CellResult, CellSpec, LabConfig, OutputAgreement } from './types.js';
import { rgbOf } from './analyse.js';
import { runChild, toRunRecord } from './cell-process.js';
import { remoteCell } from './cell-remote.js';
import type { RunEnd } from './launchers.js';
import { rootFinding } from './causes.js';

/** Expands $NAME and ${NAME} from the lab's own environment, so a cell can say "/opt/cuda12/lib:$LD_LIBRARY_PATH". */
export function expandVars(vars: Record<string, string>, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(vars))
    out[k] = v.replace(/\$\{(\w+)\}|\$(\w+)/g, (_m, a: string, b: string) => env[a ?? b] ?? '').replace(/^:+|:+$/g, '');
  return out;
}

/** Timing statistics of the runs: the total and each stage, over the runs that have it. */
export function statsOf(records: { stages_ms: Record<string, number>; total_ms: number | null }[]): CellResult['cold'] {
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
    // an aligned face comes out at the model's size: no whole-image agreement with an input of another size
    if (a.width !== b.width || a.height !== b.height) continue;
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

export function emptyCell(c: CellSpec, cfg: LabConfig): CellResult {
  return {
    id: c.id,
    status: 'running',
    env: {
      provider: c.provider,
      route: c.route,
      precision: c.precision,
      ...(c.runtime && c.runtime !== DEFAULT_BUILD ? { runtime: c.runtime } : {}),
      session: c.session ?? {},
      vars: c.env ?? {},
      launcher: c.launcher?.type ?? 'local',
      host: c.launcher?.type === 'ssh' ? c.launcher.host : os.hostname(),
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

export async function runCell(
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
  const cellDir = path.join(out, 'cells', c.id);
  // on another host over ssh: the doctor there, and each run's job sent there
  const remote =
    c.launcher?.type === 'ssh' ? remoteCell(c.launcher, { cellId: c.id, cellDir, inputs: inputsOf(cfg, c) }) : null;
  if (remote) {
    r.env.launcher = remote.launcher.describe;
    r.env.host = remote.launcher.host;
  }
  const there = remote ? await remote.doctor(c.provider, vars) : null;
  // dependencies: the doctor's static report for this environment (the try-load is the cell itself)
  if (there && 'error' in there) {
    r.doctor = {
      verdict: 'fail',
      findings: [{ id: 'remote-doctor', verdict: 'fail', message: there.error, fix: there.fix }],
      libraries: [],
    };
    r.stages.dependencies = { ok: false, reason: `${there.error} (fix: ${there.fix})` };
  } else if (c.provider === 'cpu') {
    r.stages.dependencies = {
      ok: true,
      reason: 'the CPU provider is inside libonnxruntime.so.1: nothing else to load',
    };
  } else {
    const d = there ?? (await runDoctor({ providers: [c.provider], probe: false, env }));
    // a build other than onnxruntime-node's: its own report (its providers, its CUDA's libraries)
    const b = c.runtime && c.runtime !== DEFAULT_BUILD ? d.builds.find((x) => x.build === c.runtime) : undefined;
    const p = d.providers[0];
    const libraries = b ? b.libraries : p.libraries;
    // (the machine's own verdict, no GPU, is the provider section's)
    const own = b
      ? [...p.findings.filter((f) => f.id === 'no-gpu'), ...b.findings.filter((f) => !f.id.startsWith('tensorrt-'))]
      : p.findings;
    // the library sets this cell adds to the lab's LD_LIBRARY_PATH, against what the build took from them
    const sets = addedDirs(vars.LD_LIBRARY_PATH, process.env.LD_LIBRARY_PATH).map(describeSet);
    const setFindings = librarySetFindings(sets, c.runtime ?? DEFAULT_BUILD, libraries);
    for (const l of libraries) {
      const dirs = l.candidates.filter((k) => k.matches).map((k) => path.dirname(k.path));
      if (dirs.length) found[l.soname] = dirs;
    }
    gpuInfo = d.gpu;
    const findings = [...setFindings, ...own];
    r.doctor = {
      verdict: findings.some((f) => f.verdict === 'fail') ? 'fail' : 'ok',
      findings: [...d.findings, ...findings],
      libraries: libraries.map((l) => ({ soname: l.soname, path: l.path, version: l.version })),
      ...(sets.length ? { sets } : {}),
    };
    // the stage names the root cause: the build's files before the libraries they load (causes.ts)
    const fail = rootFinding(findings);
    r.stages.dependencies = fail
      ? { ok: false, reason: `${fail.message}${fail.fix ? ` (fix: ${fail.fix})` : ''}` }
      : { ok: true, reason: `${libraries.filter((l) => l.path).length} of ${libraries.length} libraries resolved` };
    const unused = setFindings.find((f) => f.id === 'library-set-unused');
    if (unused) r.flags.push(`the library set is not the build's CUDA: ${unused.message} (fix: ${unused.fix})`);
  }
  await makeDirs(cellDir);
  const pids = new Set<number>();
  // another host's GPU is not sampled from here
  const sampler =
    gpuPresent === null && c.provider !== 'cpu' && !remote
      ? startGpuSampler({ pids: () => pids, deviceIndex: c.session?.deviceId ?? 0 })
      : null;
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
      ...(c.runtime ? { runtime: c.runtime } : {}),
      ...(c.session ? { session: c.session } : {}),
      ...(c.batch ? { batch: c.batch } : {}),
      model: modelSpecOf(cfg.model, path.join(out, '.cache')),
      inputs: inputsOf(cfg, c),
      outDir: cellDir,
      warmRuns: last ? cfg.warmRuns : 0,
      ...(cfg.aligned ? { aligned: true } : {}),
    };
    const jobFile = path.join(cellDir, `job-${i}.json`);
    writeFileSync(jobFile, JSON.stringify(job));
    progress(`run ${i + 1}/${cfg.coldRuns}${last && cfg.warmRuns ? ` (+${cfg.warmRuns} warm)` : ''}`);
    let launch: { file: string; args: string[]; env: NodeJS.ProcessEnv } | undefined;
    try {
      if (remote) launch = { ...(await remote.prepare(job, jobFile, vars)), env: process.env };
    } catch (e) {
      const end = isGpenLabError(e) ? (e.details.end as RunEnd | undefined) : undefined;
      const f = end ? remote!.launcher.diagnose(end) : null;
      r.doctor ??= { verdict: 'fail', findings: [], libraries: [] };
      if (f) r.doctor.findings.unshift(f);
      r.runs.push({
        ...toRunRecord(
          i,
          {
            events: [],
            exitCode: null,
            signal: null,
            timedOut: false,
            stderrTail: (e as Error).message,
            spawnAt: Date.now(),
            pid: null,
          },
          timeoutMs,
        ),
        error: (e as Error).message,
      });
      break;
    }
    const o = await runChild(jobFile, env, timeoutMs, pids, launch);
    if (remote) {
      const ev = o.events.find((e) => e.ev === 'restore') as { results?: RestoreResult[] } | undefined;
      if (ev?.results) ev.results = await remote.finish(ev.results);
    }
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
  // the CUDA the cell's build needs (onnxruntime-node's: the doctor's)
  const cudaMajor = c.runtime ? buildSpec(c.runtime).cudaMajor : REQUIRED_CUDA_MAJOR;
  if (failedRun) {
    const text = `${failedRun.error ?? ''}\n${failedRun.stderrTail}`;
    const diag = diagnose(text, {
      provider: c.provider,
      found,
      driverVersion: gpuInfo?.driverVersion ?? null,
      cudaDriverVersion: gpuInfo?.cudaDriverVersion ?? null,
      requiredCudaMajor: cudaMajor,
      driverMinimum: driverMinimumFor(cudaMajor),
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
      ? {
          ok: true,
          reason: `${c.runtime && c.runtime !== DEFAULT_BUILD ? `ONNX Runtime ${buildSpec(c.runtime).ortVersion} (${c.runtime}) loaded through its C API` : 'onnxruntime-node loaded'}; the binary knows ${r.provider.knownByBinary?.join(', ') ?? '?'}`,
        }
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
