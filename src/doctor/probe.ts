// Runs the try-load child (probe-child) for one provider with a timeout, and reads what it reached, what ran, what
// failed, and the tail of its stderr; a crash or a hang is a result, not an exception.
import { stripVTControlCharacters } from 'node:util';
import { spawn } from 'node:child_process';
import { nodeScriptArgs } from '../io/node-script.js';
import type { ProbeResult } from './types.js';

export interface ProbeOptions {
  timeoutMs?: number;
  /** Environment of the child (the lab passes a cell's LD_LIBRARY_PATH); default: this process's. */
  env?: NodeJS.ProcessEnv;
}

const TAIL = 4000;

export function probeProvider(provider: string, opts: ProbeOptions = {}): Promise<ProbeResult> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...nodeScriptArgs(import.meta.url, 'probe-child'), provider], {
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-64 * 1024);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    const finish = (code: number | null, signal: string | null, spawnError?: string) => {
      clearTimeout(timer);
      // strip ANSI colour codes ONNX Runtime puts around its log lines
      const stderrTail = stripVTControlCharacters(err).trim().slice(-TAIL);
      const stages = [...out.matchAll(/^STAGE (\S+)$/gm)].map((m) => m[1]);
      const line = /^RESULT (.*)$/m.exec(out);
      let r: Partial<ProbeResult> & { ok?: boolean } = {};
      if (line) {
        try {
          r = JSON.parse(line[1]) as Partial<ProbeResult>;
        } catch {
          r = {};
        }
      }
      const stage = r.stage ?? stages[stages.length - 1] ?? 'spawn';
      const error =
        spawnError ??
        (timedOut
          ? `timed out after ${timeoutMs / 1000} s at stage ${stage}`
          : !line
            ? `the probe process ended without a result (exit ${code ?? 'none'}${signal ? `, signal ${signal}` : ''}) at stage ${stage}`
            : (r.error ?? null));
      resolve({
        provider,
        asked: provider,
        ran: r.ran ?? null,
        ok: !!line && r.ok === true && !timedOut,
        stage,
        ms: Date.now() - t0,
        error,
        stderrTail,
        exitCode: code,
        signal,
      });
    };
    child.on('error', (e) => finish(null, null, `could not start ${process.execPath}: ${e.message}`));
    child.on('close', (code, signal) => finish(code, signal));
  });
}
