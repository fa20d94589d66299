// The service against a real server on a loopback port: good images (raw body, multipart, JSON), every bad-input case
// from the restoration issue with its status and coded error, faces of concurrent requests sharing one batch (seen in
// /metrics), queue overflow (429 with Retry-After), not ready (503), per-request timeout (504), and a shutdown while
// busy in which no accepted request is lost or cut.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GpenLabError } from '../src/errors.js';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Service } from '../src/serve/server.js';
import { startService } from '../src/serve/server.js';
import { FaceBatcher } from '../src/serve/batcher.js';
import { imageInfo, pattern, write16BitPng, writeCmykJpeg, writePng, writePngBomb } from './helpers/images.js';
import { readLines } from './helpers/signals.js';

const FACE = readFileSync('assets/demo-face.png');
let tmp: string;
before(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-serve-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

const post = (url: string, body: Buffer | FormData, headers: Record<string, string> = {}, query = '') =>
  fetch(`${url}/v1/restore${query}`, {
    method: 'POST',
    body: body instanceof FormData ? body : new Uint8Array(body),
    headers: body instanceof FormData ? headers : { 'content-type': 'application/octet-stream', ...headers },
  });
const metric = (text: string, name: string): number =>
  Number(new RegExp(`^${name.replace(/[{}"=]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);

describe('the batcher', () => {
  it('gives each request its own faces back, splitting requests larger than a batch', async () => {
    const seen: number[] = [];
    const b = new FaceBatcher({
      maxBatch: 3,
      maxWaitMs: 20,
      perFace: 2,
      run: async (x, n) => {
        seen.push(n);
        return x.map((v) => v * 10);
      },
    });
    const reqs = [
      [1, 2],
      [3, 4, 5, 6, 7, 8, 9, 10],
      [11, 12],
    ].map((v) => Float32Array.from(v));
    const outs = await Promise.all(reqs.map((x) => b.infer(x, x.length / 2)));
    outs.forEach((o, i) =>
      assert.deepEqual(
        [...o],
        [...reqs[i]].map((v) => v * 10),
      ),
    );
    assert.deepEqual(seen, [3, 3], 'six faces (1 + 4 + 1) in batches of at most three, the second request split');
    const failing = new FaceBatcher({
      maxBatch: 4,
      maxWaitMs: 1,
      perFace: 1,
      run: async () => {
        throw new Error('boom');
      },
    });
    await assert.rejects(failing.infer(Float32Array.from([1]), 1), /boom/);
  });
});

describe('the service on a loopback port (identity model)', () => {
  let svc: Service;
  before(async () => {
    svc = await startService({
      port: 0,
      model: { type: 'identity', size: 64 },
      maxBatch: 8,
      maxWaitMs: 300,
      maxQueue: 64,
      bodyLimit: 2 * 2 ** 20,
      logLevel: false,
      maxPixels: 4_000_000,
    });
    await svc.ready;
  });
  after(() => svc.close());

  it('health, readiness, doctor and metrics answer', async () => {
    assert.equal((await fetch(`${svc.url}/healthz`)).status, 200);
    const ready = (await (await fetch(`${svc.url}/readyz`)).json()) as {
      status: string;
      provider: string;
      route: { asked: { provider: string }; route: string; workload: string; skipped: { provider: string }[] };
      why: string;
    };
    assert.equal(ready.status, 'ready');
    // no provider named: auto chose, and readyz says what and why
    assert.equal(ready.route.asked.provider, 'auto');
    assert.equal(ready.route.workload, 'service');
    assert.equal(ready.route.route, 'fast');
    assert.match(ready.why, new RegExp(`^provider auto -> ${ready.provider} \\(fast route`));
    if (ready.provider === 'cpu')
      assert.deepEqual(
        ready.route.skipped.map((s) => s.provider),
        ['cuda', 'webgpu'],
      );
    const doc = (await (await fetch(`${svc.url}/v1/doctor`)).json()) as { schema: string };
    assert.equal(doc.schema, 'gpen-lab.doctor/1');
    const m = await (await fetch(`${svc.url}/metrics`)).text();
    assert.match(m, /^gpen_ready 1$/m);
    assert.match(m, /^process_resident_memory_bytes /m);
  });

  it('restores a raw upload into an image of the same size, and multipart with options into JSON', async () => {
    const r = await post(svc.url, FACE);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'image/png');
    assert.equal(r.headers.get('x-gpen-faces'), '1');
    assert.match(r.headers.get('server-timing') ?? '', /infer;dur=/);
    const meta = await imageInfo(Buffer.from(await r.arrayBuffer()));
    assert.deepEqual([meta.width, meta.height], [92, 92]);
    const form = new FormData();
    form.append('image', new Blob([FACE]), 'einstein.png');
    form.append('alpha', '0.5');
    form.append('format', 'jpg');
    form.append('save_faces', 'true');
    const j = await post(svc.url, form, { accept: 'application/json' });
    assert.equal(j.status, 200);
    const body = (await j.json()) as {
      faces: unknown[];
      image: { format: string; base64: string };
      face_images: unknown[];
      provider: { asked: string; chosen: string; ran: string[] };
      stages_ms: Record<string, number>;
    };
    assert.equal(body.faces.length, 1);
    assert.equal(body.image.format, 'jpg');
    assert.equal((await imageInfo(Buffer.from(body.image.base64, 'base64'))).format, 'jpeg');
    assert.equal(body.face_images.length, 1);
    assert.deepEqual(body.provider, { asked: 'auto', chosen: body.provider.chosen, ran: [body.provider.chosen] });
    assert.ok(body.stages_ms.detect > 0);
  });

  it("client mistakes are 4xx in the project's shape, never a 5xx; any Content-Type but multipart is the image itself", async () => {
    const raw = (body: Buffer | string, type: string, pathname = '/v1/restore') =>
      fetch(`${svc.url}${pathname}`, {
        method: 'POST',
        body: typeof body === 'string' ? body : new Uint8Array(body),
        headers: { 'content-type': type },
      });
    const form = (parts: [string, string | Blob, string?][]) => {
      const fd = new FormData();
      for (const [k, v, n] of parts)
        if (typeof v === 'string') fd.append(k, v);
        else fd.append(k, v, n);
      return fd;
    };
    const png = new Blob([new Uint8Array(FACE)], { type: 'image/png' });
    const cases: [string, () => Promise<Response>, number, string][] = [
      ['multipart without a boundary', () => raw('--x\r\n', 'multipart/form-data'), 400, 'E_ARGUMENT'],
      [
        'multipart never closed',
        () =>
          raw(
            `--b\r\nContent-Disposition: form-data; name="f"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n${FACE.subarray(0, 100).toString('latin1')}`,
            'multipart/form-data; boundary=b',
          ),
        400,
        'E_ARGUMENT',
      ],
      [
        'two files',
        () =>
          post(
            svc.url,
            form([
              ['a', png, 'a.png'],
              ['b', png, 'b.png'],
            ]),
          ),
        400,
        'E_ARGUMENT',
      ],
      [
        'too many fields',
        () =>
          post(
            svc.url,
            form([...Array.from({ length: 12 }, (_, i) => [`k${i}`, 'v'] as [string, string]), ['f', png, 'a.png']]),
          ),
        400,
        'E_ARGUMENT',
      ],
      [
        'a file over the limit',
        () => post(svc.url, form([['f', new Blob([new Uint8Array(3 * 2 ** 20)]), 'big.png']])),
        413,
        'E_BODY_TOO_LARGE',
      ],
      ['invalid JSON', () => raw('{"image": ', 'application/json'), 415, 'E_FORMAT_UNKNOWN'],
      ['an unknown route', () => raw(FACE, 'image/png', '/v1/nope'), 404, 'E_NOT_FOUND'],
    ];
    for (const [what, send, status, code] of cases) {
      const r = await send();
      assert.equal(r.status, status, what);
      const e = (await r.json()) as { error: { code: string; message: string; fix: string } };
      assert.equal(e.error.code, code, `${what}: ${JSON.stringify(e)}`);
      assert.ok(e.error.message.length > 0 && e.error.fix.length > 0, what);
    }
    const asText = await raw(FACE, 'text/plain');
    assert.equal(asText.status, 200, 'a PNG sent as text/plain is restored');
    await asText.arrayBuffer();
  });

  it('every bad input gets its status and coded error; odd but valid images are restored', async () => {
    const f = (n: string) => path.join(tmp, n);
    writePngBomb(f('bomb.png'), 20000);
    await writeCmykJpeg(f('cmyk.jpg'), pattern(64, 48), 64, 48);
    await write16BitPng(f('deep.png'), pattern(64, 48), 64, 48);
    await writePng(
      f('grey.png'),
      pattern(64, 48).filter((_v, i) => i % 3 === 0),
      64,
      48,
      1,
    );
    const cases: [string, Buffer, number, string | null, string?][] = [
      ['empty body', Buffer.alloc(0), 415, 'E_FORMAT_UNKNOWN'],
      ['text', Buffer.from('hello, this is not an image'), 415, 'E_FORMAT_UNKNOWN'],
      ['random bytes', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251)), 415, 'E_FORMAT_UNKNOWN'],
      ['truncated PNG', FACE.subarray(0, Math.floor(FACE.length / 2)), 422, 'E_IMAGE_CORRUPT'],
      ['truncated JPEG header', Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16]), 422, 'E_IMAGE_CORRUPT'],
      ['decompression bomb', readFileSync(f('bomb.png')), 422, 'E_IMAGE_TOO_LARGE'],
      ['body over the limit', Buffer.concat([FACE, Buffer.alloc(3 * 2 ** 20)]), 413, 'E_BODY_TOO_LARGE'],
      ['alpha out of range', FACE, 400, 'E_ARGUMENT', '?alpha=2'],
      ['unknown format', FACE, 400, 'E_ARGUMENT', '?format=bmp'],
      ['CMYK JPEG', readFileSync(f('cmyk.jpg')), 200, null],
      ['16-bit PNG', readFileSync(f('deep.png')), 200, null],
      ['grey PNG', readFileSync(f('grey.png')), 200, null],
    ];
    for (const [what, body, status, code, query] of cases) {
      const r = await post(svc.url, body, {}, query ?? '');
      assert.equal(r.status, status, what);
      if (code) {
        const e = (await r.json()) as { error: { code: string; message: string; fix: string } };
        assert.equal(e.error.code, code, what);
        assert.ok(e.error.fix.length > 0, `${what}: a fix`);
      } else await r.arrayBuffer();
    }
    // no face: the image back unchanged, with the warning
    const j = await post(svc.url, readFileSync(f('grey.png')), { accept: 'application/json' });
    const body = (await j.json()) as { faces: unknown[]; warnings: string[] };
    assert.deepEqual([j.status, body.faces.length], [200, 0]);
    assert.match(body.warnings.join(' '), /no face found/);
    const m = await (await fetch(`${svc.url}/metrics`)).text();
    assert.ok(metric(m, 'gpen_errors_total{code="E_FORMAT_UNKNOWN"}') >= 4);
  });

  it('faces of concurrent requests share one batch (seen in the metrics)', async () => {
    const before = await (await fetch(`${svc.url}/metrics`)).text();
    const b0 = metric(before, 'gpen_batch_size_count');
    const s0 = metric(before, 'gpen_batch_size_sum');
    const rs = await Promise.all(Array.from({ length: 6 }, () => post(svc.url, FACE)));
    assert.deepEqual(
      rs.map((r) => r.status),
      [200, 200, 200, 200, 200, 200],
    );
    await Promise.all(rs.map((r) => r.arrayBuffer()));
    const m = await (await fetch(`${svc.url}/metrics`)).text();
    const faces = metric(m, 'gpen_batch_size_sum') - s0;
    const batches = metric(m, 'gpen_batch_size_count') - b0;
    assert.equal(faces, 6);
    assert.ok(batches < 6, `6 faces in ${batches} batches`);
    assert.ok(
      metric(m, 'gpen_batch_requests_bucket{le="1"}') < metric(m, 'gpen_batch_requests_count'),
      'some batch held faces of several requests',
    );
  });
});

describe('admission by decoded pixels', () => {
  it('an image that would pass the pixel budget gets 429 E_BUSY while others hold it, and is admitted once they are done', async () => {
    // the demo face is 92 x 92 = 8464 pixels: a budget of 10000 holds one at a time; the batcher's wait keeps it held
    const svc = await startService({
      port: 0,
      model: { type: 'identity', size: 64 },
      maxWaitMs: 300,
      maxInflightPixels: 10_000,
      logLevel: false,
    });
    try {
      await svc.ready;
      const rs = await Promise.all([post(svc.url, FACE), post(svc.url, FACE)]);
      const statuses = rs.map((r) => r.status).sort();
      assert.deepEqual(statuses, [200, 429]);
      const busy = rs.find((r) => r.status === 429)!;
      assert.ok(Number(busy.headers.get('retry-after')) >= 1);
      assert.match(
        ((await busy.json()) as { error: { code: string; message: string } }).error.message,
        /holds 0\.01 MP of images in progress; this one's 0\.01 MP would pass its budget of 0\.01 MP/,
      );
      await rs.find((r) => r.status === 200)!.arrayBuffer();
      const again = await post(svc.url, FACE);
      assert.equal(again.status, 200, 'the pixels were given back');
      await again.arrayBuffer();
    } finally {
      await svc.close();
    }
  });
});

describe('limits: queue overflow, not ready, timeout', () => {
  it('a full queue answers 429 with Retry-After, and the admitted requests finish', async () => {
    const svc = await startService({
      port: 0,
      model: { type: 'identity', size: 64 },
      maxBatch: 8,
      maxWaitMs: 400,
      maxQueue: 2,
      logLevel: false,
    });
    try {
      await svc.ready;
      const rs = await Promise.all(Array.from({ length: 6 }, () => post(svc.url, FACE)));
      const codes = rs.map((r) => r.status).sort();
      assert.deepEqual(codes, [200, 200, 429, 429, 429, 429]);
      const busy = rs.find((r) => r.status === 429)!;
      assert.ok(Number(busy.headers.get('retry-after')) >= 1);
      assert.equal(((await busy.json()) as { error: { code: string } }).error.code, 'E_BUSY');
    } finally {
      await svc.close();
    }
  });

  it('while the model loads (in a worker thread): healthz answers, readyz and restore say 503 loading, then ready', async () => {
    // the engine thread is blocked before it builds the weights until release(): what answers meanwhile needs no load
    const holdLoad = new Int32Array(new SharedArrayBuffer(4));
    const release = () => {
      Atomics.store(holdLoad, 0, 1);
      Atomics.notify(holdLoad, 0);
    };
    const svc = await startService({ port: 0, model: { type: 'synthetic', size: 256 }, logLevel: false, holdLoad });
    try {
      const health = await fetch(`${svc.url}/healthz`);
      assert.equal(health.status, 200, 'healthz answers while the load is held');
      const rz = await fetch(`${svc.url}/readyz`);
      assert.deepEqual([rz.status, ((await rz.json()) as { status: string }).status], [503, 'loading']);
      const early = await post(svc.url, FACE);
      assert.equal(early.status, 503);
      assert.ok(Number(early.headers.get('retry-after')) >= 1);
      assert.deepEqual((await early.json()) as { error: { code: string }; synthetic: boolean }, {
        error: {
          code: 'E_NOT_READY',
          message: 'The model is still loading',
          fix: 'Retry after the time in Retry-After; GET /readyz says when it is ready.',
        },
        synthetic: true,
      });
      release();
      await svc.ready;
      assert.equal((await fetch(`${svc.url}/readyz`)).status, 200);
      assert.equal((await post(svc.url, FACE)).status, 200);
    } finally {
      release();
      await svc.close();
    }
  });

  it('a model that is not ready answers 503 with Retry-After, and readyz says why', async () => {
    const svc = await startService({
      port: 0,
      model: { type: 'file', file: path.join(tmp, 'missing.onnx') },
      logLevel: false,
    });
    try {
      await assert.rejects(svc.ready);
      const r = await post(svc.url, FACE);
      assert.equal(r.status, 503);
      assert.ok(Number(r.headers.get('retry-after')) >= 1);
      const e = (await r.json()) as { error: { code: string; message: string } };
      assert.equal(e.error.code, 'E_NOT_READY');
      assert.match(e.error.message, /failed to load: .*missing\.onnx/);
      const rz = await fetch(`${svc.url}/readyz`);
      assert.equal(rz.status, 503);
      assert.equal(((await rz.json()) as { status: string }).status, 'failed');
      assert.equal((await fetch(`${svc.url}/healthz`)).status, 200, 'the process is up');
    } finally {
      await svc.close();
    }
  });

  it('CUDA options with the cpu provider: the model does not load, and readyz names the reason', async () => {
    const svc = await startService({
      port: 0,
      model: { type: 'identity', size: 64 },
      provider: 'cpu',
      cudaOptions: { cudnn_conv_algo_search: 'HEURISTIC' },
      logLevel: false,
    });
    try {
      await assert.rejects(
        svc.ready,
        (e: unknown) =>
          e instanceof GpenLabError &&
          e.code === 'E_ARGUMENT' &&
          /cudaOptions were given but the provider is cpu/.test(e.message),
      );
      const rz = await fetch(`${svc.url}/readyz`);
      assert.equal(rz.status, 503);
      const body = (await rz.json()) as { status: string; error?: { message?: string } };
      assert.equal(body.status, 'failed');
      assert.match(JSON.stringify(body), /cudaOptions were given but the provider is cpu/);
    } finally {
      await svc.close();
    }
  });

  it('a request over its time limit answers 504 E_TIMEOUT', async () => {
    const svc = await startService({ port: 0, model: { type: 'identity', size: 64 }, logLevel: false, timeoutMs: 1 });
    try {
      await svc.ready;
      const late = await post(svc.url, FACE);
      assert.equal(late.status, 504);
      assert.equal(((await late.json()) as { error: { code: string } }).error.code, 'E_TIMEOUT');
    } finally {
      await svc.close();
    }
  });
});

describe('gpen-lab serve, the command', () => {
  it('without weights it stops with a coded error naming --model and --synthetic', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', 'serve'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /E_ARGUMENT[\s\S]*--model[\s\S]*--synthetic/);
  });

  it('SIGTERM while busy: every accepted request completes, then the process exits 0', async () => {
    const args = ['--import', 'tsx', 'src/cli/index.ts', 'serve', '--synthetic', '256', '--port', '0'];
    args.push('--max-wait-ms', '50');
    // the timeout is a safety net only: a child that hangs is killed, and the test fails on its exit code
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 300_000,
      killSignal: 'SIGKILL',
    });
    const out = readLines(child.stdout);
    const err = readLines(child.stderr);
    const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
    await out.waitFor(/"event":"ready"/).catch((e: unknown) => assert.fail(`${String(e)}\n${err.text}`));
    const url = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(out.text)?.[1];
    assert.ok(url, out.text);
    const pending = Array.from({ length: 4 }, () =>
      post(url, FACE).then(async (r) => ({
        status: r.status,
        bytes: (await r.arrayBuffer()).byteLength,
        synthetic: r.headers.get('x-gpen-synthetic'),
      })),
    );
    // each request is logged once it is past fastify's check for a server closing: accepted, and then in progress
    await out.waitFor(/"url":"\/v1\/restore".*"msg":"incoming request"/, 4);
    child.kill('SIGTERM');
    const results = await Promise.all(pending);
    for (const r of results)
      assert.deepEqual([r.status, r.bytes > 1000, r.synthetic], [200, true, 'true'], JSON.stringify(results));
    assert.equal(await exited, 0);
    await out.ended;
    const log = out.text;
    await assert.rejects(fetch(`${url}/healthz`), 'the port is closed after the shutdown');
    assert.match(log, /"event":"shutdown"/);
    assert.match(log, /"event":"stopped"/);
    const lines = log.trim().split('\n');
    assert.ok(
      lines.every((l) => {
        try {
          JSON.parse(l);
          return true;
        } catch {
          return false;
        }
      }),
      'every log line is JSON',
    );
  });
});
