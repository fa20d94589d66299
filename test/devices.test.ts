// Every GPU of a host, on a stub NVML of two GPUs (test/helpers/nvml-stub.ts): `--devices` parsed against the GPUs
// the doctor sees, a GPU that is not there refused with a code, a worker per GPU each with its own device and the
// queue's jobs spread over them, the doctor listing each GPU with what else runs on it, and a lab cell run once a GPU.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GpenLabError } from '../src/errors.js';
import { parseDevices } from '../src/doctor/devices.js';
import { readGpus } from '../src/doctor/gpu.js';
import { normalizeConfig } from '../src/lab/config.js';
import { startService } from '../src/serve/server.js';
import { buildNvmlStub } from './helpers/nvml-stub.js';
import { startRedis, type RedisServer } from './helpers/redis.js';
import { images, jobsOf, startCli, stop } from './helpers/queue.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-lab-devices-'));
const MODEL = path.join(tmp, 'identity-64.onnx');
const children = new Set<ChildProcess>();
let nvml: string;
let env: NodeJS.ProcessEnv;
let redis: RedisServer;
const REPO = path.resolve(import.meta.dirname, '..');
const cli = (args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', ...args], {
    cwd: REPO,
    encoding: 'utf8',
    env,
    timeout: 120_000,
  });

before(async () => {
  nvml = buildNvmlStub(path.join(tmp, 'nvml'), '580.159.04', 13000, undefined, 2);
  env = { ...process.env, CI: 'true', LD_LIBRARY_PATH: `${path.dirname(nvml)}:${process.env.LD_LIBRARY_PATH ?? ''}` };
  redis = await startRedis();
  const r = cli(['model', 'synth', '--size', '64', '--kind', 'identity', '-o', MODEL]);
  assert.equal(r.status, 0, r.stderr);
});

after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await redis?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe('--devices', () => {
  it('all, a list, and each GPU once, checked against the GPUs NVML reports', async () => {
    const g = await readGpus({ nvmlPath: nvml });
    assert.deepEqual(
      g.devices.map((d) => d.index),
      [0, 1],
    );
    assert.deepEqual(parseDevices('all', g), [0, 1]);
    assert.deepEqual(parseDevices('1,0,1', g), [1, 0]);
    assert.deepEqual(parseDevices(' 1 ', g), [1]);
  });

  it('a GPU that is not there, a word that is no index, and all without a GPU are coded errors naming what is there', async () => {
    const g = await readGpus({ nvmlPath: nvml });
    const refused = (spec: string, gpus: typeof g, code: string, re: RegExp) =>
      assert.throws(
        () => parseDevices(spec, gpus),
        (e: unknown) => e instanceof GpenLabError && e.code === code && re.test(e.message) && e.fix.length > 0,
      );
    refused('0,2', g, 'E_ARGUMENT', /no GPU 2; this host has GPU 0 \(NVIDIA H100 80GB HBM3\), GPU 1/);
    refused('first', g, 'E_ARGUMENT', /"first" is not a GPU index/);
    refused('all', { ...g, source: 'none', devices: [] }, 'E_PROVIDER_UNAVAILABLE', /no GPU is visible here/);
    const r = cli(['worker', '--redis', redis.url, '--model', MODEL, '--provider', 'cpu', '--devices', '3']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /E_ARGUMENT.*no GPU 3; this host has GPU 0/);
  });
});

describe('a worker per GPU', () => {
  it('worker --devices all starts one worker a GPU, each on its own device, and the queue feeds them both', async () => {
    const w = startCli(
      [
        'worker',
        '--redis',
        redis.url,
        '--queue',
        'gpus',
        '--model',
        MODEL,
        '--provider',
        'cpu',
        '--devices',
        'all',
        '--json',
      ],
      env,
      children,
    );
    const lines = await w.out.waitFor(/"event":"joined"/, 2);
    const infos = lines.map((l) => JSON.parse(l) as { id: string; device: number });
    assert.deepEqual(infos.map((i) => i.device).sort(), [0, 1]);
    for (const i of infos) assert.match(i.id, new RegExp(`-gpu${i.device}-`));
    const dir = path.join(tmp, 'gpus');
    await images(dir, 60);
    const r = cli([
      'submit',
      dir,
      '-o',
      path.join(tmp, 'gpus-out'),
      '--redis',
      redis.url,
      '--queue',
      'gpus',
      '--aligned',
    ]);
    assert.equal(r.status, 0, r.stderr);
    const q = await jobsOf(redis.port, 'gpus');
    try {
      assert.equal(q.counts.completed, 60);
      const by = new Map<string, number>();
      for (const p of q.processedBy) by.set(p!, (by.get(p!) ?? 0) + 1);
      assert.deepEqual([...by.keys()].sort(), infos.map((i) => i.id).sort(), 'both GPUs took jobs');
    } finally {
      await q.close();
    }
    // per-GPU figures: jobs lists each GPU's worker with its count
    const s = JSON.parse(cli(['jobs', '--redis', redis.url, '--queue', 'gpus', '--json']).stdout) as {
      workers: { device: number; done: number }[];
    };
    assert.deepEqual(s.workers.map((x) => x.device).sort(), [0, 1]);
    assert.equal(
      s.workers.reduce((n, x) => n + x.done, 0),
      60,
    );
    await stop(w);
    assert.equal(await w.exited, 0);
  });
});

describe('serve on every GPU', () => {
  it('serve with two devices: an engine a GPU, concurrent requests spread over both, per-GPU figures in /metrics and /readyz', async () => {
    const svc = await startService({
      port: 0,
      model: { type: 'identity', size: 64 },
      provider: 'cpu',
      devices: [0, 1],
      maxBatch: 4,
      maxWaitMs: 50,
      maxQueue: 64,
      bodyLimit: 2 * 2 ** 20,
      logLevel: false,
    });
    try {
      await svc.ready;
      const [face] = await images(path.join(tmp, 'serve'), 1);
      const body = readFileSync(face);
      const codes = await Promise.all(
        Array.from({ length: 8 }, () =>
          fetch(`${svc.url}/v1/restore`, { method: 'POST', body, headers: { 'content-type': 'image/png' } }).then(
            async (r) => (await r.arrayBuffer(), r.status),
          ),
        ),
      );
      assert.deepEqual(codes, Array(8).fill(200));
      const figures = svc.pool.figures();
      assert.deepEqual(
        figures.map((f) => f.device),
        [0, 1],
      );
      for (const f of figures) assert.ok(f.done > 0, `GPU ${f.device} took no request: ${JSON.stringify(figures)}`);
      assert.equal(
        figures.reduce((n, f) => n + f.done, 0),
        8,
      );
      const metrics = await (await fetch(`${svc.url}/metrics`)).text();
      for (const f of figures)
        assert.match(metrics, new RegExp(`gpen_device_requests_done\\{device="${f.device}"\\} ${f.done}`));
      const ready = (await (await fetch(`${svc.url}/readyz`)).json()) as { devices: { device: number }[] };
      assert.deepEqual(
        ready.devices.map((d) => d.device),
        [0, 1],
      );
    } finally {
      await svc.close();
    }
  });

  it('serve --devices with a GPU that is not there exits 2 naming the GPUs', () => {
    const r = cli(['serve', '--synthetic', '64', '--provider', 'cpu', '--devices', '0,7', '--port', '0']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /no GPU 7; this host has GPU 0/);
  });
});

describe('the doctor and the lab on every GPU', () => {
  it('the doctor lists each GPU with its memory in use and the processes on it', () => {
    const r = cli(['doctor', '--provider', 'cpu', '--no-probe']);
    assert.match(r.stdout, /GPU 0: NVIDIA H100 80GB HBM3, compute capability 9\.0, 79\.6 GiB, nothing else on it/);
    assert.match(
      r.stdout,
      /GPU 1: NVIDIA H100 80GB HBM3, compute capability 9\.0, 79\.6 GiB, 1024 MiB in use: pid 4243( \S+)? \(1024 MiB\)/,
    );
  });

  it('a cell with devices becomes one cell a GPU, each with its deviceId, in the order given', () => {
    const cfg = normalizeConfig(
      {
        inputs: ['face.png'],
        model: { synthetic: 256 },
        cells: [{ provider: 'cuda', precision: 'fp16', devices: [1, 0] }, { provider: 'cpu' }],
      },
      tmp,
    );
    assert.deepEqual(
      cfg.cells.map((c) => [c.id, c.session?.deviceId ?? null]),
      [
        ['cuda-fast-fp16-gpu1', 1],
        ['cuda-fast-fp16-gpu0', 0],
        ['cpu-fp32', null],
      ],
    );
  });

  it('devices on a cell that runs on no GPU is refused', () => {
    assert.throws(
      () => normalizeConfig({ inputs: ['face.png'], cells: [{ provider: 'cpu', devices: [0] }] }, tmp),
      (e: unknown) => e instanceof GpenLabError && e.code === 'E_CONFIG' && /devices/.test(e.message),
    );
  });
});
