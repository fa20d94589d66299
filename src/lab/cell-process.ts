// A lab cell's run in a fresh `node` process (cell-child.ts): its own process group, so that a timeout or stopCells
// ends it with whatever it started; its `@@lab {json}` lines and stderr tail make a RunRecord with the stage reached.
import { stripVTControlCharacters } from 'node:util';
import { spawn, type ChildProcess } from 'node:child_process';
import type { RestoreResult } from '../face/restore.js';
import { nodeScriptArgs } from '../io/node-script.js';
import type { RunRecord } from './types.js';

const TAIL = 4000;

interface ChildOutcome {
  events: (Record<string, unknown> & { ev: string; recvAt: number })[];
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  stderrTail: string;
  spawnAt: number;
  pid: number | null;
}

/** The cells' processes running now (each the leader of its process group), each with the promise of its exit. */
const live = new Map<number, Promise<void>>();

/**
 * Ends every cell process still running, with its process group (the lab's SIGTERM and SIGINT: cells die with the
 * lab), and resolves once each has exited. results.json holds every cell finished so far, written after each.
 */
export async function stopCells(): Promise<void> {
  const exits = [...live.values()];
  for (const pid of live.keys()) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
  await Promise.all(exits);
}

/** Ends a detached child with its whole process group (what it started too), or the child alone where that fails. */
export function killGroup(child: ChildProcess): void {
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
}

export function runChild(
  jobFile: string,
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
  pids: Set<number>,
  /** What to spawn instead of cell-child here (a launcher's: ssh to `gpen-lab cell-run JOB` there). */
  launch?: { file: string; args: string[]; env: NodeJS.ProcessEnv },
): Promise<ChildOutcome> {
  return new Promise((resolve) => {
    const spawnAt = Date.now();
    const file = launch?.file ?? process.execPath;
    // a process group of its own: stopCells ends the cell with whatever it started
    const child = spawn(file, launch?.args ?? [...nodeScriptArgs(import.meta.url, 'cell-child'), jobFile], {
      env: launch?.env ?? env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    if (child.pid) {
      pids.add(child.pid);
      live.set(child.pid, new Promise((done) => child.once('exit', () => done())));
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
      killGroup(child);
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
    child.on('error', (e) => finish(null, null, `could not start ${file}: ${e.message}`));
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

export function toRunRecord(run: number, o: ChildOutcome, timeoutMs: number): RunRecord {
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
