// `npm run bench:queue`: what the queue costs and how it scales on this machine. N aligned 64x64 images and the
// identity model (the smallest job there is, so the queue's own cost shows): restored once in-process as `restore`
// does (the baseline), then through a real Redis (loopback, AOF fsynced at every write) by 1, 2 and 4 worker
// processes fed by one submission (made and followed in this process). Per-job overhead: (the queue's wall time with one worker - the baseline's) / N,
// each timed from the first job to the last output, the workers already joined. Writes
// bench/results/queue-<cpu cores>core-<date>.json (QUEUE_BENCH_OUT to change it), JSON on stdout too.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Restorer } from '../src/face/restore.js';
import { redisTarget } from '../src/queue/connection.js';
import { modelId } from '../src/queue/jobs.js';
import { QueueView, submissionStatus } from '../src/queue/status.js';
import { submit } from '../src/queue/submit.js';
import { startRedis } from '../test/helpers/redis.js';
import { images } from '../test/helpers/queue.js';
import { readLines } from '../test/helpers/signals.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const N = Number(process.env.QUEUE_BENCH_JOBS ?? 300);
const WORKERS = [1, 2, 4];
const log = (s: string) => process.stderr.write(`${s}\n`);
const tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-lab-bench-queue-'));
const cli = [path.join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs'), path.join(root, 'src', 'cli', 'index.ts')];
const env = { ...process.env, CI: 'true' };

const model = path.join(tmp, 'identity-64.onnx');
const made = spawnSync(
  process.execPath,
  [...cli, 'model', 'synth', '--size', '64', '--kind', 'identity', '-o', model],
  {
    encoding: 'utf8',
    env,
  },
);
if (made.status !== 0) throw new Error(made.stderr);
const files = await images(path.join(tmp, 'in'), N);

// the baseline: one process, one Restorer, the N files in one restoreFiles call
const restorer = await Restorer.create({
  model: { type: 'file', file: model },
  provider: 'cpu',
  aligned: true,
  workload: 'batch',
  outDir: path.join(tmp, 'local'),
});
let t = performance.now();
await restorer.restoreFiles(files);
const localMs = performance.now() - t;
await restorer.release();
log(`local: ${N} images in ${localMs.toFixed(0)} ms`);

const redis = await startRedis();
const target = redisTarget(redis.url);
const memory: { waitingJobBytes?: number; doneRecordBytes?: number } = {};
const runs: { workers: number; wallMs: number; perSecond: number; perJobMs: number }[] = [];
try {
  for (const n of WORKERS) {
    const queue = `bench-${n}`;
    const workers: ChildProcess[] = [];
    for (let i = 0; i < n; i++) {
      const w = spawn(
        process.execPath,
        [...cli, 'worker', '--redis', redis.url, '--queue', queue, '--model', model, '--provider', 'cpu', '--json'],
        { env, stdio: ['ignore', 'pipe', 'inherit'] },
      );
      workers.push(w);
    }
    await Promise.all(workers.map((w) => readLines(w.stdout!).waitFor(/"event":"joined"/)));
    const out = path.join(tmp, `out-${n}`);
    mkdirSync(out);
    // submitted and followed in this process: a job's cost from its hashing and queueing to its output recorded
    t = performance.now();
    const sub = await submit({
      redis: target,
      queue,
      files,
      outDir: out,
      options: { alpha: 1, aligned: true, outputs: ['gpen'], ext: null, overwrite: false },
      attempts: 3,
    });
    const view = new QueueView(target, queue);
    for (;;) {
      const st = (await submissionStatus(view.redis, queue, sub.id))!;
      if (st.done + st.failed >= st.queued) {
        if (st.failed > 0) throw new Error(`${st.failed} job(s) failed`);
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const wallMs = performance.now() - t;
    await view.close();
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all(workers.map((w) => new Promise((r) => w.once('exit', r))));
    runs.push({ workers: n, wallMs, perSecond: (N * 1000) / wallMs, perJobMs: wallMs / N });
    log(`${n} worker(s): ${N} jobs in ${wallMs.toFixed(0)} ms (${((N * 1000) / wallMs).toFixed(1)}/s)`);
  }
  // Redis's memory per job waiting (no worker on the queue) and per done record (the one that outlives trimming)
  const probe = new QueueView(target, 'bench-1');
  const used = async () => Number(/used_memory:(\d+)/.exec(await probe.redis.info('memory'))![1]);
  const before = await used();
  await submit({
    redis: target,
    queue: 'bench-memory',
    model: await modelId({ type: 'file', file: model }),
    files,
    outDir: path.join(tmp, 'out-memory'),
    options: { alpha: 1, aligned: true, outputs: ['gpen'], ext: null, overwrite: false },
    attempts: 3,
  });
  memory.waitingJobBytes = ((await used()) - before) / N;
  const doneKey = 'gpen-lab-queue:bench-1:done';
  memory.doneRecordBytes =
    Number(await probe.redis.call('MEMORY', 'USAGE', doneKey)) / (await probe.redis.hlen(doneKey));
  await probe.close();
} finally {
  await redis.stop();
}
const one = runs[0];
const result = {
  what: 'gpen-lab queue: per-job overhead against an in-process restore, and throughput by worker count',
  machine: { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, node: process.version },
  jobs: N,
  job: 'one aligned 64x64 PNG, identity model, CPU provider',
  redis: 'redis-server on loopback, AOF with appendfsync always',
  local: { wallMs: localMs, perImageMs: localMs / N },
  queue: runs,
  // hashing the inputs and queueing them are inside the queue's wall time, polled every 20 ms: an upper bound
  overheadPerJobMs: (one.wallMs - localMs) / N,
  targetOverheadPerJobMs: 5,
  redisMemory: memory,
  scaling: Object.fromEntries(runs.map((r) => [String(r.workers), r.perSecond / one.perSecond])),
};
const file =
  process.env.QUEUE_BENCH_OUT ??
  path.join(root, 'bench', 'results', `queue-${os.cpus().length}core-${new Date().toISOString().slice(0, 10)}.json`);
writeFileSync(file, `${JSON.stringify(result, null, 1)}\n`);
process.stdout.write(`${JSON.stringify(result, null, 1)}\n`);
rmSync(tmp, { recursive: true, force: true });
