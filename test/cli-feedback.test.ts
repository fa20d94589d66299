// What the CLI says while it works and how it says it: progress with each image's own time and the faces restored
// inside a long image (an updating line on a terminal, even with --json; plain lines off one and in CI; none with
// --json off one), one compact JSON object per line on stdout for every command, detect on files and folders with
// rounded coordinates and the image's size, and inputs checked before any model work.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Steps, progressMode } from '../src/cli/output.js';
import { IMAGES } from './fixtures.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FACE = path.join(REPO, 'assets', 'demo-face.png');
const SOLVAY = path.join(REPO, 'assets', 'Solvay_conference_1927.png');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-feedback-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const ENV = { ...process.env, CI: '' };
const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', ...args], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: 240_000,
    env: { ...ENV, ...env },
  });
const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
/** The command in a pseudo-terminal (util-linux `script`): stdout and stderr both on it, as a user sees them. */
const inTerminal = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(
    'script',
    ['-qfec', [process.execPath, '--import', 'tsx', 'src/cli/index.ts', ...args].map(quote).join(' '), '/dev/null'],
    { cwd: REPO, encoding: 'utf8', timeout: 240_000, env: { ...ENV, COLUMNS: '160', ...env } },
  );
const hasScript = spawnSync('script', ['--version']).status === 0;

describe('progress', () => {
  it("Steps prints each item's own time and the time in all, and the steps of a long item (a scripted clock)", () => {
    let now = 0;
    const lines: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((s: string) => {
      lines.push(s);
      return true;
    }) as typeof process.stderr.write;
    try {
      const steps = new Steps(2, false, { mode: 'lines', now: () => now });
      now = 1000;
      steps.mark(); // the model took a second: not the first image's
      now = 2500;
      steps.status('a.jpg: 4/29 faces restored', { plain: true });
      steps.status('only on a terminal');
      now = 4000;
      steps.item('a.jpg: 29 faces');
      now = 4500;
      steps.item('b.jpg: 1 face');
      steps.done();
    } finally {
      process.stderr.write = write;
    }
    assert.deepEqual(lines, [
      '[1/2] a.jpg: 4/29 faces restored (1.5 s)\n',
      '[1/2] a.jpg: 29 faces in 3.0 s (4.0 s in all)\n',
      '[2/2] b.jpg: 1 face in 0.5 s (4.5 s in all)\n',
    ]);
  });

  it('an updating line on a terminal (plain lines in CI), plain lines off one, none for --json off one', () => {
    assert.equal(progressMode(false, { isTTY: true }, {}), 'tty');
    assert.equal(progressMode(true, { isTTY: true }, {}), 'tty');
    assert.equal(progressMode(true, { isTTY: true }, { CI: 'true' }), 'lines');
    assert.equal(progressMode(false, { isTTY: false }, {}), 'lines');
    assert.equal(progressMode(true, { isTTY: false }, {}), 'none');
  });

  it('in a pseudo-terminal with --json: the line updates (faces restored of found), finished images go above it, stdout keeps whole JSON lines', (t) => {
    if (!hasScript) return t.skip('util-linux script is not installed');
    const out = path.join(tmp, 'tty');
    const r = inTerminal([
      'restore',
      SOLVAY,
      '-o',
      out,
      '--synthetic',
      '64',
      '--provider',
      'cpu',
      '--batch',
      '8',
      '--json',
    ]);
    assert.equal(r.status, 0, r.stdout);
    const text = r.stdout;
    assert.ok(text.includes('\r\x1b[2K'), 'the line is redrawn in place');
    assert.match(text, /\[1\/1\] [#-]{20} Solvay_conference_1927\.png: 29 faces found, restoring \d+\.\d s/);
    assert.match(text, /\[1\/1\] [#-]{20} Solvay_conference_1927\.png: 8\/29 faces restored/);
    assert.match(text, /\[1\/1\] [#-]{20} Solvay_conference_1927\.png: 24\/29 faces restored/);
    assert.match(text, /\[1\/1\] Solvay_conference_1927\.png: 29 faces in \d+\.\d s\r\n/);
    const json = /\{"input".*\}\r?\n/.exec(text);
    assert.ok(json, 'the result line');
    const res = JSON.parse(json[0]) as { faces: unknown[]; outputs: { gpen: string } };
    assert.equal(res.faces.length, 29);
    // the terminal is left clean: the last thing written clears the line
    assert.ok(text.endsWith('\r\x1b[2K'), JSON.stringify(text.slice(-40)));
  });

  it('in CI (CI=true) a terminal gets plain lines, no redrawing', (t) => {
    if (!hasScript) return t.skip('util-linux script is not installed');
    const r = inTerminal(['restore', FACE, '-o', path.join(tmp, 'ci'), '--synthetic', '64', '--provider', 'cpu'], {
      CI: 'true',
    });
    assert.equal(r.status, 0, r.stdout);
    assert.ok(!r.stdout.includes('\x1b[2K'), 'no redrawing');
    assert.match(r.stdout, /\[1\/1\] demo-face\.png: 1 face in \d+\.\d s\r\n/);
  });

  it("off a terminal: plain lines with each image's own time and the batches of a long image; with --json none", () => {
    const r = cli([
      'restore',
      SOLVAY,
      FACE,
      '-o',
      path.join(tmp, 'plain'),
      '--synthetic',
      '64',
      '--provider',
      'cpu',
      '--batch',
      '8',
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /^\[1\/2\] Solvay_conference_1927\.png: 8\/29 faces restored \(\d+\.\d s\)$/m);
    assert.match(r.stderr, /^\[1\/2\] Solvay_conference_1927\.png: 24\/29 faces restored \(\d+\.\d s\)$/m);
    const first = /^\[1\/2\] Solvay_conference_1927\.png: 29 faces in (\d+\.\d) s \((\d+\.\d) s in all\)$/m.exec(
      r.stderr,
    );
    const second = /^\[2\/2\] demo-face\.png: 1 face in (\d+\.\d) s \((\d+\.\d) s in all\)$/m.exec(r.stderr);
    assert.ok(first && second, r.stderr);
    // the second image's own time is its own, not the time since the start
    assert.ok(Number(second[1]) < Number(second[2]) && Number(second[2]) >= Number(first[2]), r.stderr);
    const j = cli([
      'restore',
      FACE,
      '-o',
      path.join(tmp, 'plain-json'),
      '--synthetic',
      '64',
      '--provider',
      'cpu',
      '--json',
    ]);
    assert.equal(j.status, 0, j.stderr);
    assert.doesNotMatch(j.stderr, /^\[\d+\/\d+\]/m);
  });
});

describe('--json: one compact JSON object per line', () => {
  const lines = (stdout: string) => {
    const ls = stdout.trim().split('\n');
    for (const l of ls) assert.ok(l.startsWith('{') && l.endsWith('}'), `one object per line: ${l.slice(0, 80)}`);
    return ls.map((l) => JSON.parse(l) as Record<string, unknown>);
  };

  it('restore and detect: a line per image; demo: one line; an error: one line', () => {
    const r = cli([
      'restore',
      FACE,
      path.join(IMAGES, '00002.png'),
      '-o',
      path.join(tmp, 'json'),
      '--synthetic',
      '64',
      '--provider',
      'cpu',
      '--json',
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(lines(r.stdout).length, 2);
    const d = cli(['detect', FACE, path.join(IMAGES, '00002.png'), '--json']);
    assert.equal(d.status, 0, d.stderr);
    assert.deepEqual(
      lines(d.stdout).map((x) => x.input),
      [FACE, path.join(IMAGES, '00002.png')],
    );
    const demo = cli(['demo', '--size', '64', '--provider', 'cpu', '-o', path.join(tmp, 'demo'), '--json']);
    assert.equal(demo.status, 0, demo.stderr);
    const [doc] = lines(demo.stdout);
    assert.ok(typeof doc.setup_ms === 'number' && Array.isArray(doc.faces));
    const e = cli(['restore', FACE, '-o', path.join(tmp, 'none'), '--json']);
    assert.equal(e.status, 2);
    assert.equal((lines(e.stdout)[0].error as { code: string }).code, 'E_ARGUMENT');
    const u = cli(['restore', '--no-such-flag', '--json']);
    assert.equal(u.status, 2);
    assert.equal((lines(u.stdout)[0].error as { code: string }).code, 'E_ARGUMENT');
  });
});

describe('detect', () => {
  it('takes files and folders: each image with its size, coordinates to 0.1 px, scores to 3 decimals; a bad file is its own error', () => {
    const dir = path.join(tmp, 'detect');
    mkdirSync(dir);
    copyFileSync(FACE, path.join(dir, 'a.png'));
    copyFileSync(path.join(IMAGES, '00002.png'), path.join(dir, 'b.png'));
    writeFileSync(path.join(dir, 'c.jpg'), 'not a JPEG');
    const r = cli(['detect', dir, '--json']);
    assert.equal(r.status, 2, r.stderr);
    const got = r.stdout
      .trim()
      .split('\n')
      .map(
        (l) =>
          JSON.parse(l) as {
            input: string;
            width?: number;
            height?: number;
            faces?: { box: number[]; score: number; landmarks: Record<string, number[]>; raw: number[][] }[];
            error?: { code: string };
          },
      );
    assert.deepEqual(
      got.map((g) => path.basename(g.input)),
      ['a.png', 'b.png', 'c.jpg'],
    );
    assert.deepEqual(
      got.slice(0, 2).map((g) => [g.width, g.height, g.faces!.length]),
      [
        [92, 92, 1],
        [1024, 1024, 1],
      ],
    );
    assert.equal(got[2].error?.code, 'E_FORMAT_UNKNOWN');
    const tenths = (v: number) => Math.abs(v * 10 - Math.round(v * 10)) < 1e-9;
    for (const g of got.slice(0, 2)) {
      for (const f of g.faces!) {
        const coords = [...f.box, ...Object.values(f.landmarks).flat(), ...f.raw.flat()];
        assert.ok(coords.every(tenths), `0.1 px: ${JSON.stringify(f)}`);
        assert.ok(Math.abs(f.score * 1000 - Math.round(f.score * 1000)) < 1e-9 && f.score > 0.5, `score ${f.score}`);
      }
    }
    assert.ok(r.stdout.length < 1200, 'no 15-decimal numbers');
    const text = cli(['detect', path.join(dir, 'a.png')]);
    assert.equal(text.status, 0, text.stderr);
    assert.match(
      text.stdout,
      /a\.png \(92x92\): 1 face\(s\)\n {2}00 score 0\.\d{3} box \[\d+\.\d, \d+\.\d, \d+\.\d, \d+\.\d\]/,
    );
  });
});

describe('inputs before the model', () => {
  it('a missing input, or a folder without images, is refused before any model work', () => {
    const cache = mkdtempSync(path.join(tmp, 'cache-'));
    // a model that fails loudly (E_PTH_CORRUPT) the moment anything reads it
    const model = path.join(tmp, 'GPEN-BFR-512.pth');
    writeFileSync(model, 'not a checkpoint');
    const empty = mkdtempSync(path.join(tmp, 'empty-'));
    const env = { GPEN_LAB_CACHE: cache };
    const one = cli(
      [
        'restore',
        path.join(tmp, 'nope.jpg'),
        '-o',
        path.join(tmp, 'out-missing'),
        '--model',
        model,
        '--provider',
        'cpu',
        '--json',
      ],
      env,
    );
    assert.equal(one.status, 2, one.stderr);
    const err = JSON.parse(one.stdout.trim()) as { error: { code: string; message: string } };
    assert.equal(err.error.code, 'E_FILE_MISSING');
    assert.match(err.error.message, /nope\.jpg/);
    const two = cli(
      [
        'restore',
        path.join(tmp, 'nope.jpg'),
        empty,
        FACE,
        '-o',
        path.join(tmp, 'out-missing'),
        '--synthetic',
        '64',
        '--provider',
        'cpu',
      ],
      env,
    );
    assert.equal(two.status, 2, two.stderr);
    assert.match(
      two.stderr,
      /error \[E_FILE_MISSING\]: 2 inputs cannot be read: .*nope\.jpg.*; No image files in the folder .*empty-/,
    );
    assert.doesNotMatch(two.stderr, /provider cpu ->|synthetic GPEN/, 'no model was made');
    assert.deepEqual(readdirSync(cache), [], 'nothing cached');
    const d = cli(['detect', path.join(tmp, 'nope.jpg'), '--json']);
    assert.equal(d.status, 2);
    assert.equal((JSON.parse(d.stdout.trim()) as { error: { code: string } }).error.code, 'E_FILE_MISSING');
  });
});
