// `npm run bench:gpus -- --model FILE`: photos a second through `gpen-lab serve --devices` on 1 GPU, 2 GPUs and all
// of this host's, and the scaling ratio. Each configuration is a fresh service on a free loopback port; N copies of
// the photo (default the Solvay photo, 29 faces) are posted with CONCURRENCY requests in flight per GPU, timed from
// the first request to the last answer after one untimed round of warm-up. Writes JSON (--out, default
// bench-results/multi-gpu.json). Options: --provider (cuda), --images N (64), --concurrency C (8), --photo FILE.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { readGpus } from '../src/doctor/gpu.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const arg = (name: string, def?: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : def);
const model = arg('--model');
if (!model) throw new Error('pass --model FILE (the GPEN weights to serve)');
const provider = arg('--provider', 'cuda')!;
const N = Number(arg('--images', '64'));
const perGpu = Number(arg('--concurrency', '8'));
const photo = readFileSync(arg('--photo', path.join(root, 'assets', 'Solvay_conference_1927.png'))!);
const out = arg('--out', path.join(root, 'bench-results', 'multi-gpu.json'))!;
const log = (s: string) => process.stderr.write(`${s}\n`);

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });

async function run(devices: number[]): Promise<{ devices: number[]; wallMs: number; photosPerSecond: number }> {
  const port = await freePort();
  const cli = path.join(root, 'dist', 'cli', 'index.js');
  const srv = spawn(
    process.execPath,
    [
      cli,
      'serve',
      '--model',
      model!,
      '--provider',
      provider,
      '--devices',
      devices.join(','),
      '--port',
      String(port),
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  const url = `http://127.0.0.1:${port}`;
  try {
    for (;;) {
      if (srv.exitCode !== null) throw new Error(`serve exited ${srv.exitCode}`);
      const r = await fetch(`${url}/readyz`).catch(() => null);
      if (r?.ok) break;
      await new Promise((res) => setTimeout(res, 500));
    }
    const post = async () => {
      const r = await fetch(`${url}/v1/restore`, {
        method: 'POST',
        body: photo,
        headers: { 'content-type': 'image/png' },
      });
      await r.arrayBuffer();
      if (r.status !== 200) throw new Error(`restore answered ${r.status}`);
    };
    const flood = async (n: number) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: perGpu * devices.length }, async () => {
          while (next++ < n) await post();
        }),
      );
    };
    await flood(perGpu * devices.length); // warm-up: every engine's first batches
    const t = performance.now();
    await flood(N);
    const wallMs = performance.now() - t;
    log(
      `GPU ${devices.join(',')}: ${N} photos in ${(wallMs / 1000).toFixed(1)} s (${((N * 1000) / wallMs).toFixed(2)}/s)`,
    );
    return { devices, wallMs, photosPerSecond: (N * 1000) / wallMs };
  } finally {
    srv.kill('SIGTERM');
    await new Promise((r) => srv.once('exit', r));
  }
}

const gpus = await readGpus();
const all = gpus.devices.map((d) => d.index);
if (all.length === 0) throw new Error(`no GPU visible (source ${gpus.source})`);
const configs = [[all[0]], all.slice(0, 2), all].filter((c, i, a) => a.findIndex((x) => x.join() === c.join()) === i);
const runs = [];
for (const c of configs) runs.push(await run(c));
const one = runs[0].photosPerSecond;
const result = {
  what: 'photos a second through gpen-lab serve --devices, by GPU count',
  gpus: gpus.devices,
  driver: gpus.driverVersion,
  host: { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length },
  model,
  provider,
  photo: arg('--photo', 'assets/Solvay_conference_1927.png'),
  images: N,
  concurrencyPerGpu: perGpu,
  runs: runs.map((r) => ({
    ...r,
    scaling: r.photosPerSecond / one,
    perGpu: r.photosPerSecond / one / r.devices.length,
  })),
  targets: { scaling2: 1.8, perGpu: 0.9 },
};
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(result, null, 1)}\n`);
process.stdout.write(`${JSON.stringify(result, null, 1)}\n`);
