// `gpen-lab submit`: the inputs as restore jobs on a queue. A job's id derives from the input's bytes, the model, the
// options and where its output goes, so the same work submitted again is not done again: a job already queued is
// left to its submission, a job completed (its record in Redis, its output in place) is skipped, also after BullMQ
// trimmed the completed job itself.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { GpenLabError } from '../errors.js';
import { sha256File } from '../io/hash.js';
import { outputExtOf } from '../io/metadata.js';
import { outputNames } from '../io/output-names.js';
import { bullConnection, type RedisTarget } from './connection.js';
import { PREFIX, keys, restoreJobId, type JobOptions, type RestoreJobData } from './jobs.js';
import type { WorkerInfo } from './worker.js';

export interface SubmitOptions {
  redis: RedisTarget;
  queue: string;
  files: string[];
  outDir: string;
  /** The model's id (jobs.ts modelId); default the one the queue's workers serve. */
  model?: string;
  options: JobOptions;
  /** Tries of a job whose failure may pass (the runtime's, the environment's), with backoff. */
  attempts: number;
  onProgress?: (line: string) => void;
}

export interface Submission {
  id: string;
  queue: string;
  model: string;
  total: number;
  /** Jobs put on the queue by this submission: what its progress counts. */
  queued: number;
  /** Completed earlier (recorded, output in place). */
  skippedDone: number;
  /** On the queue already (an earlier submission's, still to run or failed): `gpen-lab jobs` follows them. */
  skippedQueued: number;
}

/** The model the queue's workers serve: one, or a coded error saying why submit cannot choose. */
export async function workersModel(redis: Redis, queue: string): Promise<string> {
  const infos = Object.values(await redis.hgetall(keys(queue).workers)).map((v) => JSON.parse(v) as WorkerInfo);
  const models = [...new Set(infos.map((w) => w.model.id))];
  if (models.length === 1) return models[0];
  throw new GpenLabError(
    models.length === 0 ? 'E_ARGUMENT' : 'E_CONFIG',
    models.length === 0
      ? `no worker has joined queue ${queue}, so submit cannot tell which model the jobs are for`
      : `the workers of queue ${queue} serve different models: ${models.join(', ')}`,
    models.length === 0
      ? 'Pass --model FILE (or --synthetic SIZE) naming the weights the workers load, or start a worker first.'
      : 'Pass --model naming the weights the jobs are for; workers serving another model refuse them.',
    { input: queue },
  );
}

export async function submit(o: SubmitOptions): Promise<Submission> {
  const k = keys(o.queue);
  const redis = new Redis(o.redis.options);
  redis.on('error', () => undefined);
  const q = new Queue(o.queue, { connection: bullConnection(o.redis), prefix: PREFIX });
  try {
    const model = o.model ?? (await workersModel(redis, o.queue));
    const id = `${new Date().toISOString().replace(/[-:.]/g, '').slice(0, 15)}-${randomBytes(3).toString('hex')}`;
    const names = outputNames(o.files);
    const outDir = path.resolve(o.outDir);
    const jobs: RestoreJobData[] = [];
    for (const [i, f] of o.files.entries()) {
      const input = path.resolve(f);
      const ext = o.options.ext ?? (await outputExtOf(input));
      jobs.push({
        kind: 'restore',
        input,
        inputSha256: await sha256File(input),
        outDir,
        name: names[i],
        gpen: o.options.outputs.includes('gpen') ? path.join(outDir, `${names[i]}_GPEN${ext}`) : null,
        model,
        options: o.options,
        submission: id,
      });
      if ((i + 1) % 1000 === 0) o.onProgress?.(`hashed ${i + 1} of ${o.files.length} inputs`);
    }
    const ids = jobs.map((d) => restoreJobId(d));
    let skippedDone = 0;
    let skippedQueued = 0;
    const fresh: { d: RestoreJobData; id: string }[] = [];
    // recorded done, its output gone since: the record goes, and the job runs again
    const stale: string[] = [];
    const CHUNK = 1000;
    for (let s = 0; s < jobs.length; s += CHUNK) {
      const part = ids.slice(s, s + CHUNK);
      const done = await redis.hmget(k.done, ...part);
      const p = redis.pipeline();
      for (const j of part) p.exists(q.toKey(j));
      const there = (await p.exec()) ?? [];
      part.forEach((j, n) => {
        const d = jobs[s + n];
        if (done[n] !== null && (d.gpen === null || existsSync(d.gpen))) skippedDone++;
        else if (there[n]?.[1] === 1) skippedQueued++;
        else {
          if (done[n] !== null) stale.push(j);
          fresh.push({ d, id: j });
        }
      });
    }
    if (stale.length) await redis.hdel(k.done, ...stale);
    await redis.hset(k.submission(id), {
      total: jobs.length,
      queued: fresh.length,
      skippedDone,
      skippedQueued,
      done: 0,
      failed: 0,
      createdAt: Date.now(),
      outDir,
      model,
    });
    await redis.zadd(k.submissions, Date.now(), id);
    for (let s = 0; s < fresh.length; s += CHUNK) {
      await q.addBulk(
        fresh.slice(s, s + CHUNK).map(({ d, id: jobId }) => ({
          name: 'restore',
          data: d,
          opts: {
            jobId,
            attempts: o.attempts,
            backoff: { type: 'exponential', delay: 1000 },
            // completion lives in the done record; BullMQ keeps the last completed jobs for inspection
            removeOnComplete: { count: 10000 },
            removeOnFail: false,
          },
        })),
      );
    }
    return { id, queue: o.queue, model, total: jobs.length, queued: fresh.length, skippedDone, skippedQueued };
  } finally {
    await q.close();
    redis.disconnect();
  }
}
