// The service's two threads: the HTTP thread answers /healthz while the engine thread is blocked inside a job (held
// there through EngineConfig.hold, as a synchronous inference holds it), the engine thread's coded errors reach the
// client with their status and shape, cancellations (a client gone, a timeout) reach the engine thread and stop the
// job before its inference, pixels are given back only once the engine thread has stopped, a dead engine thread
// means 503s and never a dead process, and close() finishes the job in hand before it ends the thread.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Service } from '../src/serve/server.js';
import { startService } from '../src/serve/server.js';
import { writePngBomb } from './helpers/images.js';

const FACE = readFileSync('assets/demo-face.png');
let tmp: string;
before(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-serve-engine-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

const post = (url: string, body: Buffer, signal?: AbortSignal) =>
  fetch(`${url}/v1/restore`, {
    method: 'POST',
    body: new Uint8Array(body),
    headers: { 'content-type': 'application/octet-stream' },
    ...(signal ? { signal } : {}),
  });
const metric = async (url: string, name: string): Promise<number> => {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
};

/** A gate for EngineConfig.hold: the engine thread blocks after acknowledging each job until release(). */
function gate(): { hold: Int32Array; release: () => void } {
  const hold = new Int32Array(new SharedArrayBuffer(4));
  return {
    hold,
    release: () => {
      Atomics.store(hold, 0, 1);
      Atomics.notify(hold, 0);
    },
  };
}

/** The next job id the engine thread acknowledges as in its pipeline (listening before the request is sent). */
const nextStarted = (svc: Service) => once(svc.engine, 'started').then(([id]) => id as number);
/** How each job ended in the engine thread (null: a result, else its error's code), recorded from the service's start. */
function settlements(svc: Service): (id: number) => Promise<string | null> {
  const seen = new Map<number, string | null>();
  const waiting = new Map<number, (code: string | null) => void>();
  svc.engine.on('settled', (id, code) => {
    seen.set(id, code);
    waiting.get(id)?.(code);
  });
  return (id) => (seen.has(id) ? Promise.resolve(seen.get(id)!) : new Promise((resolve) => waiting.set(id, resolve)));
}

describe('the engine thread', () => {
  it('/healthz, /readyz and /metrics answer while a job blocks the engine thread', async () => {
    const g = gate();
    const svc = await startService({ port: 0, model: { type: 'identity', size: 64 }, logLevel: false, hold: g.hold });
    try {
      await svc.ready;
      const started = nextStarted(svc);
      let finished = false;
      const pending = post(svc.url, FACE).then((r) => {
        finished = true;
        return r;
      });
      await started;
      // the engine thread is blocked in Atomics.wait until release(): anything answered now was answered without it
      assert.equal((await fetch(`${svc.url}/healthz`)).status, 200);
      assert.equal((await fetch(`${svc.url}/readyz`)).status, 200);
      assert.equal(await metric(svc.url, 'gpen_queue_depth'), 1);
      assert.equal(finished, false, 'the restore is still held in the engine thread');
      g.release();
      const r = await pending;
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('x-gpen-faces'), '1');
      await r.arrayBuffer();
    } finally {
      g.release();
      await svc.close();
    }
  });

  it('a coded error raised in the engine thread reaches the client with its status and the error shape', async () => {
    writePngBomb(path.join(tmp, 'bomb.png'), 20000);
    const svc = await startService({ port: 0, model: { type: 'identity', size: 64 }, logLevel: false });
    try {
      await svc.ready;
      const settledOf = settlements(svc);
      // both pass the HTTP thread's checks (the bytes are an image, the header has a size) and fail in the decode
      const cases: [string, Buffer, number, string][] = [
        ['truncated PNG', FACE.subarray(0, Math.floor(FACE.length / 2)), 422, 'E_IMAGE_CORRUPT'],
        ['decompression bomb', readFileSync(path.join(tmp, 'bomb.png')), 422, 'E_IMAGE_TOO_LARGE'],
      ];
      for (const [what, body, status, code] of cases) {
        const started = nextStarted(svc);
        const response = post(svc.url, body);
        const settled = settledOf(await started);
        const r = await response;
        assert.equal(await settled, code, `${what}: the engine thread's own error`);
        assert.equal(r.status, status, what);
        const e = (await r.json()) as { error: { code: string; message: string; fix: string } };
        assert.deepEqual(Object.keys(e), ['error'], what);
        assert.deepEqual(Object.keys(e.error), ['code', 'message', 'fix'], what);
        assert.equal(e.error.code, code, what);
        assert.match(e.error.message, /upload/, `${what}: the message names the upload`);
        assert.ok(e.error.fix.length > 0, what);
      }
      assert.equal(await metric(svc.url, 'gpen_errors_total{code="E_IMAGE_CORRUPT"}'), 1);
    } finally {
      await svc.close();
    }
  });

  it('a client that goes away cancels its job in the engine thread, before the inference', async () => {
    const g = gate();
    const svc = await startService({ port: 0, model: { type: 'identity', size: 64 }, logLevel: false, hold: g.hold });
    try {
      await svc.ready;
      const settledOf = settlements(svc);
      const batches = await metric(svc.url, 'gpen_batch_size_count');
      const started = nextStarted(svc);
      const ac = new AbortController();
      const response = post(svc.url, FACE, ac.signal).catch((e: unknown) => e);
      const id = await started;
      const settled = settledOf(id);
      const cancelled = once(svc.engine, 'cancel');
      ac.abort();
      assert.deepEqual(await cancelled, [id], 'the HTTP thread sent the cancellation');
      assert.ok((await response) instanceof Error, 'the client gave up');
      g.release();
      assert.equal(await settled, 'E_TIMEOUT', 'the engine thread dropped the job');
      assert.equal(await metric(svc.url, 'gpen_batch_size_count'), batches, 'its face never reached an inference');
    } finally {
      g.release();
      await svc.close();
    }
  });

  it('a request that times out answers 504 at once; its pixels come back when the engine thread has stopped it', async () => {
    const g = gate();
    // the demo face is 8464 pixels: a budget of 10000 holds one at a time
    const svc = await startService({
      port: 0,
      model: { type: 'identity', size: 64 },
      logLevel: false,
      hold: g.hold,
      timeoutMs: 1,
      maxInflightPixels: 10_000,
    });
    try {
      await svc.ready;
      const settledOf = settlements(svc);
      const started = nextStarted(svc);
      const cancelled = once(svc.engine, 'cancel');
      const late = await post(svc.url, FACE);
      assert.equal(late.status, 504);
      assert.equal(((await late.json()) as { error: { code: string } }).error.code, 'E_TIMEOUT');
      const id = await started;
      assert.deepEqual(await cancelled, [id]);
      const settled = settledOf(id);
      // still held in the engine thread: its pixels are still counted
      const busy = await post(svc.url, FACE);
      assert.equal(busy.status, 429);
      assert.equal(((await busy.json()) as { error: { code: string } }).error.code, 'E_BUSY');
      g.release();
      assert.equal(await settled, 'E_TIMEOUT');
      const next = nextStarted(svc);
      const again = await post(svc.url, FACE);
      await next;
      assert.notEqual(again.status, 429, 'admitted again: the pixels were given back');
      await again.arrayBuffer();
    } finally {
      g.release();
      await svc.close();
    }
  });

  it('a dead engine thread fails its job and later ones with 503 E_NOT_READY; the process and /healthz stay up', async () => {
    const g = gate();
    const svc = await startService({ port: 0, model: { type: 'identity', size: 64 }, logLevel: false, hold: g.hold });
    try {
      await svc.ready;
      const started = nextStarted(svc);
      const pending = post(svc.url, FACE);
      await started;
      await svc.engine.worker.terminate();
      const r = await pending;
      assert.equal(r.status, 503);
      assert.ok(Number(r.headers.get('retry-after')) >= 1);
      const e = (await r.json()) as { error: { code: string; message: string; fix: string } };
      assert.equal(e.error.code, 'E_NOT_READY');
      assert.match(e.error.message, /^The restoration engine stopped: it exited with code 1$/);
      const later = await post(svc.url, FACE);
      assert.equal(later.status, 503);
      assert.equal(((await later.json()) as { error: { code: string } }).error.code, 'E_NOT_READY');
      const rz = await fetch(`${svc.url}/readyz`);
      assert.equal(rz.status, 503);
      assert.deepEqual(await rz.json(), {
        status: 'failed',
        error: 'The restoration engine stopped: it exited with code 1',
      });
      assert.equal((await fetch(`${svc.url}/healthz`)).status, 200);
      assert.equal(await metric(svc.url, 'gpen_ready'), 0);
    } finally {
      g.release();
      await svc.close();
    }
  });

  it('close() waits for the job the engine thread holds, then ends the thread', async () => {
    const g = gate();
    const svc = await startService({ port: 0, model: { type: 'identity', size: 64 }, logLevel: false, hold: g.hold });
    await svc.ready;
    const started = nextStarted(svc);
    const pending = post(svc.url, FACE).then(async (r) => ({
      status: r.status,
      bytes: (await r.arrayBuffer()).byteLength,
    }));
    await started;
    const closing = svc.close();
    g.release();
    const r = await pending;
    assert.equal(r.status, 200, 'the request in progress was not cut');
    assert.ok(r.bytes > 1000);
    await closing;
    assert.equal(svc.engine.state, 'closed');
  });
});
