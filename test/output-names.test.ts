// restore's outputs (src/io/output-names.ts, the Restorer's writes): one output per input however the inputs are
// named, no file replaced without --overwrite, restore's own outputs never read back from a folder, and a full disk
// leaves nothing behind.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GpenLabError } from '../src/errors.js';
import { writeFileAtomicSafe } from '../src/io/files.js';
import { isRestoreOutput, outputNames } from '../src/io/output-names.js';
import { useTempCache } from './helpers/cache-dir.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FACE = path.join(REPO, 'assets', 'demo-face.png');
const tmp = useTempCache('gpen-outputs-');
const cli = (args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', ...args], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: 120_000,
  });

describe('output names', () => {
  it('one NAME per input: the stem, then the extension where stems meet, then a number by order', () => {
    assert.deepEqual(outputNames(['a/x.png', 'b/y.jpg']), ['x', 'y']);
    assert.deepEqual(outputNames(['a/x.png', 'b/x.webp', 'a/x.jpg']), ['x_png', 'x_webp', 'x_jpg']);
    assert.deepEqual(outputNames(['a/x.png', 'b/x.png', 'c/x.PNG', 'd/y.png']), ['x_png', 'x_png_2', 'x_png_3', 'y']);
  });

  it('knows its own outputs by name', () => {
    for (const f of ['x_GPEN.png', 'dir/x_COMP.jpg', 'x_face03.webp']) assert.equal(isRestoreOutput(f), true, f);
    for (const f of ['x.png', 'x_GPEN_2.png', 'x_face3.png', 'GPEN.png']) assert.equal(isRestoreOutput(f), false, f);
  });
});

describe('restore never loses or replaces an output', () => {
  it('same-name inputs in one call each get their own outputs', () => {
    const dir = mkdtempSync(path.join(tmp, 'same-'));
    for (const sub of ['a', 'b']) mkdirSync(path.join(dir, sub));
    copyFileSync(FACE, path.join(dir, 'a', 'x.png'));
    copyFileSync(FACE, path.join(dir, 'b', 'x.png'));
    const out = path.join(dir, 'out');
    const r = cli([
      'restore',
      path.join(dir, 'a', 'x.png'),
      path.join(dir, 'b', 'x.png'),
      '-o',
      out,
      '--synthetic',
      '64',
      '--provider',
      'cpu',
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readdirSync(out).sort(), ['x_png_2_GPEN.png', 'x_png_GPEN.png']);
  });

  it('an output already there is refused (E_OUTPUT_EXISTS, exit 2, the file untouched) unless --overwrite', () => {
    const out = mkdtempSync(path.join(tmp, 'exists-'));
    writeFileSync(path.join(out, 'demo-face_GPEN.png'), "the user's own file");
    const r = cli(['restore', FACE, '-o', out, '--synthetic', '64', '--provider', 'cpu', '--json']);
    assert.equal(r.status, 2, r.stderr);
    const res = JSON.parse(r.stdout.trim().split('\n')[0]) as { error: { code: string; message: string; fix: string } };
    assert.equal(res.error.code, 'E_OUTPUT_EXISTS');
    assert.match(res.error.fix, /--overwrite/);
    assert.equal(readFileSync(path.join(out, 'demo-face_GPEN.png'), 'utf8'), "the user's own file");
    assert.deepEqual(readdirSync(out), ['demo-face_GPEN.png'], 'nothing else written for that image');
    const again = cli(['restore', FACE, '-o', out, '--synthetic', '64', '--provider', 'cpu', '--overwrite']);
    assert.equal(again.status, 0, again.stderr);
    assert.notEqual(readFileSync(path.join(out, 'demo-face_GPEN.png'), 'utf8'), "the user's own file");
  });

  it('restore DIR -o DIR leaves out the outputs already in DIR and says so', () => {
    const dir = mkdtempSync(path.join(tmp, 'inplace-'));
    copyFileSync(FACE, path.join(dir, 'y.png'));
    copyFileSync(FACE, path.join(dir, 'z_GPEN.png'));
    const r = cli(['restore', dir, '-o', dir, '--synthetic', '64', '--provider', 'cpu']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /left out 1 file\(s\) named like restore's outputs/);
    assert.deepEqual(readdirSync(dir).sort(), ['y.png', 'y_GPEN.png', 'z_GPEN.png']);
  });
});

describe('a write on a full disk', () => {
  it('leaves nothing behind and says E_WRITE with the cause (a 64 KiB tmpfs)', async (t) => {
    const mnt = mkdtempSync(path.join(os.tmpdir(), 'gpen-full-'));
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]).status !== 0)
      return t.skip('cannot mount a tmpfs here (needs root)');
    t.after(() => spawnSync('umount', [mnt]));
    await assert.rejects(
      writeFileAtomicSafe(path.join(mnt, 'y.npy'), new Uint8Array(786_560)),
      (e: unknown) =>
        e instanceof GpenLabError &&
        e.code === 'E_WRITE' &&
        /no space left on the device \(ENOSPC\)/.test(e.message) &&
        /Free space/.test(e.fix),
    );
    assert.deepEqual(readdirSync(mnt), []);
    const r = cli(['model', 'synth', '--size', '256', '-o', path.join(mnt, 's.onnx')]);
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, /error \[E_WRITE\].*no space left/);
    assert.deepEqual(readdirSync(mnt), []);
    assert.equal(existsSync(path.join(mnt, 's.onnx')), false);
  });
});

describe('a damaged cache entry', () => {
  it('a truncated detector graph in the cache is found by its hash and rebuilt: detection goes on', () => {
    const cache = mkdtempSync(path.join(tmp, 'cache-'));
    const env = { ...process.env, GPEN_LAB_CACHE: cache };
    const detect = () =>
      spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', 'detect', FACE, '--json'], {
        cwd: REPO,
        encoding: 'utf8',
        timeout: 120_000,
        env,
      });
    const first = detect();
    assert.equal(first.status, 0, first.stderr);
    const dir = path.join(cache, 'detector');
    const graphs = readdirSync(dir).filter((f) => f.endsWith('.onnx'));
    assert.ok(graphs.length >= 1, readdirSync(dir).join(', '));
    for (const g of graphs) writeFileSync(path.join(dir, g), readFileSync(path.join(dir, g)).subarray(0, 1000));
    const second = detect();
    assert.equal(second.status, 0, second.stderr);
    assert.deepEqual(JSON.parse(second.stdout), JSON.parse(first.stdout), 'the same faces');
    for (const g of graphs) assert.ok(readFileSync(path.join(dir, g)).length > 1000, `${g} rebuilt`);
  });
});

describe('a folder that cannot be created', () => {
  it("an output under /proc is E_WRITE at once (Node's recursive mkdir would loop there for ever), through the API and the CLI", async () => {
    await assert.rejects(
      writeFileAtomicSafe('/proc/gpen-lab-test/x/y.png', 'x'),
      (e: unknown) =>
        e instanceof GpenLabError &&
        e.code === 'E_WRITE' &&
        /a folder cannot be created there/.test(e.message) &&
        /\/proc/.test(e.fix),
    );
    const r = cli([
      'restore',
      FACE,
      '-o',
      '/proc/gpen-lab-test/out',
      '--synthetic',
      '64',
      '--provider',
      'cpu',
      '--json',
    ]);
    assert.equal(r.status, 3, r.stderr);
    assert.equal((JSON.parse(r.stdout.trim().split('\n')[0]) as { error: { code: string } }).error.code, 'E_WRITE');
  });

  it('a cache under /proc costs the caches, never the restore', () => {
    const out = mkdtempSync(path.join(tmp, 'proc-cache-'));
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'src/cli/index.ts', 'restore', FACE, '-o', out, '--synthetic', '64', '--provider', 'cpu'],
      {
        cwd: REPO,
        encoding: 'utf8',
        timeout: 120_000,
        env: { ...process.env, GPEN_LAB_CACHE: '/proc/gpen-lab-test/cache' },
      },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readdirSync(out).sort(), ['demo-face_GPEN.png']);
  });
});
