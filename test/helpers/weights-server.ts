// A loopback HTTP server that serves "weights" the way a test asks: whole, with Range, cut off once, silent, stalled
// mid-body, without Content-Length, or 404. It records every request (with its Range) for the test to assert on.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { rng } from '../../src/model/synth.js';

export type Behaviour =
  | 'normal' // 200, or 206 for a Range request; ETag
  | 'cut-once' // the first request gets the headers of the whole file, `cutAt` bytes, then the socket closes
  | 'silent' // accepts the request and never answers
  | 'stall-body' // the headers and `cutAt` bytes, then nothing
  | 'chunked' // no Content-Length (chunked transfer), no Range
  | 'not-found';

export interface Served {
  bytes: Buffer;
  behaviour: Behaviour;
  cutAt?: number;
}

export interface ServedRequest {
  path: string;
  range: string | null;
  ifRange: string | null;
  status: number;
}

export interface WeightsServer {
  /** `http://127.0.0.1:PORT/m`: pass as the base URL. */
  base: string;
  requests: ServedRequest[];
  serve(file: string, s: Served): void;
  close(): Promise<void>;
}

/** Deterministic bytes standing in for a checkpoint. */
export function seededBytes(n: number, seed: number): Buffer {
  const r = rng(seed);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}

export async function startWeightsServer(): Promise<WeightsServer> {
  const files = new Map<string, Served & { hits: number }>();
  const requests: ServedRequest[] = [];
  const server = http.createServer((req, res) => {
    const name = decodeURIComponent((req.url ?? '').replace(/^\/m\//, ''));
    const f = files.get(name);
    const log = (status: number) =>
      requests.push({
        path: req.url ?? '',
        range: req.headers.range ?? null,
        ifRange: (req.headers['if-range'] as string | undefined) ?? null,
        status,
      });
    if (!f || f.behaviour === 'not-found') {
      log(404);
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    f.hits++;
    const { bytes } = f;
    if (f.behaviour === 'silent') {
      log(0);
      return;
    }
    if (f.behaviour === 'chunked') {
      log(200);
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(bytes);
      return;
    }
    if ((f.behaviour === 'cut-once' && f.hits === 1) || f.behaviour === 'stall-body') {
      log(200);
      res.writeHead(200, { 'content-length': bytes.length, etag: '"v1"' });
      res.write(bytes.subarray(0, f.cutAt ?? bytes.length >> 1), () => {
        if (f.behaviour === 'cut-once') res.socket?.destroy();
      });
      return;
    }
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    if (m && start >= bytes.length) {
      log(416);
      res.writeHead(416, { 'content-range': `bytes */${bytes.length}` }).end();
      return;
    }
    const status = m ? 206 : 200;
    log(status);
    res.writeHead(status, {
      'content-length': bytes.length - start,
      etag: '"v1"',
      'accept-ranges': 'bytes',
      ...(m ? { 'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}` } : {}),
    });
    res.end(bytes.subarray(start));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}/m`,
    requests,
    serve: (file, s) => files.set(file, { ...s, hits: 0 }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
