// `gpen-lab worker`: a BullMQ worker on one queue. Restore jobs run on this host's own model and session (the jobs
// in flight batched into one restoreFiles call); an output goes in place atomically before its completion is
// recorded, so a job run twice (its worker killed) writes its output once. Lab cells run here as on a local lab;
// a command cell, or a cell that sets environment variables, only on a worker started with allowCommands.
import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { GpenLabError } from '../errors.js';
import { outputExists } from '../io/files.js';
import { Restorer, type OutputTarget, type RestoreOptions, type RestoreResult } from '../face/restore.js';
import type { ModelSpec } from '../model/registry.js';
import { bullConnection, type RedisTarget } from './connection.js';
import { runCellJob } from './cell-job.js';
import {
  PREFIX,
  failureOf,
  jobError,
  keys,
  modelId,
  wrongModel,
  type CellJobResult,
  type JobData,
  type JobOptions,
  type RestoreJobData,
  type RestoreJobResult,
} from './jobs.js';

export interface WorkerOptions {
  redis: RedisTarget;
  /** The queues it serves (a host may serve several: its GPU's and a lab's). */
  queues: string[];
  concurrency: number;
  allowCommands: boolean;
  /** How long a job's lock lasts: a killed worker's job goes to another after about this long. */
  lockMs: number;
  model: ModelSpec;
  /** The session's choice (provider, route, precision, runtime), as restore takes it. */
  session: Pick<RestoreOptions, 'provider' | 'route' | 'precision' | 'runtime' | 'maxPixels'>;
  /** The GPU its sessions run on (CUDA's device_id), one worker a GPU under `--devices`; null: the default, 0. */
  device: number | null;
  onEvent?: (e: WorkerEvent) => void;
}

export type WorkerEvent =
  | { type: 'joined'; info: WorkerInfo }
  | { type: 'done'; job: string; input: string; result: RestoreJobResult | { cell: string } }
  | { type: 'failed'; job: string; input: string; code: string; message: string; final: boolean };

/** What a worker says of itself when it joins (in Redis for `gpen-lab jobs`, and on its own stdout). */
export interface WorkerInfo {
  id: string;
  host: string;
  pid: number;
  queues: string[];
  model: { id: string; label: string };
  choice: string;
  provider: string;
  /** The GPU it was given (deviceId), or null for the default. */
  device: number | null;
  runtime: string | null;
  concurrency: number;
  allowCommands: boolean;
  joinedAt: string;
}

/** The jobs in flight on one option set, restored together: restoreFiles batches their faces across images. */
class Batcher {
  private pending: { file: string; target: OutputTarget; done: (r: RestoreResult | Error) => void }[] = [];
  private running = false;
  constructor(private readonly restorer: Restorer) {}

  restore(file: string, target: OutputTarget): Promise<RestoreResult> {
    return new Promise((resolve, reject) => {
      this.pending.push({ file, target, done: (r) => (r instanceof Error ? reject(r) : resolve(r)) });
      void this.pump();
    });
  }

  release(): Promise<void> {
    return this.restorer.release();
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    while (this.pending.length > 0) {
      const take = this.pending.splice(0);
      try {
        await this.restorer.restoreFiles(
          take.map((t) => t.file),
          (r, i) => take[i].done(r),
          take.map((t) => t.target),
        );
      } catch (e) {
        for (const t of take) t.done(e instanceof Error ? e : new Error(String(e)));
      }
    }
    this.running = false;
  }
}

/** A target's temporary files (io/files.ts writeFileAtomicSafe: TARGET.PID.HEX.tmp), left by a process killed mid-write. */
async function removeTemporaries(target: string): Promise<void> {
  const dir = path.dirname(target);
  const base = path.basename(target);
  const names = await readdir(dir).catch(() => [] as string[]);
  const tmp = names.filter((n) => n.startsWith(`${base}.`) && /^\.\d+\.[0-9a-f]+\.tmp$/.test(n.slice(base.length)));
  await Promise.all(tmp.map((n) => rm(path.join(dir, n), { force: true })));
}

export interface RunningWorker {
  info: WorkerInfo;
  close(): Promise<void>;
}

export async function startWorker(o: WorkerOptions): Promise<RunningWorker> {
  const id = `${os.hostname()}-${o.device !== null ? `gpu${o.device}-` : ''}${process.pid}-${randomBytes(2).toString('hex')}`;
  const session = { ...o.session, ...(o.device !== null ? { session: { deviceId: o.device } } : {}) };
  const mine = await modelId(o.model);
  const restorers = new Map<string, Promise<Batcher>>();
  const batcherFor = (opts: JobOptions): Promise<Batcher> => {
    const key = JSON.stringify(opts);
    let b = restorers.get(key);
    if (!b) {
      b = Restorer.create({
        model: o.model,
        ...session,
        workload: 'batch',
        alpha: opts.alpha,
        aligned: opts.aligned,
        outputs: opts.outputs,
        overwrite: opts.overwrite,
        ...(opts.ext ? { ext: opts.ext } : {}),
        outDir: os.tmpdir(),
      }).then((r) => new Batcher(r));
      b.catch(() => restorers.delete(key));
      restorers.set(key, b);
    }
    return b;
  };
  // the default option set made now: a model or provider that cannot run stops the worker before it takes a job
  const first = await Restorer.create({
    model: o.model,
    ...session,
    workload: 'batch',
    outDir: os.tmpdir(),
  });
  restorers.set(
    JSON.stringify({ alpha: 1, aligned: false, outputs: ['gpen'], ext: null, overwrite: false }),
    Promise.resolve(new Batcher(first)),
  );
  const info: WorkerInfo = {
    id,
    host: os.hostname(),
    pid: process.pid,
    queues: o.queues,
    model: { id: mine, label: first.label },
    choice: `${first.choice.provider} ${first.choice.route} ${first.choice.precision}`,
    provider: first.choice.provider,
    device: o.device,
    runtime: first.choice.runtime?.build ?? null,
    concurrency: o.concurrency,
    allowCommands: o.allowCommands,
    joinedAt: new Date().toISOString(),
  };
  const redis = new Redis(o.redis.options);
  redis.on('error', () => undefined); // ioredis reconnects; BullMQ's own connection reports
  const seen = async () => {
    const now = JSON.stringify({ ...info, lastSeen: new Date().toISOString() });
    for (const q of o.queues) await redis.hset(keys(q).workers, id, now);
  };
  await seen();
  const beat = setInterval(() => void seen().catch(() => undefined), 5000);
  beat.unref();

  // once per job whatever runs it again (a job run twice, a command resent by the client after Redis came back): the
  // job's record set only if absent, and only then its submission's and this worker's counter FIELD raised
  redis.defineCommand('gpenLabCount', {
    numberOfKeys: 4,
    lua: `if redis.call('hsetnx', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('hincrby', KEYS[3], ARGV[3], 1)
  redis.call('hincrby', KEYS[4], ARGV[3], 1)
end
redis.call('hdel', KEYS[2], ARGV[1])
return 1`,
  });
  const count = (
    redis as unknown as { gpenLabCount: (...a: (string | number)[]) => Promise<number> }
  ).gpenLabCount.bind(redis);
  const complete = async (job: Job<JobData>, d: RestoreJobData, r: Omit<RestoreJobResult, 'worker'>) => {
    const k = keys(job.queueName);
    const record = JSON.stringify({ output: d.gpen, worker: id, at: Date.now() });
    await count(k.done, k.claims, k.submission(d.submission), k.workerStats(id), job.id!, record, 'done');
    return { ...r, worker: id };
  };

  const restoreJob = async (job: Job<JobData>, d: RestoreJobData): Promise<RestoreJobResult> => {
    const k = keys(job.queueName);
    if (d.model !== mine) throw wrongModel(d.model, mine, job.id!);
    if (d.gpen && !d.options.overwrite && existsSync(d.gpen)) {
      // complete already: outputs are written whole or not at all. This job's own when it claimed it before
      const [claim, done] = await Promise.all([redis.hget(k.claims, job.id!), redis.hget(k.done, job.id!)]);
      if (claim !== null || done !== null) {
        await removeTemporaries(d.gpen);
        return complete(job, d, { output: d.gpen, faces: 0, ms: 0, already: true });
      }
      throw outputExists(d.gpen);
    }
    // an earlier run of this job that stopped (its worker killed) may have left its temporary output beside the target
    if (d.gpen && (await redis.hget(k.claims, job.id!)) !== null) await removeTemporaries(d.gpen);
    await redis.hset(k.claims, job.id!, id);
    const t = performance.now();
    const r = await (await batcherFor(d.options)).restore(d.input, { outDir: d.outDir, name: d.name });
    if (r.error) throw new GpenLabError(r.error.code, r.error.message, r.error.fix, { input: d.input });
    return complete(job, d, {
      output: r.outputs.gpen,
      faces: r.faces.length,
      ms: performance.now() - t,
      already: false,
    });
  };

  const serve = (queue: string) => {
    const k = keys(queue);
    const worker = new Worker<JobData, RestoreJobResult | CellJobResult>(
      queue,
      async (job) => {
        try {
          if (job.data.kind === 'restore') return await restoreJob(job, job.data);
          return { ...(await runCellJob(job.data, { allowCommands: o.allowCommands, model: o.model })), worker: id };
        } catch (e) {
          throw jobError(e);
        }
      },
      {
        connection: bullConnection(o.redis),
        prefix: PREFIX,
        concurrency: o.concurrency,
        name: id,
        lockDuration: o.lockMs,
        stalledInterval: o.lockMs,
        maxStalledCount: 2,
      },
    );
    worker.on('error', () => undefined); // connection errors while Redis restarts: BullMQ reconnects
    worker.on('completed', (job, r) => {
      const d = job.data;
      o.onEvent?.({
        type: 'done',
        job: job.id!,
        input: d.kind === 'restore' ? d.input : d.cell.id,
        result: d.kind === 'restore' ? (r as RestoreJobResult) : { cell: d.cell.id },
      });
    });
    worker.on('failed', (job, err) => {
      if (!job) return;
      const final = err.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1);
      const { code, message } = failureOf(err.message);
      const d = job.data;
      if (final && d.kind === 'restore')
        void count(k.failed, k.claims, k.submission(d.submission), k.workerStats(id), job.id!, code, 'failed').catch(
          () => undefined,
        );
      o.onEvent?.({
        type: 'failed',
        job: job.id!,
        input: d.kind === 'restore' ? d.input : d.cell.id,
        code,
        message,
        final,
      });
    });
    return worker;
  };
  const workers = o.queues.map(serve);
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  o.onEvent?.({ type: 'joined', info });
  return {
    info,
    async close() {
      clearInterval(beat);
      await Promise.all(workers.map((w) => w.close()));
      for (const q of o.queues) await redis.hdel(keys(q).workers, id).catch(() => undefined);
      redis.disconnect();
      for (const b of restorers.values())
        await b.then(
          (x) => x.release(),
          () => undefined,
        );
    },
  };
}
