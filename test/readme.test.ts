// The README's quick start without weights and its library example, run as written. The quick start: each line of its
// first shell block in a fresh folder (the repository's assets and examples beside it, `npx gpen-lab` resolving to this
// build's dist/), the service line started in the background, the "another terminal" block against it, then the
// service stopped with SIGTERM.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodeImage } from '../src/io/image.js';

const ROOT = path.resolve('.');
const CLI = path.join(ROOT, 'dist/cli/index.js');

/** The shell blocks of the README's "Quick start" section, in order, each as its command lines. */
export function quickStartBlocks(readme: string): string[][] {
  const start = readme.indexOf('\n## Quick start');
  assert.ok(start >= 0, 'README has a "Quick start" section');
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) =>
    m[1]
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#')),
  );
}

function run(line: string, cwd: string): { status: number | null; out: string } {
  const r = spawnSync('bash', ['-c', line], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, CI: 'true' },
    timeout: 300_000,
  });
  return { status: r.status, out: `${r.stdout}\n${r.stderr}`.slice(-3000) };
}

describe('the README quick start, as written', () => {
  const blocks = quickStartBlocks(readFileSync(path.join(ROOT, 'README.md'), 'utf8'));
  let dir = '';
  let server: ChildProcess | null = null;

  before(() => {
    assert.ok(existsSync(CLI), `${CLI} is missing: run npm run build (npm ci does) before the tests`);
    dir = mkdtempSync(path.join(os.tmpdir(), 'gpen-lab-readme-'));
    mkdirSync(path.join(dir, 'node_modules/.bin'), { recursive: true });
    symlinkSync(CLI, path.join(dir, 'node_modules/.bin/gpen-lab'));
    for (const d of ['assets', 'examples']) symlinkSync(path.join(ROOT, d), path.join(dir, d));
  });
  after(() => {
    if (server?.pid && server.exitCode === null) process.kill(-server.pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('has three blocks: without weights, the client of its service, and with the official weights', () => {
    assert.equal(blocks.length, 3, JSON.stringify(blocks));
    assert.ok(
      blocks[0].every((l) => l.startsWith('npx gpen-lab ')),
      blocks[0].join('\n'),
    );
    assert.ok(
      blocks[0].every((l) => !/--model/.test(l)),
      'the first block needs no weights',
    );
    assert.ok(blocks[1].length === 1 && blocks[1][0].startsWith('curl '), blocks[1].join('\n'));
    assert.ok(
      blocks[2].some((l) => /--model GPEN-BFR-512/.test(l)),
      'the third block uses the official weights',
    );
  });

  it('every command without weights succeeds and writes what the README says', async () => {
    for (const line of blocks[0]) {
      if (/ serve /.test(line)) {
        server = spawn('bash', ['-c', line.replace(/\s+#.*$/, '')], {
          cwd: dir,
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, CI: 'true' },
        });
        continue;
      }
      const r = run(line, dir);
      assert.equal(r.status, 0, `${line}\n${r.out}`);
    }
    assert.ok(server, 'the first block starts the service');
    const client = run(blocks[1][0], dir);
    assert.equal(client.status, 0, `${blocks[1][0]}\n${client.out}`);
    // 'close' comes once every process of the group has closed the pipes it inherited: the service itself included
    let log = '';
    server.stdout!.on('data', (d: Buffer) => {
      log += d;
    });
    server.stderr!.on('data', (d: Buffer) => {
      log += d;
    });
    const closed = new Promise<void>((resolve) => server!.once('close', () => resolve()));
    process.kill(-server.pid!, 'SIGTERM');
    await closed;
    assert.match(log, /"event":"stopped"/, 'the service finished and said so');
    assert.doesNotMatch(log, /"level":(50|60)/, 'the service logged no error');

    const face = await decodeImage(path.join(ROOT, 'assets/demo-face.png'));
    for (const out of ['gpen-lab-demo/demo-face_GPEN.png', 'restored/demo-face_GPEN.png', 'served.png']) {
      const img = await decodeImage(path.join(dir, out));
      assert.deepEqual([img.width, img.height], [face.width, face.height], out);
    }
    const lab = JSON.parse(readFileSync(path.join(dir, 'lab-example/results.json'), 'utf8'));
    assert.deepEqual(
      lab.cells.map((c: { id: string; status: string }) => [c.id, c.status]),
      [
        ['cpu-fp32', 'done'],
        ['cpu-fp16', 'done'],
      ],
    );
    const bench = JSON.parse(readFileSync(path.join(dir, 'bench.json'), 'utf8'));
    assert.ok(
      bench.variants.length >= 2 && bench.variants.every((v: { ok: boolean }) => v.ok),
      JSON.stringify(bench.variants).slice(0, 500),
    );
  });
});

describe('the README library example, as written', () => {
  it('restores the demo face through the package entry point', async () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const m = /\n## As a library\n[\s\S]*?```js\n([\s\S]*?)```/.exec(readme);
    assert.ok(m, 'README has an "As a library" section with a js block');
    assert.match(m[1], /from 'gpen-lab'/);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gpen-lab-readme-lib-'));
    try {
      mkdirSync(path.join(dir, 'node_modules'));
      symlinkSync(ROOT, path.join(dir, 'node_modules/gpen-lab'));
      symlinkSync(path.join(ROOT, 'assets'), path.join(dir, 'assets'));
      writeFileSync(path.join(dir, 'example.mjs'), m[1]);
      const r = spawnSync(process.execPath, ['example.mjs'], { cwd: dir, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^restored-lib\/demo-face_GPEN\.png: 1 face\(s\) on (cpu|cuda|webgpu)$/m);
      const [face, out] = await Promise.all([
        decodeImage(path.join(ROOT, 'assets/demo-face.png')),
        decodeImage(path.join(dir, 'restored-lib/demo-face_GPEN.png')),
      ]);
      assert.deepEqual([out.width, out.height], [face.width, face.height]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
