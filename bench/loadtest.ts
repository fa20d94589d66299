// `npm run loadtest`: the service under load on loopback only. Starts `gpen-lab serve --synthetic 256` in a child
// process, sends 1000 requests at concurrency 64 with autocannon, 20% of them bad uploads of every kind (random
// bytes, a truncated PNG, text, an SVG, a PNG as text/plain, broken multipart, two files, a body over the limit),
// samples the server's RSS and /healthz, and writes bench-results/loadtest.json. Bounded in count and in time (it
// stops itself after LOADTEST_MAX_S, 900 s by default); `-- --soak SECONDS` runs for a duration instead of a count;
// `-- --flood N` sends N concurrent 64 MP JPEGs instead (LOADTEST_BUDGET_MP the server's pixel budget: the peak RSS
// above the start must stay within it at the server's bytes a pixel). The verdict: no 5xx, every bad upload its own
// status and error shape, /healthz p99 under 100 ms, exit 0 after SIGTERM, and in a flood the memory bound.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { BYTES_PER_PIXEL } from '../src/serve/budget.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const soakS = args.includes('--soak') ? Number(args[args.indexOf('--soak') + 1]) : 0;
const AMOUNT = Number(process.env.LOADTEST_REQUESTS ?? 1000);
const CONNECTIONS = Number(process.env.LOADTEST_CONNECTIONS ?? 64);
const floodN = args.includes('--flood') ? Number(args[args.indexOf('--flood') + 1]) : 0;
const BUDGET_MP = Number(process.env.LOADTEST_BUDGET_MP ?? 200);
const MAX_S = Number(process.env.LOADTEST_MAX_S ?? (soakS ? soakS + 120 : 900));
const SIZE = Number(process.env.LOADTEST_SIZE ?? 256);
const log = (s: string) => process.stderr.write(`${s}\n`);

const face = readFileSync(path.join(root, 'assets', 'demo-face.png'));
const multipart = (boundary: string, parts: string) => ({
  'content-type': `multipart/form-data; boundary=${boundary}`,
  body: Buffer.from(parts, 'latin1'),
});
const filePart = (b: string, name: string, data: Buffer) =>
  `--${b}\r\nContent-Disposition: form-data; name="${name}"; filename="${name}.png"\r\nContent-Type: image/png\r\n\r\n${data.toString('latin1')}\r\n`;
// every kind of bad upload, each with the status it must get (never a 5xx)
const bad: { kind: string; body: Buffer; type?: string; want: number }[] = [
  { kind: 'random bytes', body: Buffer.from(Array.from({ length: 8192 }, (_, i) => (i * 7919 + 13) % 256)), want: 415 },
  { kind: 'truncated PNG', body: face.subarray(0, face.length >> 1), want: 422 },
  { kind: 'text', body: Buffer.from('this is not an image\n'.repeat(20)), want: 415 },
  {
    kind: 'SVG',
    body: Buffer.from(
      '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64"/></svg>',
    ),
    type: 'image/svg+xml',
    want: 415,
  },
  { kind: 'multipart without boundary', body: Buffer.from('--x\r\n'), type: 'multipart/form-data', want: 400 },
  {
    kind: 'multipart never closed',
    ...((m) => ({ body: m.body, type: m['content-type'] }))(multipart('b', filePart('b', 'f', face.subarray(0, 200)))),
    want: 400,
  },
  {
    kind: 'two files',
    ...((m) => ({ body: m.body, type: m['content-type'] }))(
      multipart('b', `${filePart('b', 'a', face)}${filePart('b', 'c', face)}--b--\r\n`),
    ),
    want: 400,
  },
  { kind: 'over the limit', body: Buffer.concat([face, Buffer.alloc(3 * 2 ** 20)]), want: 413 },
];
// valid, sent oddly: a PNG as text/plain is the image itself
const oddGood = { kind: 'PNG as text/plain', body: face, type: 'text/plain', want: 200 };

// the server, in its own process, on a free loopback port
const server = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    path.join(root, 'src/cli/index.ts'),
    'serve',
    '--synthetic',
    String(SIZE),
    '--port',
    '0',
    '--host',
    '127.0.0.1',
    '--max-batch',
    '8',
    '--max-wait-ms',
    '10',
    '--max-queue',
    '64',
    '--body-limit-mb',
    '2',
    '--log-level',
    'warn',
    ...(floodN ? ['--max-inflight-mp', String(BUDGET_MP), '--timeout-ms', '60000'] : []),
  ],
  { stdio: ['ignore', 'pipe', 'pipe'] },
);
let serverErr = '';
server.stderr.on('data', (d: Buffer) => {
  serverErr = (serverErr + d.toString()).slice(-8000);
});
let out = '';
server.stdout.on('data', (d: Buffer) => {
  out = (out + d.toString()).slice(-8000);
});
const kill = () => {
  if (server.exitCode === null) server.kill('SIGKILL');
};
process.on('exit', kill);
const crashed = new Promise<string>((r) => server.once('exit', (code, sig) => r(`the server exited (${code ?? sig})`)));

// the port: --log-level warn hides "listening", so ask the kernel which port the child holds
async function findUrl(): Promise<string> {
  const t0 = Date.now();
  while (Date.now() - t0 < 120_000) {
    for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] !== '0A') continue; // LISTEN
      const inode = f[9];
      try {
        const fds = readdirSync(`/proc/${server.pid}/fd`);
        for (const fd of fds) {
          try {
            if (readlinkSync(`/proc/${server.pid}/fd/${fd}`) === `socket:[${inode}]`)
              return `http://127.0.0.1:${parseInt(f[1].split(':')[1], 16)}`;
          } catch {
            /* closed meanwhile */
          }
        }
      } catch {
        /* not started yet */
      }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the server did not listen within 120 s: ${serverErr}`);
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : null;
};
const rssMiB = (): number => {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))![1]) / 1024;
  } catch {
    return NaN;
  }
};

const url = await findUrl();
const t0 = Date.now();
while (
  (await fetch(`${url}/readyz`)
    .then((r) => r.status)
    .catch(() => 0)) !== 200
) {
  if (Date.now() - t0 > 180_000) throw new Error('the server was not ready within 180 s');
  await new Promise((r) => setTimeout(r, 250));
}
log(
  `server ${url} ready (synthetic GPEN-${SIZE}); ${floodN ? `flood of ${floodN} 64 MP JPEGs, budget ${BUDGET_MP} MP` : soakS ? `soak ${soakS} s` : `${AMOUNT} requests`} at concurrency ${floodN || CONNECTIONS}, ${floodN ? 0 : 20}% bad uploads`,
);
const rss: { t: number; mib: number }[] = [];
const rssStart = rssMiB();
const sampler = setInterval(() => rss.push({ t: Date.now() - t0, mib: rssMiB() }), 250);
// /healthz throughout, every 100 ms
const health: number[] = [];
let healthOn = true;
const healthLoop = (async () => {
  while (healthOn) {
    const t = performance.now();
    await fetch(`${url}/healthz`)
      .then((r) => r.arrayBuffer())
      .catch(() => undefined);
    health.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 100));
  }
})();

let n = 0;
const byKind: Record<
  string,
  { count: number; status: Record<string, number>; latencies: number[]; want: number | null; shapeErrors: number }
> = {};
const record = (kind: string, status: number, ms: number, body: string, want: number | null) => {
  const k = (byKind[kind] ??= { count: 0, status: {}, latencies: [], want, shapeErrors: 0 });
  k.count++;
  k.status[status] = (k.status[status] ?? 0) + 1;
  k.latencies.push(ms);
  if (status !== 200) {
    try {
      const e = (JSON.parse(body) as { error?: { code?: unknown; message?: unknown; fix?: unknown } }).error;
      if (!(typeof e?.code === 'string' && typeof e.message === 'string' && typeof e.fix === 'string')) k.shapeErrors++;
    } catch {
      k.shapeErrors++;
    }
  }
};
type Ctx = { kind?: string; t?: number; want?: number | null };
let result: {
  duration: number;
  requests: { total: number };
  latency: { p50: number; p90: number; p99: number; max: number };
  errors: number;
  timeouts: number;
};
if (floodN) {
  // a flat grey 8000 x 8000 JPEG: 64 MP decoded, a few hundred kB on the wire
  const { encodeImage } = await import('../src/io/image.js');
  const W = 8000;
  const big = await encodeImage({ width: W, height: W, rgb: new Uint8Array(W * W * 3).fill(128), alpha: null }, '.jpg');
  log(`flood image: ${W}x${W}, ${(big.length / 1024).toFixed(0)} KiB`);
  const tf = performance.now();
  await Promise.all(
    Array.from({ length: floodN }, async () => {
      const t = performance.now();
      const r = await fetch(`${url}/v1/restore`, {
        method: 'POST',
        body: new Uint8Array(big),
        headers: { 'content-type': 'image/jpeg' },
      });
      record('64 MP JPEG', r.status, performance.now() - t, r.status === 200 ? '' : await r.text(), null);
      if (r.status === 200) await r.arrayBuffer();
    }),
  );
  const d = (performance.now() - tf) / 1000;
  const lat = byKind['64 MP JPEG'].latencies;
  result = {
    duration: d,
    requests: { total: floodN },
    latency: { p50: pct(lat, 50)!, p90: pct(lat, 90)!, p99: pct(lat, 99)!, max: Math.max(...lat) },
    errors: 0,
    timeouts: 0,
  };
} else {
  const instance = autocannon(
    {
      url: `${url}/v1/restore`,
      connections: CONNECTIONS,
      ...(soakS ? { duration: soakS } : { amount: AMOUNT }),
      timeout: 120,
      requests: [
        {
          method: 'POST',
          setupRequest: (req: Record<string, unknown>, context: Ctx) => {
            const i = n++;
            const b = i % 5 === 4 ? bad[Math.floor(i / 5) % bad.length] : i % 50 === 7 ? oddGood : null;
            context.kind = b ? b.kind : 'good';
            context.want = b ? b.want : 200;
            context.t = performance.now();
            return {
              ...req,
              headers: { 'content-type': b?.type ?? 'application/octet-stream' },
              body: b ? b.body : face,
            };
          },
          onResponse: (status: number, body: string, context: Ctx) =>
            record(context.kind ?? '?', status, performance.now() - (context.t ?? 0), body, context.want ?? null),
        },
      ],
    } as unknown as autocannon.Options,
    () => undefined,
  ) as unknown as { on(e: string, f: (r: autocannon.Result) => void): void; stop(): void };
  const stopAt = setTimeout(() => {
    log(`stopping at the ${MAX_S} s bound`);
    instance.stop();
  }, MAX_S * 1000);
  result = await Promise.race([
    new Promise<autocannon.Result>((resolve) => instance.on('done', resolve)),
    crashed.then((m) => {
      throw new Error(`${m}\n${serverErr}`);
    }),
  ]);
  clearTimeout(stopAt);
}
healthOn = false;
await healthLoop;
clearInterval(sampler);
await new Promise((r) => setTimeout(r, 2000));
const rssEnd = rssMiB();
const metrics = await (await fetch(`${url}/metrics`)).text();
const alive = server.exitCode === null;
server.kill('SIGTERM');
const exitCode = await new Promise<number | null>((r) => server.once('exit', (c) => r(c)));

const fiveXX = Object.values(byKind).reduce(
  (a, k) =>
    a +
    Object.entries(k.status)
      .filter(([st]) => Number(st) >= 500)
      .reduce((x, [, c]) => x + c, 0),
  0,
);
const wrongStatus = Object.entries(byKind)
  .filter(([, k]) => k.want !== null && Object.keys(k.status).some((st) => Number(st) !== k.want && Number(st) !== 429))
  .map(([kind, k]) => `${kind}: ${JSON.stringify(k.status)} (want ${k.want})`);
const shapeErrors = Object.values(byKind).reduce((a, k) => a + k.shapeErrors, 0);
const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN);
const rssPeak = Math.max(...rss.map((r) => r.mib));
// the flood's memory bound: what the pixel budget stands for at the server's own bytes a pixel (src/serve/budget.ts)
const budgetMiB = (BUDGET_MP * 1e6 * BYTES_PER_PIXEL) / 2 ** 20;
const withinBudget = !floodN || rssPeak - rssStart <= budgetMiB;
const report = {
  date: new Date().toISOString(),
  config: {
    mode: floodN ? 'flood' : soakS ? 'soak' : 'requests',
    requests: soakS ? null : floodN || AMOUNT,
    soakSeconds: soakS || null,
    connections: floodN || CONNECTIONS,
    badShare: floodN ? 0 : 0.2,
    model: `synthetic GPEN-${SIZE}`,
    provider: 'auto',
    maxBatch: 8,
    maxWaitMs: 10,
    maxQueue: 64,
    bodyLimitMiB: 2,
    ...(floodN ? { inflightBudgetMP: BUDGET_MP } : {}),
  },
  durationS: result.duration,
  requests: result.requests.total,
  throughputRps: result.requests.total / result.duration,
  latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max },
  byKind: Object.fromEntries(
    Object.entries(byKind).map(([k, v]) => [
      k,
      {
        count: v.count,
        status: v.status,
        want: v.want,
        p50: pct(v.latencies, 50),
        p99: pct(v.latencies, 99),
        shapeErrors: v.shapeErrors,
      },
    ]),
  ),
  fiveXX,
  wrongStatus,
  shapeErrors,
  tooBusy429: Object.values(byKind).reduce((a, v) => a + (v.status[429] ?? 0), 0),
  errors: result.errors,
  timeouts: result.timeouts,
  healthzMs: {
    samples: health.length,
    p50: pct(health, 50),
    p99: pct(health, 99),
    max: health.length ? Math.max(...health) : null,
  },
  rssMiB: {
    start: rssStart,
    peak: rssPeak,
    end: rssEnd,
    samples: rss.length,
    ...(floodN ? { budgetMiB, bytesPerPixel: BYTES_PER_PIXEL, peakAboveStart: rssPeak - rssStart, withinBudget } : {}),
  },
  batches: {
    count: metric('gpen_batch_size_count'),
    faces: metric('gpen_batch_size_sum'),
    meanFaces: metric('gpen_batch_size_sum') / metric('gpen_batch_size_count'),
  },
  server: { aliveAtEnd: alive, exitCodeAfterSigterm: exitCode },
  verdict:
    alive &&
    fiveXX === 0 &&
    wrongStatus.length === 0 &&
    shapeErrors === 0 &&
    exitCode === 0 &&
    (pct(health, 99) ?? 0) < 100 &&
    withinBudget
      ? 'pass'
      : 'fail',
};
mkdirSync(path.join(root, 'bench-results'), { recursive: true });
const file = path.join(root, 'bench-results', floodN ? 'loadtest-flood.json' : soakS ? 'soak.json' : 'loadtest.json');
writeFileSync(file, `${JSON.stringify(report, null, 1)}\n`);
log(
  `${report.requests} requests in ${report.durationS.toFixed(1)} s: ${report.throughputRps.toFixed(2)} req/s; latency p50 ${report.latencyMs.p50} ms, p99 ${report.latencyMs.p99} ms`,
);
log(`by kind: ${JSON.stringify(report.byKind)}`);
log(
  `5xx ${fiveXX}; wrong status ${wrongStatus.length ? wrongStatus.join('; ') : 'none'}; error bodies off the shape ${shapeErrors}; 429: ${report.tooBusy429}; healthz p99 ${report.healthzMs.p99?.toFixed(1)} ms`,
);
log(
  `RSS start ${rssStart.toFixed(0)} MiB, peak ${rssPeak.toFixed(0)} MiB, end ${rssEnd.toFixed(0)} MiB${floodN ? ` (peak above start ${(rssPeak - rssStart).toFixed(0)} MiB against the budget's ${budgetMiB.toFixed(0)} MiB)` : ''}; verdict ${report.verdict}`,
);
log(`written ${file}`);
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exitCode = report.verdict === 'pass' ? 0 : 1;
