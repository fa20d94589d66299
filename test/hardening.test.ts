// Inputs that used to crash uncoded or pass for success: damaged results files for `report` and `lab --resume`, a lab
// whose inputs are missing or whose timeout cannot be a timer, a lab in which no cell passes, and the service's port.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GpenLabError } from '../src/errors.js';
import { normalizeConfig } from '../src/lab/config.js';
import { readResults, runLab } from '../src/lab/runner.js';
import { startService } from '../src/serve/server.js';
import { fileAppears } from './helpers/signals.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-hard-'));
const cli = (args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', ...args], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: 120_000,
  });
const coded = (code: string, re: RegExp) => (e: unknown) =>
  e instanceof GpenLabError && e.code === code && re.test(e.message);

describe('damaged lab results', () => {
  const write = (name: string, text: string) => {
    const f = path.join(tmp, name);
    writeFileSync(f, text);
    return f;
  };
  it('report and --resume refuse null, another shape and an edited file with E_CONFIG, never a crash', () => {
    assert.throws(() => readResults(write('null.json', 'null')), coded('E_CONFIG', /not gpen-lab lab results/));
    assert.throws(() => readResults(write('array.json', '[1, 2]')), coded('E_CONFIG', /not gpen-lab lab results/));
    assert.throws(
      () => readResults(write('cells.json', JSON.stringify({ schema: 'gpen-lab.results/1', cells: 'x' }))),
      coded('E_CONFIG', /damaged: cells is not a list/),
    );
    assert.throws(
      () =>
        readResults(
          write(
            'cell.json',
            JSON.stringify({
              schema: 'gpen-lab.results/1',
              cells: [{ id: 'a' }],
              config: { cells: [], inputs: [] },
              machine: {},
            }),
          ),
        ),
      coded('E_CONFIG', /a cell lacks/),
    );
    const r = cli(['report', path.join(tmp, 'null.json')]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /error \[E_CONFIG\]/);
    assert.doesNotMatch(r.stderr, /^\s+at /m);
  });
});

describe('lab configs checked before any cell runs', () => {
  it('a timeout beyond a day is refused by the schema (a timer would overflow)', () => {
    assert.throws(
      () => normalizeConfig({ model: { identity: 64 }, timeoutSec: 10_000_000, cells: [{ provider: 'cpu' }] }, tmp),
      coded('E_CONFIG', /timeoutSec/),
    );
  });

  it('missing inputs are one E_FILE_MISSING up front, naming them', async () => {
    const cfg = normalizeConfig(
      {
        model: { identity: 64 },
        inputs: ['nope-1.png', 'nope-2.png'],
        cells: [{ provider: 'cpu' }, { provider: 'cpu', precision: 'fp16' }],
      },
      tmp,
    );
    await assert.rejects(
      runLab(cfg, { out: path.join(tmp, 'lab-missing') }),
      coded('E_FILE_MISSING', /nope-1\.png, .*nope-2\.png/),
    );
  });

  it('a lab in which no cell passes exits 3', () => {
    const face = path.join(REPO, 'assets', 'demo-face.png');
    const conf = path.join(tmp, 'failing.json');
    writeFileSync(
      conf,
      JSON.stringify({
        model: { identity: 64 },
        inputs: [face],
        coldRuns: 1,
        warmRuns: 0,
        cells: [{ id: 'bad', provider: 'cpu', env: { NODE_OPTIONS: '--require=/nonexistent-gpen-preload.js' } }],
      }),
    );
    const r = cli(['lab', conf, '--out', path.join(tmp, 'lab-failing')]);
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stdout, /^0 of 1 cells pass/m);
  });
});

describe("the service's port", () => {
  it('a port out of range is E_ARGUMENT; a port in use is E_ARGUMENT naming it, not a bug', async () => {
    await assert.rejects(
      startService({ port: 70000, model: { type: 'identity', size: 64 }, logLevel: false }),
      coded('E_ARGUMENT', /between 0 and 65535 for port/),
    );
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as { port: number }).port;
    try {
      await assert.rejects(
        startService({ port, model: { type: 'identity', size: 64 }, logLevel: false }),
        coded('E_ARGUMENT', new RegExp(`Port ${port} on 127\\.0\\.0\\.1 is already in use`)),
      );
      const r = cli(['serve', '--port', String(port), '--synthetic', '64']);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /error \[E_ARGUMENT\]: Port \d+ on 127\.0\.0\.1 is already in use/);
    } finally {
      busy.close();
    }
  });
});

describe('the lab and SIGTERM', () => {
  it('a cell that hangs dies with the lab: exit 143, no process of the lab left, results.json intact', async () => {
    const face = path.join(REPO, 'assets', 'demo-face.png');
    const marker = path.join(tmp, 'hang.pid');
    const hang = path.join(tmp, 'hang.mjs');
    // the marker is written whole, then renamed into place: once it exists, it holds the pid
    const partial = JSON.stringify(`${marker}.tmp`);
    writeFileSync(
      hang,
      [
        "import { renameSync, writeFileSync } from 'node:fs';",
        `writeFileSync(${partial}, String(process.pid));`,
        `renameSync(${partial}, ${JSON.stringify(marker)});`,
        'setInterval(() => {}, 1000);',
        'await new Promise(() => {});',
        '',
      ].join('\n'),
    );
    const conf = path.join(tmp, 'hang.json');
    const out = path.join(tmp, 'lab-hang');
    writeFileSync(
      conf,
      JSON.stringify({
        model: { identity: 64 },
        inputs: [face],
        coldRuns: 1,
        warmRuns: 0,
        cells: [
          { id: 'ok', provider: 'cpu' },
          { id: 'hangs', provider: 'cpu', env: { NODE_OPTIONS: `--import=${hang}` } },
        ],
      }),
    );
    const { spawn } = await import('node:child_process');
    const { existsSync, readFileSync } = await import('node:fs');
    const lab = spawn(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', 'lab', conf, '--out', out], {
      cwd: REPO,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    lab.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => lab.on('close', (code) => resolve(code)));
    // the hanging cell announces itself by its marker file
    await fileAppears(marker, exited);
    const cellPid = Number(readFileSync(marker, 'utf8'));
    lab.kill('SIGTERM');
    assert.equal(await exited, 143, stderr);
    // gone, or dead and waiting for a parent to reap it (a zombie: /proc/PID/stat's state Z)
    const state = existsSync(`/proc/${cellPid}/stat`)
      ? readFileSync(`/proc/${cellPid}/stat`, 'utf8').replace(/^.*\) /s, '')[0]
      : 'gone';
    assert.ok(state === 'gone' || state === 'Z', `the hanging cell ${cellPid} is still running (state ${state})`);
    const res = readResults(path.join(out, 'results.json'));
    assert.equal(res.cells.find((c) => c.id === 'ok')?.status, 'done');
    assert.match(stderr, /lab stopped by SIGTERM/);
  });
});

describe('a model whose output is not a number', () => {
  it("leaves each face as it was and says so in the result's warnings (never written silently)", async () => {
    const { prepareModel } = await import('../src/model/registry.js');
    const { Restorer } = await import('../src/face/restore.js');
    const { decodeImage } = await import('../src/io/image.js');
    const spec = { type: 'identity' as const, size: 64 };
    const prepared = await prepareModel(spec, 'fp32');
    const runner = {
      asked: 'cpu' as const,
      createMs: 0,
      placement: null,
      cudaOptions: null,
      run: async (_data: Float32Array, dims: number[], into?: Float32Array) => ({
        data: (into ?? new Float32Array(dims.reduce((a, b) => a * b, 1))).fill(Number.NaN),
        dims,
        ms: 0,
      }),
      release: async () => undefined,
    };
    const out = mkdtempSync(path.join(tmp, 'nan-'));
    const face = path.join(REPO, 'assets', 'demo-face.png');
    const r = await Restorer.create({
      model: spec,
      prepared,
      runner: Promise.resolve(runner),
      provider: 'cpu',
      outDir: out,
      faceThreads: 0,
    });
    try {
      const res = await r.restoreFile(face);
      assert.equal(res.error, undefined);
      assert.equal(res.faces.length, 1);
      assert.ok(
        res.warnings.some((w) => /face 0 is not a number \(NaN or infinite\): that face is left as it was/.test(w)),
        res.warnings.join('\n'),
      );
      // the face left as it was: the same photo as the identity model writes (its output is the aligned crop itself)
      const id = await Restorer.create({
        model: spec,
        prepared,
        provider: 'cpu',
        outDir: mkdtempSync(path.join(tmp, 'id-')),
        faceThreads: 0,
      });
      const ref = await id.restoreFile(face);
      await id.release();
      assert.deepEqual((await decodeImage(res.outputs.gpen!)).rgb, (await decodeImage(ref.outputs.gpen!)).rgb);
    } finally {
      await r.release();
    }
  });
});
