// `gpen-lab jobs`: what a queue is doing (its jobs by state, its workers and what each has done, its submissions),
// the failed jobs with their error codes, and the failed ones retried; submit's progress reads the same counters.
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { bullConnection, type RedisTarget } from './connection.js';
import { PREFIX, failureOf, keys, type JobData, type JobFailure } from './jobs.js';
import type { WorkerInfo } from './worker.js';

export interface SubmissionStatus {
  id: string;
  total: number;
  queued: number;
  skippedDone: number;
  skippedQueued: number;
  done: number;
  failed: number;
  createdAt: number;
}

export interface WorkerStatus extends WorkerInfo {
  lastSeen: string;
  done: number;
  failed: number;
}

export interface QueueStatus {
  queue: string;
  redis: string;
  counts: Record<string, number>;
  /** Restores recorded complete (outlives BullMQ's trimming). */
  doneRecords: number;
  workers: WorkerStatus[];
  submissions: SubmissionStatus[];
  failures: ({ job: string; input: string; attempts: number } & JobFailure)[];
}

const num = (v: string | undefined) => Number(v ?? 0);

export async function submissionStatus(redis: Redis, queue: string, id: string): Promise<SubmissionStatus | null> {
  const h = await redis.hgetall(keys(queue).submission(id));
  if (!h.total) return null;
  return {
    id,
    total: num(h.total),
    queued: num(h.queued),
    skippedDone: num(h.skippedDone),
    skippedQueued: num(h.skippedQueued),
    done: num(h.done),
    failed: num(h.failed),
    createdAt: num(h.createdAt),
  };
}

export async function workerStatuses(redis: Redis, queue: string): Promise<WorkerStatus[]> {
  const k = keys(queue);
  const infos = Object.values(await redis.hgetall(k.workers)).map(
    (v) => JSON.parse(v) as WorkerInfo & { lastSeen: string },
  );
  return Promise.all(
    infos.map(async (w) => {
      const s = await redis.hgetall(k.workerStats(w.id));
      return { ...w, done: num(s.done), failed: num(s.failed) };
    }),
  );
}

export class QueueView {
  readonly redis: Redis;
  readonly q: Queue;
  constructor(
    readonly target: RedisTarget,
    readonly queue: string,
  ) {
    this.redis = new Redis(target.options);
    this.redis.on('error', () => undefined);
    this.q = new Queue(queue, { connection: bullConnection(target), prefix: PREFIX });
  }

  async status(opts: { failures?: number; submissions?: number } = {}): Promise<QueueStatus> {
    const k = keys(this.queue);
    const ids = await this.redis.zrevrange(k.submissions, 0, (opts.submissions ?? 5) - 1);
    const subs = (await Promise.all(ids.map((id) => submissionStatus(this.redis, this.queue, id)))).filter(
      (s): s is SubmissionStatus => s !== null,
    );
    const failed = await this.q.getFailed(0, (opts.failures ?? 20) - 1);
    return {
      queue: this.queue,
      redis: this.target.shown,
      counts: await this.q.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed'),
      doneRecords: await this.redis.hlen(k.done),
      workers: await workerStatuses(this.redis, this.queue),
      submissions: subs,
      failures: failed.map((j) => {
        const d = j.data as JobData;
        return {
          job: j.id!,
          input: d.kind === 'restore' ? d.input : d.cell.id,
          attempts: j.attemptsMade,
          ...failureOf(j.failedReason),
        };
      }),
    };
  }

  /** Every job failed now put back on the queue once (its submission's failed count taken back): how many. */
  async retryFailed(): Promise<number> {
    const k = keys(this.queue);
    // the failed ones as of now: a job that fails again meanwhile is not retried twice
    const jobs = await this.q.getFailed(0, -1);
    for (const j of jobs) {
      // its failure uncounted first: the retried run's own end is counted afresh
      const d = j.data as JobData;
      if (d.kind === 'restore' && (await this.redis.hdel(k.failed, j.id!)) === 1)
        await this.redis.hincrby(k.submission(d.submission), 'failed', -1);
      await j.retry('failed');
    }
    return jobs.length;
  }

  /** Completed jobs removed from Redis (their done records stay: submitting them again still does nothing). */
  async trimCompleted(): Promise<number> {
    return (await this.q.clean(0, 0, 'completed')).length;
  }

  async close(): Promise<void> {
    await this.q.close();
    this.redis.disconnect();
  }
}
