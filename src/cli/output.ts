// How every command speaks: results to stdout (text or --json), warnings and progress to stderr, errors as
// message + fix (stack only with --debug) and a non-zero exit.
import cliProgress from 'cli-progress';
import { GpenLabError, errorMessage } from '../errors.js';

export const SYNTHETIC_WARNING = 'synthetic weights: seeded random GPEN, for speed and agreement measurements only; the image is not a restoration';

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export function warn(line: string): void {
  process.stderr.write(`warning: ${line}\n`);
}

export function info(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** Exit code per kind of failure: 2 for bad usage or input, 3 for the runtime, 1 for anything unexpected. */
export function exitCodeFor(e: unknown): number {
  if (!(e instanceof GpenLabError)) return 1;
  return ['E_PROVIDER_UNAVAILABLE', 'E_SESSION', 'E_INFERENCE'].includes(e.code) ? 3 : 2;
}

export function reportError(e: unknown, opts: { debug: boolean; json: boolean }): number {
  const code = exitCodeFor(e);
  if (opts.json) {
    const body = e instanceof GpenLabError ? e.toJSON() : { code: 'E_INTERNAL', message: errorMessage(e), fix: 'Re-run with --debug and report the stack.' };
    process.stdout.write(JSON.stringify({ error: body }, null, 2) + '\n');
  }
  if (e instanceof GpenLabError) {
    process.stderr.write(`error [${e.code}]: ${e.message}\n  fix: ${e.fix}\n`);
  } else {
    process.stderr.write(`error: ${errorMessage(e)}\n  fix: this is a bug in gpen-lab; re-run with --debug and report the stack.\n`);
  }
  if (opts.debug && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  return code;
}

/** Steps of a long job: a bar on a TTY, one plain line per step otherwise (CI logs, pipes). */
export class Steps {
  private bar: cliProgress.SingleBar | null = null;
  private i = 0;
  private readonly t0 = Date.now();

  constructor(private readonly total: number, private readonly quiet = false) {
    if (!quiet && process.stderr.isTTY && !process.env.CI) {
      this.bar = new cliProgress.SingleBar({ stream: process.stderr, format: '{bar} {value}/{total} {step}', hideCursor: true, clearOnComplete: true },
        cliProgress.Presets.shades_classic);
      this.bar.start(total, 0, { step: '' });
    }
  }

  step(label: string): void {
    this.i++;
    if (this.quiet) return;
    if (this.bar) this.bar.update(this.i - 1, { step: label });
    else process.stderr.write(`[${this.i}/${this.total}] ${label} (${((Date.now() - this.t0) / 1000).toFixed(1)} s)\n`);
  }

  done(): void {
    if (this.bar) {
      this.bar.update(this.total, { step: 'done' });
      this.bar.stop();
    }
  }
}
