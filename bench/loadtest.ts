// `npm run loadtest`: the service under load on loopback only. Starts `gpen-lab serve --synthetic 256` in a child
// process, sends 1000 requests at concurrency 32 with autocannon, 10% of them bad uploads (random bytes, a truncated
// PNG, text), samples the server's RSS, and writes bench-results/loadtest.json. Bounded in count and in time (it stops
// itself after LOADTEST_MAX_S, 900 s by default); `-- --soak SECONDS` runs for a duration instead of a count.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const soakS = args.includes('--soak') ? Number(args[args.indexOf('--soak') + 1]) : 0;
const AMOUNT = Number(process.env.LOADTEST_REQUESTS ?? 1000);
const CONNECTIONS = Number(process.env.LOADTEST_CONNECTIONS ?? 32);
const MAX_S = Number(process.env.LOADTEST_MAX_S ?? (soakS ? soakS + 120 : 900));
const SIZE = Number(process.env.LOADTEST_SIZE ?? 256);
const log = (s: string) => process.stderr.write(`${s}\n`);

const face = readFileSync(path.join(root, 'assets', 'demo-face.png'));
const bad = [
  { kind: 'random bytes', body: Buffer.from(Array.from({ length: 8192 }, (_, i) => (i * 7919 + 13) % 256)) },
  { kind: 'truncated PNG', body: face.subarray(0, face.length >> 1) },
  { kind: 'text', body: Buffer.from('this is not an image\n'.repeat(20)) },
];

// the server, in its own process, on a free loopback port
const server = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli/index.ts'), 'serve', '--synthetic', String(SIZE), '--port', '0', '--host', '127.0.0.1',
  '--max-batch', '8', '--max-wait-ms', '10', '--max-queue', '64', '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
let serverErr = '';
server.stderr.on('data', (d: Buffer) => { serverErr = (serverErr + d.toString()).slice(-8000); });
let out = '';
server.stdout.on('data', (d: Buffer) => { out = (out + d.toString()).slice(-8000); });
const kill = () => { if (server.exitCode === null) server.kill('SIGKILL'); };
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
            if (readlinkSync(`/proc/${server.pid}/fd/${fd}`) === `socket:[${inode}]`) return `http://127.0.0.1:${parseInt(f[1].split(':')[1], 16)}`;
          } catch { /* closed meanwhile */ }
        }
      } catch { /* not started yet */ }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the server did not listen within 120 s: ${serverErr}`);
}

const rssMiB = (): number => {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))![1]) / 1024;
  } catch {
    return NaN;
  }
};

const url = await findUrl();
const t0 = Date.now();
while ((await fetch(`${url}/readyz`).then((r) => r.status).catch(() => 0)) !== 200) {
  if (Date.now() - t0 > 180_000) throw new Error('the server was not ready within 180 s');
  await new Promise((r) => setTimeout(r, 250));
}
log(`server ${url} ready (synthetic GPEN-${SIZE}); ${soakS ? `soak ${soakS} s` : `${AMOUNT} requests`} at concurrency ${CONNECTIONS}, 10% bad uploads`);
const rss: { t: number; mib: number }[] = [];
const rssStart = rssMiB();
const sampler = setInterval(() => rss.push({ t: Date.now() - t0, mib: rssMiB() }), 250);

let n = 0;
const byKind: Record<string, { count: number; status: Record<string, number>; latencies: number[] }> = {};
const record = (kind: string, status: number, ms: number) => {
  const k = (byKind[kind] ??= { count: 0, status: {}, latencies: [] });
  k.count++;
  k.status[status] = (k.status[status] ?? 0) + 1;
  k.latencies.push(ms);
};
type Ctx = { kind?: string; t?: number };
const instance = autocannon({
  url: `${url}/v1/restore`,
  connections: CONNECTIONS,
  ...(soakS ? { duration: soakS } : { amount: AMOUNT }),
  timeout: 120,
  requests: [{
    method: 'POST',
    setupRequest: (req: Record<string, unknown>, context: Ctx) => {
      const i = n++;
      const b = i % 10 === 9 ? bad[Math.floor(i / 10) % bad.length] : null;
      context.kind = b ? b.kind : 'good';
      context.t = performance.now();
      return { ...req, headers: { 'content-type': 'application/octet-stream' }, body: b ? b.body : face };
    },
    onResponse: (status: number, _body: string, context: Ctx) => record(context.kind ?? '?', status, performance.now() - (context.t ?? 0)),
  }],
} as unknown as autocannon.Options, () => undefined) as unknown as { on(e: string, f: (r: autocannon.Result) => void): void; stop(): void };
const stopAt = setTimeout(() => { log(`stopping at the ${MAX_S} s bound`); instance.stop(); }, MAX_S * 1000);
const result = await Promise.race([new Promise<autocannon.Result>((resolve) => instance.on('done', resolve)), crashed.then((m) => { throw new Error(`${m}\n${serverErr}`); })]);
clearTimeout(stopAt);
clearInterval(sampler);
await new Promise((r) => setTimeout(r, 2000));
const rssEnd = rssMiB();
const metrics = await (await fetch(`${url}/metrics`)).text();
const alive = server.exitCode === null;
server.kill('SIGTERM');
const exitCode = await new Promise<number | null>((r) => server.once('exit', (c) => r(c)));

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : null;
};
const good = byKind.good ?? { count: 0, status: {}, latencies: [] };
const good5xx = Object.entries(good.status).filter(([s]) => Number(s) >= 500).reduce((a, [, c]) => a + c, 0);
const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN);
const report = {
  date: new Date().toISOString(),
  config: { requests: soakS ? null : AMOUNT, soakSeconds: soakS || null, connections: CONNECTIONS, badShare: 0.1, model: `synthetic GPEN-${SIZE}`, provider: 'cpu', maxBatch: 8, maxWaitMs: 10, maxQueue: 64 },
  durationS: result.duration,
  requests: result.requests.total,
  throughputRps: result.requests.total / result.duration,
  latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max },
  good: { count: good.count, status: good.status, p50: pct(good.latencies, 50), p99: pct(good.latencies, 99), fiveXX: good5xx },
  bad: Object.fromEntries(Object.entries(byKind).filter(([k]) => k !== 'good').map(([k, v]) => [k, { count: v.count, status: v.status }])),
  tooBusy429: Object.values(byKind).reduce((a, v) => a + (v.status[429] ?? 0), 0),
  errors: result.errors, timeouts: result.timeouts,
  rssMiB: { start: rssStart, peak: Math.max(...rss.map((r) => r.mib)), end: rssEnd, samples: rss.length },
  batches: { count: metric('gpen_batch_size_count'), faces: metric('gpen_batch_size_sum'), meanFaces: metric('gpen_batch_size_sum') / metric('gpen_batch_size_count') },
  server: { aliveAtEnd: alive, exitCodeAfterSigterm: exitCode },
  verdict: alive && good5xx === 0 && exitCode === 0 ? 'pass' : 'fail',
};
mkdirSync(path.join(root, 'bench-results'), { recursive: true });
const file = path.join(root, 'bench-results', soakS ? 'soak.json' : 'loadtest.json');
writeFileSync(file, `${JSON.stringify(report, null, 1)}\n`);
log(`${report.requests} requests in ${report.durationS} s: ${report.throughputRps.toFixed(2)} req/s; latency p50 ${report.latencyMs.p50} ms, p99 ${report.latencyMs.p99} ms`);
log(`good: ${good.count} (${JSON.stringify(good.status)}), p50 ${report.good.p50?.toFixed(0)} ms, p99 ${report.good.p99?.toFixed(0)} ms, 5xx ${good5xx}; bad: ${JSON.stringify(report.bad)}; 429: ${report.tooBusy429}`);
log(`RSS start ${rssStart.toFixed(0)} MiB, peak ${report.rssMiB.peak.toFixed(0)} MiB, end ${rssEnd.toFixed(0)} MiB; ${report.batches.count} batches, ${report.batches.meanFaces.toFixed(2)} faces each; verdict ${report.verdict}`);
log(`written ${file}`);
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exitCode = report.verdict === 'pass' ? 0 : 1;
