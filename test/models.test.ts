// `gpen-lab models` and `models get` against a real HTTP server on a loopback port (test/helpers/weights-server.ts):
// whole downloads, resumes, wrong sizes, 404, refused and stalled connections; then `--model NAME` resolving to the
// fetched file, the missing-model error, and the size/mtime check that decides when a fetched file is hashed again.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isGpenLabError, type ErrorCode } from '../src/errors.js';
import type { CatalogEntry } from '../src/model/catalog.js';
import { UPSTREAM_BASE_URL, catalogEntry } from '../src/model/catalog.js';
import type { Progress } from '../src/model/download.js';
import { getModel } from '../src/model/download.js';
import { readRecord, verifyFetched } from '../src/model/fetched.js';
import { describeModel, prepareModel, resolveModelFile } from '../src/model/registry.js';
import { listModels } from '../src/cli/models.js';
import { fixture } from './fixtures.js';
import { useTempCache } from './helpers/cache-dir.js';
import type { WeightsServer } from './helpers/weights-server.js';
import { seededBytes, startWeightsServer } from './helpers/weights-server.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const root = useTempCache('gpen-models-');
const MODELS = path.join(root, 'models');
const savedModels = process.env.GPEN_LAB_MODELS;
process.env.GPEN_LAB_MODELS = MODELS;
after(() => {
  if (savedModels === undefined) delete process.env.GPEN_LAB_MODELS;
  else process.env.GPEN_LAB_MODELS = savedModels;
});

let srv: WeightsServer;
before(async () => {
  srv = await startWeightsServer();
});
after(() => srv.close());

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
let serial = 0;
/** A fresh models folder for one case. */
const freshDir = () => path.join(root, `dir-${serial++}`);

/** A catalog entry of a test file: its size as the catalog states it (null: unknown). */
function entry(name: string, size: number | null, sha256: string | null = null): CatalogEntry {
  return {
    name,
    file: `${name}.pth`,
    task: 'test weights',
    size,
    sizeSource: 'the test',
    sha256,
    url: null,
    source: 'the test server',
    runnable: true,
    runs: 'yes',
  };
}

async function rejectsWith(
  p: Promise<unknown>,
  code: ErrorCode,
  ...mentions: (string | RegExp)[]
): Promise<{ message: string; fix: string; details: Record<string, unknown> }> {
  let caught: unknown;
  await p.then(
    () => assert.fail(`expected ${code}, but it succeeded`),
    (e: unknown) => {
      caught = e;
    },
  );
  assert.ok(isGpenLabError(caught), `expected a GpenLabError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.ok(caught.fix.length > 0);
  for (const m of mentions)
    assert.ok(
      typeof m === 'string'
        ? `${caught.message}\n${caught.fix}`.includes(m)
        : m.test(`${caught.message}\n${caught.fix}`),
      `${m} not in: ${caught.message} / ${caught.fix}`,
    );
  return caught;
}

describe('models get, against a loopback HTTP server', () => {
  it('a full download: the sha256 recorded, nothing at the final name before the end, no .part left', async () => {
    const bytes = seededBytes(1 << 20, 1);
    srv.serve('full.pth', { bytes, behaviour: 'normal' });
    const dir = freshDir();
    const final = path.join(dir, 'full.pth');
    const seen: Progress[] = [];
    const r = await getModel(entry('full', bytes.length), {
      dir,
      baseUrl: srv.base,
      onProgress: (p) => {
        assert.equal(existsSync(final), false, 'the final name appeared before the transfer ended');
        seen.push(p);
      },
    });
    assert.ok(seen.length > 2, 'progress is reported as the bytes come');
    assert.equal(seen.at(-1)!.received, bytes.length);
    assert.equal(seen.at(-1)!.total, bytes.length);
    assert.deepEqual(
      { file: r.file, size: r.size, sha256: r.sha256, resumedFrom: r.resumedFrom, alreadyThere: r.alreadyThere },
      { file: final, size: bytes.length, sha256: sha(bytes), resumedFrom: 0, alreadyThere: false },
    );
    assert.ok(readFileSync(final).equals(bytes));
    assert.deepEqual(readdirSync(dir).sort(), ['full.pth', 'full.pth.json']);
    const record = await readRecord(final);
    assert.equal(record?.sha256, sha(bytes));
    assert.equal(record?.url, `${srv.base}/full.pth`);
    assert.equal(record?.mtimeMs, statSync(final).mtimeMs);

    // a second get checks the recorded file and fetches nothing
    const before = srv.requests.length;
    const again = await getModel(entry('full', bytes.length), { dir, baseUrl: srv.base });
    assert.equal(again.alreadyThere, true);
    assert.equal(srv.requests.length, before);
  });

  it('a connection cut mid-body keeps the .part; the next get resumes with Range and the sha256 is right', async () => {
    const bytes = seededBytes(900_000, 2);
    srv.serve('cut.pth', { bytes, behaviour: 'cut-once', cutAt: 300_000 });
    const dir = freshDir();
    const e = await rejectsWith(
      getModel(entry('cut', bytes.length), { dir, baseUrl: srv.base }),
      'E_NETWORK',
      `${srv.base}/cut.pth`,
      / stopped sending after \d+ of 900000 bytes/,
    );
    // what the client had read when the socket closed: fetch drops the chunks it had queued but not yet handed over
    const kept = statSync(path.join(dir, 'cut.pth.part')).size;
    assert.ok(kept > 0 && kept <= 300_000, `${kept} bytes kept`);
    assert.equal(e.details.received, kept);
    assert.ok(e.fix.includes(`resumes from byte ${kept}`), e.fix);
    assert.ok(readFileSync(path.join(dir, 'cut.pth.part')).equals(bytes.subarray(0, kept)));
    assert.equal(existsSync(path.join(dir, 'cut.pth')), false);

    const first = srv.requests.length;
    const r = await getModel(entry('cut', bytes.length), { dir, baseUrl: srv.base });
    const resumed = srv.requests.slice(first);
    assert.deepEqual(
      resumed.map((q) => [q.range, q.ifRange, q.status]),
      [[`bytes=${kept}-`, '"v1"', 206]],
    );
    assert.equal(r.resumedFrom, kept);
    assert.equal(r.sha256, sha(bytes));
    assert.ok(readFileSync(r.file).equals(bytes));
    assert.deepEqual(readdirSync(dir).sort(), ['cut.pth', 'cut.pth.json']);
  });

  it('a server that ignores the Range on the resume: the file starts over and is still right', async () => {
    const bytes = seededBytes(400_000, 3);
    srv.serve('norange.pth', { bytes, behaviour: 'cut-once', cutAt: 100_000 });
    const dir = freshDir();
    await rejectsWith(getModel(entry('norange', null), { dir, baseUrl: srv.base }), 'E_NETWORK');
    srv.serve('norange.pth', { bytes, behaviour: 'chunked' });
    const r = await getModel(entry('norange', null), { dir, baseUrl: srv.base });
    assert.equal(r.resumedFrom, 0);
    assert.equal(r.sha256, sha(bytes));
    assert.equal(statSync(r.file).size, bytes.length);
  });

  it("a Content-Length other than the catalog's size: E_NETWORK, nothing at the final name, no .part", async () => {
    const bytes = seededBytes(50_000, 4);
    srv.serve('wrong.pth', { bytes, behaviour: 'normal' });
    const dir = freshDir();
    await rejectsWith(
      getModel(entry('wrong', bytes.length + 1), { dir, baseUrl: srv.base }),
      'E_NETWORK',
      '50000 bytes (Content-Length)',
      'is 50001 bytes',
    );
    assert.deepEqual(readdirSync(dir), []);
  });

  it("a body without Content-Length shorter or longer than the catalog's size: E_NETWORK, no .part", async () => {
    const bytes = seededBytes(300_000, 5);
    srv.serve('chunked.pth', { bytes, behaviour: 'chunked' });
    const dir = freshDir();
    await rejectsWith(
      getModel(entry('chunked', bytes.length + 1), { dir, baseUrl: srv.base }),
      'E_NETWORK',
      'is 300000 bytes (received) but chunked is 300001 bytes',
    );
    assert.deepEqual(readdirSync(dir), []);
    // a longer one is refused as soon as it passes the size
    const seen: number[] = [];
    const e = await rejectsWith(
      getModel(entry('chunked', 1000), { dir, baseUrl: srv.base, onProgress: (p) => seen.push(p.received) }),
      'E_NETWORK',
      /is \d+ bytes \(received so far, without a Content-Length\) but chunked is 1000 bytes/,
    );
    assert.ok((e.details.got as number) > 1000);
    assert.ok(
      seen.every((n) => n <= 1000),
      'no progress past the size is reported',
    );
    assert.deepEqual(readdirSync(dir), []);
  });

  it("a sha256 other than the catalog's: E_CHECKSUM, nothing kept", async () => {
    const bytes = seededBytes(10_000, 6);
    srv.serve('hash.pth', { bytes, behaviour: 'normal' });
    const dir = freshDir();
    await rejectsWith(
      getModel(entry('hash', bytes.length, '0'.repeat(64)), { dir, baseUrl: srv.base }),
      'E_CHECKSUM',
      sha(bytes),
    );
    assert.deepEqual(readdirSync(dir), []);
  });

  it('404: E_NETWORK naming the URL, with the fix', async () => {
    const dir = freshDir();
    const e = await rejectsWith(
      getModel(entry('absent', null), { dir, baseUrl: srv.base }),
      'E_NETWORK',
      `${srv.base}/absent.pth`,
      'HTTP 404',
      '--url',
    );
    assert.equal(e.details.status, 404);
    assert.equal(existsSync(path.join(dir, 'absent.pth')), false);
  });

  it('a refused connection: E_NETWORK saying so', async () => {
    const closed = await startWeightsServer();
    await closed.close();
    await rejectsWith(
      getModel(entry('refused', null), { dir: freshDir(), baseUrl: closed.base }),
      'E_NETWORK',
      'ECONNREFUSED',
      `${closed.base}/refused.pth`,
    );
  });

  it('a server that never answers: the stall timeout ends the get with E_NETWORK', async () => {
    srv.serve('silent.pth', { bytes: seededBytes(1000, 7), behaviour: 'silent' });
    const dir = freshDir();
    await rejectsWith(
      getModel(entry('silent', null), { dir, baseUrl: srv.base, stallMs: 150 }),
      'E_NETWORK',
      'sent nothing for 0.1 s',
      'stalled',
      '--stall-timeout',
    );
    assert.equal(existsSync(path.join(dir, 'silent.pth')), false);
  });

  it('a server that stops sending mid-body: the stall timeout, then a resume', async () => {
    const bytes = seededBytes(600_000, 8);
    srv.serve('stall.pth', { bytes, behaviour: 'stall-body', cutAt: 200_000 });
    const dir = freshDir();
    await rejectsWith(
      getModel(entry('stall', bytes.length), { dir, baseUrl: srv.base, stallMs: 150 }),
      'E_NETWORK',
      'after 200000 bytes',
      'resumes from byte 200000',
    );
    assert.equal(existsSync(path.join(dir, 'stall.pth')), false);
    srv.serve('stall.pth', { bytes, behaviour: 'normal' });
    const r = await getModel(entry('stall', bytes.length), { dir, baseUrl: srv.base });
    assert.equal(r.resumedFrom, 200_000);
    assert.equal(r.sha256, sha(bytes));
  });

  it("a lock held by a live process is E_BUSY; a dead process's lock is taken over", async () => {
    const bytes = seededBytes(2000, 9);
    srv.serve('locked.pth', { bytes, behaviour: 'normal' });
    const dir = freshDir();
    mkdirSync(dir, { recursive: true });
    const lockFile = path.join(dir, 'locked.pth.part.lock');
    writeFileSync(lockFile, String(process.pid));
    await rejectsWith(
      getModel(entry('locked', bytes.length), { dir, baseUrl: srv.base }),
      'E_BUSY',
      `pid ${process.pid}`,
    );
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    writeFileSync(lockFile, String(dead));
    const r = await getModel(entry('locked', bytes.length), { dir, baseUrl: srv.base });
    assert.equal(r.sha256, sha(bytes));
    assert.equal(existsSync(lockFile), false);
  });
});

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'src/cli/index.ts', ...args],
      {
        cwd: REPO,
        env: { ...process.env, NO_COLOR: '1', GPEN_LAB_CUDA_WARMUP: '0', ...env },
        maxBuffer: 16 << 20,
        timeout: 60_000,
      },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    );
  });
}

describe('the catalog', () => {
  it('models --json: every upstream file, its size or "unknown", where upstream publishes it, whether gpen-lab runs it', async () => {
    const r = await cli(['models', '--json'], { GPEN_LAB_MODELS: freshDir() });
    assert.equal(r.code, 0, r.stderr);
    const listed = JSON.parse(r.stdout) as Awaited<ReturnType<typeof listModels>>;
    const names = listed.models.map((m) => m.name);
    for (const n of [
      'GPEN-BFR-256',
      'GPEN-BFR-512',
      'GPEN-BFR-1024',
      'GPEN-BFR-2048',
      'GPEN-BFR-256-D',
      'GPEN-BFR-512-D',
      'GPEN-Colorization-1024',
      'GPEN-Inpainting-1024',
      'GPEN-Seg2face-512',
      'RetinaFace-R50',
      'RealESRNet_x1',
      'RealESRNet_x2',
      'RealESRNet_x4',
    ])
      assert.ok(names.includes(n), n);
    for (const m of listed.models) {
      assert.equal(m.runnable, /^GPEN-BFR-\d+$/.test(m.name), m.name);
      assert.equal(m.size === null, m.sizeSource.startsWith('unknown'), m.name);
      assert.equal(m.fetched, null);
      assert.ok(m.source.length > 0 && m.runs.length > 0);
    }
    const bfr512 = listed.models.find((m) => m.name === 'GPEN-BFR-512')!;
    assert.equal(bfr512.getUrl, `${UPSTREAM_BASE_URL}GPEN-BFR-512.pth`);
    assert.equal(bfr512.size, 284_085_738);
    assert.equal(listed.models.find((m) => m.name === 'GPEN-BFR-1024')!.getUrl, null);
    assert.equal(listed.models.find((m) => m.name === 'RealESRNet_x4')!.file, 'realesrnet_x4.pth');
  });

  it('a fetched file is listed with its record; --url applies a base to every entry', async () => {
    const dir = freshDir();
    const bytes = readFileSync(fixture('gpen-tiny-64.pth'));
    srv.serve('GPEN-BFR-2048.pth', { bytes, behaviour: 'normal' });
    await getModel(catalogEntry('GPEN-BFR-2048')!, { dir, baseUrl: srv.base });
    const listed = await listModels(dir, srv.base);
    const m = listed.models.find((x) => x.name === 'GPEN-BFR-2048')!;
    assert.deepEqual(m.fetched && { recorded: m.fetched.recorded, sha256: m.fetched.sha256 }, {
      recorded: true,
      sha256: sha(bytes),
    });
    assert.equal(m.getUrl, `${srv.base}/GPEN-BFR-2048.pth`);
  });
});

describe('--model NAME', () => {
  const bytes = readFileSync(fixture('gpen-tiny-64.pth'));
  let fetched = '';
  before(async () => {
    srv.serve('GPEN-BFR-1024.pth', { bytes, behaviour: 'normal' });
    fetched = (await getModel(catalogEntry('GPEN-BFR-1024')!, { dir: MODELS, baseUrl: srv.base })).file;
  });

  it("a catalog name resolves to the fetched file, for describeModel and prepareModel (restore's path)", async () => {
    assert.equal(fetched, path.join(MODELS, 'GPEN-BFR-1024.pth'));
    assert.equal(await resolveModelFile('GPEN-BFR-1024'), fetched);
    assert.equal(await resolveModelFile('gpen-bfr-1024.pth'), fetched);
    const info = await describeModel('GPEN-BFR-1024');
    assert.equal(info.file, fetched);
    assert.equal(info.size, 64);
    assert.equal(info.sha256, sha(bytes));
    const prepared = await prepareModel({ type: 'file', file: 'GPEN-BFR-1024' });
    assert.equal(prepared.label, fetched);
    assert.equal(prepared.info.file, fetched);
  });

  it('the missing-model error names `gpen-lab models get` (with the name where it is a catalog name)', async () => {
    await rejectsWith(
      resolveModelFile('GPEN-BFR-512'),
      'E_FILE_MISSING',
      'GPEN-BFR-512 has not been fetched',
      path.join(MODELS, 'GPEN-BFR-512.pth'),
      '`gpen-lab models get GPEN-BFR-512`',
    );
    await rejectsWith(
      resolveModelFile('weights/GPEN-BFR-512.pth'),
      'E_FILE_MISSING',
      'Input file is missing: weights/GPEN-BFR-512.pth',
      '`gpen-lab models get GPEN-BFR-512`',
    );
    await rejectsWith(
      resolveModelFile('nope.onnx'),
      'E_FILE_MISSING',
      'nope.onnx',
      '`gpen-lab models`',
      'gpen-lab models get',
    );
    await rejectsWith(resolveModelFile('RetinaFace-R50'), 'E_FILE_MISSING', 'not a model gpen-lab runs');
    const r = await cli(
      ['restore', 'README.md', '-o', path.join(root, 'out'), '--model', 'GPEN-BFR-512', '--provider', 'cpu'],
      { GPEN_LAB_MODELS: freshDir() },
    );
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /error \[E_FILE_MISSING\]: Input file is missing: GPEN-BFR-512 /);
    assert.match(r.stderr, /fix: Fetch it with `gpen-lab models get GPEN-BFR-512`/);
  });

  it('checked by size and mtime: unchanged is not hashed; a new mtime is hashed and re-recorded; a changed byte is E_CHECKSUM', async () => {
    const record = (await readRecord(fetched))!;
    assert.deepEqual(await verifyFetched(fetched, record), { rehashed: false });
    utimesSync(fetched, 1_700_000_000, 1_700_000_000);
    assert.deepEqual(await verifyFetched(fetched, (await readRecord(fetched))!), { rehashed: true });
    const moved = (await readRecord(fetched))!;
    assert.equal(moved.mtimeMs, 1_700_000_000_000);
    assert.equal(moved.sha256, record.sha256);
    assert.deepEqual(await verifyFetched(fetched, moved), { rehashed: false });

    const changed = Buffer.from(bytes);
    changed[changed.length >> 1] ^= 0xff;
    writeFileSync(fetched, changed);
    // the same size and mtime: taken as unchanged without reading it, as make and git's index do
    utimesSync(fetched, 1_700_000_000, 1_700_000_000);
    assert.equal(await resolveModelFile('GPEN-BFR-1024'), fetched);
    utimesSync(fetched, 1_700_000_100, 1_700_000_100);
    await rejectsWith(
      resolveModelFile('GPEN-BFR-1024'),
      'E_CHECKSUM',
      fetched,
      record.sha256,
      sha(changed),
      '`gpen-lab models get GPEN-BFR-1024 --force`',
    );
    // the fix works: fetched again over the changed file
    const again = await getModel(catalogEntry('GPEN-BFR-1024')!, { dir: MODELS, baseUrl: srv.base, force: true });
    assert.equal(again.sha256, sha(bytes));
    assert.equal(await resolveModelFile('GPEN-BFR-1024'), fetched);
  });
});
