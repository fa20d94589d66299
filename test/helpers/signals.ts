// Waiting on what a test is told, never on the clock: a child's output lines as they arrive, a file as it appears.
import { existsSync, watch } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

export interface Lines {
  /** Every line read so far, each with its newline. */
  readonly text: string;
  /** Resolves with the lines matching `re` once `count` of them have been read; rejects if the stream ends first. */
  waitFor(re: RegExp, count?: number): Promise<string[]>;
  /** Resolves once the stream has ended and its last line has been read. */
  readonly ended: Promise<void>;
}

/** Reads `stream` line by line from now on. */
export function readLines(stream: Readable): Lines {
  const lines: string[] = [];
  const waiting = new Set<{ re: RegExp; count: number; resolve: (m: string[]) => void; reject: (e: Error) => void }>();
  let closed = false;
  const matching = (re: RegExp) => lines.filter((l) => re.test(l));
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  const ended = new Promise<void>((resolve) => rl.once('close', resolve));
  rl.on('line', (line) => {
    lines.push(line);
    for (const w of waiting) {
      const m = matching(w.re);
      if (m.length >= w.count) {
        waiting.delete(w);
        w.resolve(m);
      }
    }
  });
  const giveUp = (w: { re: RegExp; count: number; reject: (e: Error) => void }) =>
    w.reject(new Error(`the stream ended before ${w.count} line(s) matching ${w.re}; it read:\n${lines.join('\n')}`));
  rl.once('close', () => {
    closed = true;
    for (const w of waiting) giveUp(w);
    waiting.clear();
  });
  return {
    get text() {
      return lines.map((l) => `${l}\n`).join('');
    },
    ended,
    waitFor(re, count = 1) {
      return new Promise((resolve, reject) => {
        const m = matching(re);
        if (m.length >= count) resolve(m);
        else if (closed) giveUp({ re, count, reject });
        else waiting.add({ re, count, resolve, reject });
      });
    },
  };
}

/** Resolves once `file` exists (fs.watch on its folder); rejects if `unless` settles first. */
export function fileAppears(file: string, unless: Promise<unknown>): Promise<void> {
  return new Promise((resolve, reject) => {
    const w = watch(path.dirname(file));
    const done = (e?: Error) => {
      w.close();
      if (e) reject(e);
      else resolve();
    };
    w.on('change', () => {
      if (existsSync(file)) done();
    });
    w.on('error', done);
    const gone = () => done(new Error(`${file} never appeared`));
    unless.then(gone, gone);
    // made before the watch began
    if (existsSync(file)) done();
  });
}
