// How every command speaks: results to stdout (text or --json), warnings and progress to stderr, errors as
// message + fix (stack only with --debug) and a non-zero exit. With --json, stdout is JSON and nothing else: one
// compact object per line, one per item for the commands that report items (restore, detect) and one for a single
// document (demo, doctor, lab, model, setup) or an error.
import { EXIT_CODES, GpenLabError, errorMessage, exitStatus, flagOf, renameOption, toGpenLabError } from '../errors.js';

export const SYNTHETIC_WARNING =
  'synthetic weights: seeded random GPEN, for speed and agreement measurements only; the image is not a restoration';

/** One JSON document (or one item of a stream of them) as one line on stdout. */
export function printJson(value: unknown): void {
  const line = JSON.stringify(value) + '\n';
  // stdout on the terminal that shows the progress line: above it, as stderr's lines
  if (status !== null && process.stdout.isTTY) {
    clearStatus();
    process.stdout.write(line);
    process.stderr.write(status);
  } else {
    process.stdout.write(line);
  }
}

export function warn(line: string): void {
  aboveStatus(`warning: ${line}\n`);
}

export function info(line: string): void {
  aboveStatus(`${line}\n`);
}

/** Exit status per kind of failure (FAILURE_KINDS): 2 bad input, 3 runtime or environment, 4 a bug. */
export function exitCodeFor(e: unknown): number {
  return e instanceof GpenLabError ? exitStatus(e.code) : EXIT_CODES.internal;
}

/** The library names its options by key (`faceThreads`); the CLI says the flag (`--face-threads`). */
export function asCliError(e: GpenLabError): GpenLabError {
  return renameOption(e, flagOf);
}

export function reportError(thrown: unknown, opts: { debug: boolean; json: boolean }): number {
  const e = thrown instanceof GpenLabError ? asCliError(thrown) : thrown;
  const code = exitCodeFor(e);
  if (opts.json) {
    const body = toGpenLabError(e).toJSON();
    printJson({ error: body });
  }
  clearStatus();
  if (e instanceof GpenLabError) {
    process.stderr.write(`error [${e.code}]: ${e.message}\n  fix: ${e.fix}\n`);
  } else {
    process.stderr.write(
      `error: ${errorMessage(e)}\n  fix: this is a bug in gpen-lab; re-run with --debug and report the stack.\n`,
    );
  }
  if (opts.debug && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  return code;
}

/** How progress shows on stderr: an updating line on a terminal (plain lines in CI), plain lines off one, none with --json off one. */
export type ProgressMode = 'tty' | 'lines' | 'none';

export function progressMode(
  json: boolean,
  stream: { isTTY?: boolean } = process.stderr,
  env: NodeJS.ProcessEnv = process.env,
): ProgressMode {
  const ci = env.CI !== undefined && env.CI !== '' && env.CI !== 'false' && env.CI !== '0';
  if (stream.isTTY) return ci ? 'lines' : 'tty';
  return json ? 'none' : 'lines';
}

/** The updating line on the terminal, while one shows: lines written meanwhile go above it. */
let status: string | null = null;

function clearStatus(): void {
  if (status !== null) process.stderr.write('\r\x1b[2K');
}

function aboveStatus(text: string): void {
  clearStatus();
  process.stderr.write(text);
  if (status !== null) process.stderr.write(status);
}

function showStatus(text: string | null): void {
  clearStatus();
  // one row: a line that wraps cannot be taken back with a carriage return
  status =
    text === null
      ? null
      : [...text].slice(0, Math.max(20, (process.stderr.columns || Number(process.env.COLUMNS) || 80) - 1)).join('');
  if (status !== null) process.stderr.write(status);
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/**
 * Progress of a job of `total` items on stderr (progressMode): on a terminal one updating line (a bar, the item,
 * its time, ticking each second) with each finished item's line above it; elsewhere plain lines.
 */
export class Steps {
  private i = 0;
  /** Items (or steps) finished, for the bar. */
  private finished = 0;
  private readonly t0: number;
  /** When the current item began: the last one finished, or the job started. */
  private began: number;
  private label = '';
  private fraction = 0;
  private readonly mode: ProgressMode;
  private timer: NodeJS.Timeout | null = null;
  private readonly now: () => number;

  constructor(
    private readonly total: number,
    json = false,
    opts: { mode?: ProgressMode; now?: () => number } = {},
  ) {
    this.mode = opts.mode ?? progressMode(json);
    this.now = opts.now ?? Date.now;
    this.t0 = this.began = this.now();
  }

  /** A step begins (lab, model, demo): the label says what, with the time since the job started. */
  step(label: string): void {
    this.i++;
    if (this.mode === 'lines')
      process.stderr.write(`[${this.i}/${this.total}] ${label} (${seconds(this.now() - this.t0)})\n`);
    this.finished = this.i - 1;
    if (this.mode === 'tty') this.draw(label, 0);
  }

  /** The current item begins now (after the job's own set-up: a model loaded). */
  mark(): void {
    this.began = this.now();
  }

  /** An item finished: its line, with its own time and, for several, the time in all. */
  item(label: string): void {
    this.i++;
    const now = this.now();
    const own = now - this.began;
    this.began = now;
    this.finished = this.i;
    if (this.mode === 'none') return;
    const line = `[${this.i}/${this.total}] ${label} in ${seconds(own)}${this.total > 1 ? ` (${seconds(now - this.t0)} in all)` : ''}\n`;
    if (this.mode === 'tty') {
      aboveStatus(line);
      this.draw(this.label, 0);
    } else {
      process.stderr.write(line);
    }
  }

  /**
   * What the current item is doing, and how far it is (0..1): the terminal's line; with `plain`, a line elsewhere too
   * (for the steps of a long item: a batch of faces restored).
   */
  status(label: string, opts: { fraction?: number; plain?: boolean } = {}): void {
    if (this.mode === 'tty') this.draw(label, opts.fraction ?? 0);
    else if (this.mode === 'lines' && opts.plain)
      process.stderr.write(
        `[${Math.min(this.total, this.finished + 1)}/${this.total}] ${label} (${seconds(this.now() - this.began)})\n`,
      );
  }

  private draw(label: string, fraction: number): void {
    this.label = label;
    this.fraction = fraction;
    const width = 20;
    const filled = Math.round(
      width * Math.min(1, (this.finished + Math.min(1, Math.max(0, fraction))) / Math.max(1, this.total)),
    );
    const item = Math.min(this.total, this.finished + 1);
    showStatus(
      `[${item}/${this.total}] ${'#'.repeat(filled)}${'-'.repeat(width - filled)} ${label} ${seconds(this.now() - this.began)}`,
    );
    // the clock ticks while an item takes long (the Solvay photo on a CPU: over a minute with no other change)
    this.timer ??= setInterval(() => this.draw(this.label, this.fraction), 1000).unref();
  }

  done(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.mode === 'tty') showStatus(null);
  }
}
