// A command cell: anything that restores a face, measured like gpen-lab's own cells. Its probes are its start-up and
// dependency stages; each cold run is a fresh process per input through the cell's launcher (its wall time, the GPU
// use of its process group, its stderr tail, its output decoded back); a failure is matched against the launcher's
// own failures, then the doctor's CUDA signatures. Lines it may print on stdout (docs/lab.md, Command cells):
//   @@gpen-lab stage NAME MS    a stage of this run (model, infer, write...)
//   @@gpen-lab warm MS          one warm restoration in the same process
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { startGpuSampler, summarizeGpu } from '../doctor/gpu-sampler.js';
import { isGpenLabError } from '../errors.js';
import { REQUIRED_CUDA_MAJOR, driverMinimumFor } from '../doctor/requirements.js';
import { diagnose } from '../doctor/signatures.js';
import type { Finding } from '../doctor/types.js';
import { makeDirs } from '../io/files.js';
import { psnr, ssim } from '../metrics/quality.js';
import { rgbOf } from './analyse.js';
import { inputsOf } from './config.js';
import { emptyCell, expandVars, statsOf } from './cell.js';
import { killGroup } from './cell-process.js';
import { launcherFor, type CellLauncher, type RunEnd } from './launchers.js';
import type { CellResult, CellSpec, LabConfig, RunRecord } from './types.js';

const TAIL = 4000;

interface Ran {
  ok: boolean;
  spawnError: string | null;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  ms: number;
}

/** The process groups running now, for the GPU sampler: every process of each (the command and what it started). */
const groups = new Set<number>();

/** Every live process whose process group is one of `leaders` (from /proc; empty where there is none). */
export function groupMembers(leaders: Iterable<number>): number[] {
  const want = new Set(leaders);
  if (want.size === 0) return [];
  const out: number[] = [];
  let names: string[] = [];
  try {
    names = readdirSync('/proc').filter((n) => /^\d+$/.test(n));
  } catch {
    return [...want];
  }
  for (const n of names) {
    try {
      // comm may hold spaces and parentheses: the fields after its closing parenthesis are fixed
      const stat = readFileSync(`/proc/${n}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (want.has(Number(f[2]))) out.push(Number(n));
    } catch {
      /* gone */
    }
  }
  return out;
}

function runOnce(l: CellLauncher, argv: string[], vars: Record<string, string>, tag: string, timeoutMs: number) {
  return new Promise<Ran>((resolve) => {
    const s = l.spawn(argv, vars, tag);
    const t0 = Date.now();
    const child = spawn(s.file, s.args, { env: s.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    if (child.pid) groups.add(child.pid);
    let stdout = '',
      stderr = '',
      timedOut = false,
      settled = false;
    child.stdout.on('data', (d: Buffer) => (stdout = (stdout + d.toString()).slice(-256 * 1024)));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-64 * 1024)));
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child);
      void l.stop(tag);
    }, timeoutMs);
    const finish = (code: number | null, signal: string | null, spawnError: string | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (child.pid) groups.delete(child.pid);
      resolve({
        ok: code === 0 && !timedOut,
        spawnError,
        exitCode: code,
        signal,
        timedOut,
        stdout,
        stderr: stripVTControlCharacters(stderr),
        ms: Date.now() - t0,
      });
    };
    child.on('error', (e) => finish(null, null, `spawn ${s.file}: ${e.message}`));
    child.on('close', (code, signal) => finish(code, signal, null));
  });
}

/** The protocol's lines: per-stage times and warm runs. */
export function protocolOf(stdout: string): { stages: Record<string, number>; warm: number[] } {
  const stages: Record<string, number> = {};
  const warm: number[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^@@gpen-lab (stage (\w+)|warm) (\d+(?:\.\d+)?)\s*$/.exec(line.trim());
    if (!m) continue;
    if (m[2]) stages[m[2]] = (stages[m[2]] ?? 0) + Number(m[3]);
    else warm.push(Number(m[3]));
  }
  return { stages, warm };
}

const fill = (argv: string[], values: Record<string, string>): string[] =>
  argv.map((a) => a.replace(/\{(input|output|gpu)\}/g, (_m, k: string) => values[k]));

const why = (r: Ran, timeoutMs: number, what: string): string =>
  r.spawnError
    ? r.spawnError
    : r.timedOut
      ? `${what} timed out after ${timeoutMs / 1000} s`
      : r.signal
        ? `${what} was killed by ${r.signal}`
        : `${what} exited ${r.exitCode}${r.stderr.trim() ? `: ${r.stderr.trim().split('\n').slice(-1)[0].slice(0, 300)}` : ''}`;

export async function runCommandCell(
  c: CellSpec,
  cfg: LabConfig,
  out: string,
  gpuPresent: string | null,
  progress: (line: string) => void,
): Promise<CellResult> {
  const cmd = c.command!;
  const r = emptyCell(c, cfg);
  const cellDir = path.join(out, 'cells', c.id);
  await makeDirs(cellDir);
  const inputs = inputsOf(cfg, c);
  // a container's volumes and variables may name the lab's own ($GPEN_DIR:/weights:ro)
  const launcher =
    c.launcher?.type === 'docker'
      ? {
          ...c.launcher,
          volumes: (c.launcher.volumes ?? []).map((v) => expandVars({ v }).v),
          env: expandVars(c.launcher.env ?? {}),
        }
      : c.launcher;
  const l = launcherFor(launcher, { cellId: c.id, cellDir, inputs });
  r.env.launcher = l.describe;
  r.env.host = l.host;
  r.env.command = cmd;
  const vars = expandVars(cmd.env ?? {});
  const gpu = vars.CUDA_VISIBLE_DEVICES?.split(',')[0] ?? '0';
  const timeoutMs = (cmd.timeoutSec ?? cfg.timeoutSec) * 1000;
  const findings: Finding[] = [];
  const sampler =
    gpuPresent === null && c.gpu !== false
      ? startGpuSampler({ pids: () => groupMembers(groups), deviceIndex: Number(gpu) || 0 })
      : null;
  let failedText = '';
  const launcherFinding = (x: Ran): boolean => {
    const f = l.diagnose({ spawnError: x.spawnError, exitCode: x.exitCode, stderr: x.stderr });
    if (f && !findings.some((y) => y.id === f.id)) findings.push(f);
    return f !== null;
  };
  try {
    await l.send(inputs);
  } catch (e) {
    const end = isGpenLabError(e) ? (e.details.end as RunEnd | undefined) : undefined;
    const f = end ? l.diagnose(end) : null;
    if (f) findings.push(f);
    r.stages.startup = { ok: false, reason: `the inputs could not be sent: ${(e as Error).message}` };
  }
  // the probes: start-up, then dependencies
  for (const stage of ['startup', 'dependencies'] as const) {
    if (r.stages.startup?.ok === false) break;
    const probe = cmd.probes?.[stage];
    if (!probe) continue;
    progress(`probe ${stage}: ${probe.join(' ')}`);
    const x = await runOnce(
      l,
      fill(probe, { input: '', output: '', gpu }),
      vars,
      `gpen-lab-${c.id}-${stage}-${process.pid}`,
      timeoutMs,
    );
    const said = x.stdout.trim().split('\n').filter(Boolean).slice(-1)[0] ?? '';
    r.stages[stage] = x.ok
      ? { ok: true, reason: said ? `${probe[0]}: ${said.slice(0, 300)}` : `${probe.join(' ')} exited 0` }
      : { ok: false, reason: why(x, timeoutMs, `the ${stage} probe`) };
    if (!x.ok) {
      launcherFinding(x);
      failedText += `${x.spawnError ?? ''}\n${x.stderr}\n`;
    }
  }
  const warm: { stages_ms: Record<string, number>; total_ms: number | null }[] = [];
  let outputs: { input: string; output: string }[] = [];
  for (let i = 0; i < cfg.coldRuns && r.stages.startup?.ok !== false; i++) {
    progress(`run ${i + 1}/${cfg.coldRuns}`);
    const rec: RunRecord = {
      run: i,
      ok: false,
      stage: 'startup',
      exitCode: null,
      signal: null,
      timedOut: false,
      error: null,
      stderrTail: '',
      stages_ms: {},
      total_ms: null,
      maxRssMiB: null,
    };
    const written: { input: string; output: string }[] = [];
    let total = 0;
    for (const [k, input] of inputs.entries()) {
      const output = path.join(cellDir, `run-${i}`, `${k}-${path.parse(input).name}.png`);
      await makeDirs(path.dirname(output));
      const argv = fill(cmd.argv, { input: l.inputPath(input), output: l.outputPath(output), gpu });
      const x = await runOnce(l, argv, vars, `gpen-lab-${c.id}-${i}-${k}-${process.pid}`, timeoutMs);
      total += x.ms;
      const p = protocolOf(x.stdout);
      for (const [s, ms] of Object.entries(p.stages)) rec.stages_ms[s] = (rec.stages_ms[s] ?? 0) + ms;
      for (const ms of p.warm) warm.push({ stages_ms: {}, total_ms: ms });
      Object.assign(rec, { exitCode: x.exitCode, signal: x.signal, timedOut: x.timedOut });
      if (!x.ok) {
        const launcherFailed = launcherFinding(x);
        rec.stage = x.spawnError || launcherFailed ? 'startup' : 'inference';
        rec.error = why(x, timeoutMs, 'the command');
        rec.stderrTail = x.stderr.trim().slice(-TAIL);
        failedText += `${x.spawnError ?? ''}\n${x.stderr}\n`;
        break;
      }
      try {
        await l.fetch([output]);
      } catch (e) {
        rec.stage = 'output';
        rec.error = `the output could not be fetched: ${(e as Error).message}`;
        break;
      }
      if (!existsSync(output)) {
        rec.stage = 'output';
        rec.error = `the command exited 0 but wrote no ${l.outputPath(output)}`;
        rec.stderrTail = x.stderr.trim().slice(-TAIL);
        break;
      }
      try {
        await rgbOf(output);
      } catch (e) {
        rec.stage = 'output';
        rec.error = `${output} is not an image: ${(e as Error).message}`;
        break;
      }
      written.push({ input, output });
    }
    rec.stages_ms.command = total;
    if (written.length === inputs.length) {
      Object.assign(rec, { ok: true, stage: 'done', total_ms: total });
      outputs = written;
    }
    r.runs.push(rec);
    progress(
      rec.ok ? `run ${i + 1}: ${(total / 1000).toFixed(2)} s` : `run ${i + 1} failed at ${rec.stage}: ${rec.error}`,
    );
    if (!rec.ok) break;
  }
  if (sampler) r.gpu = summarizeGpu(sampler.stop());
  else r.gpu = { ...r.gpu, reason: c.gpu === false ? 'the cell does not use the GPU' : `no GPU: ${gpuPresent}` };
  if (failedText.trim()) {
    for (const f of diagnose(failedText, {
      provider: 'cuda',
      found: {},
      driverVersion: null,
      cudaDriverVersion: null,
      requiredCudaMajor: REQUIRED_CUDA_MAJOR,
      driverMinimum: driverMinimumFor(REQUIRED_CUDA_MAJOR),
    }))
      if (!findings.some((x) => x.id === f.id)) findings.push(f);
  }
  if (findings.length) r.doctor = { verdict: 'fail', findings, libraries: [] };
  const first = r.runs[0];
  const passed = r.runs.filter((x) => x.ok);
  if (first) {
    r.stages.startup ??=
      first.stage === 'startup' && !first.ok
        ? { ok: false, reason: first.error }
        : { ok: true, reason: 'the command started' };
    r.stages.inference =
      first.ok || first.stage === 'output'
        ? { ok: true, reason: 'the command exited 0' }
        : r.stages.startup.ok
          ? { ok: false, reason: first.error }
          : null;
    r.stages.output = first.ok
      ? { ok: true, reason: 'written and decoded back' }
      : first.stage === 'output'
        ? { ok: false, reason: first.error }
        : null;
  }
  r.cold = statsOf(passed);
  r.warm = statsOf(warm);
  if (passed.length) {
    r.commandOutputs = outputs;
    for (const o of outputs) {
      const [a, b] = [await rgbOf(o.input), await rgbOf(o.output)];
      // an output of another size than its input (an aligned face in, the crop out) has no whole-image agreement
      if (a.width !== b.width || a.height !== b.height) continue;
      r.output.vsInput.push({
        input: o.input,
        output: o.output,
        psnr: Math.min(psnr(a, b), 100),
        ssim: ssim(a, b),
        facePsnr: null,
        faceSsim: null,
      });
    }
    const n = r.output.vsInput.length;
    r.output.psnr = n ? r.output.vsInput.reduce((s, x) => s + x.psnr, 0) / n : null;
    r.output.ssim = n ? r.output.vsInput.reduce((s, x) => s + x.ssim, 0) / n : null;
  }
  writeFileSync(path.join(cellDir, 'command.json'), JSON.stringify({ argv: cmd.argv, launcher: l.describe }, null, 1));
  r.status = 'done';
  r.finishedAt = new Date().toISOString();
  return r;
}
