// A lab cell whose launcher is a queue: sent as a job to the workers serving that queue (the host with that GPU and
// CUDA set), waited for, and its result and folder brought back into this lab's results as if it had run here.
import { randomBytes } from 'node:crypto';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { GpenLabError, errorMessage, isGpenLabError } from '../errors.js';
import { sha256File } from '../io/hash.js';
import { emptyCell } from '../lab/cell.js';
import { inputsOf } from '../lab/config.js';
import type { CellResult, CellSpec, LabConfig, Launcher } from '../lab/types.js';
import { bullConnection, checkRedis, redisTarget } from './connection.js';
import { PREFIX, failureOf, keys, type CellJobData, type CellJobResult } from './jobs.js';

type QueueLauncher = Extract<Launcher, { type: 'queue' }>;

/** The queue launcher's Redis: its own `redis` ($VAR allowed, so that a password stays out of the config), else the lab's. */
function redisOf(l: QueueLauncher, fallback: { url?: string; ca?: string }, cellId: string) {
  const raw = l.redis ?? fallback.url;
  if (!raw)
    throw new GpenLabError(
      'E_CONFIG',
      `cell ${cellId} runs on queue ${l.queue}, and no Redis was named`,
      "Pass `gpen-lab lab CONFIG --redis URL`, or set the launcher's redis (e.g. redis: $GPEN_LAB_REDIS).",
      { input: cellId },
    );
  const url = raw.replace(/\$\{(\w+)\}|\$(\w+)/g, (_m, a?: string, b?: string) => {
    const v = process.env[a ?? b!];
    if (!v)
      throw new GpenLabError(
        'E_CONFIG',
        `cell ${cellId}: the launcher's redis names $${a ?? b}, which is not set`,
        `Set ${a ?? b}.`,
        {
          input: cellId,
        },
      );
    return v;
  });
  return redisTarget(url, fallback.ca);
}

/** The cell failed before any of its processes ran (no Redis, no worker, refused): recorded at its start-up stage. */
function failedCell(c: CellSpec, cfg: LabConfig, launcher: string, reason: string): CellResult {
  const r = emptyCell(c, cfg);
  r.env.launcher = launcher;
  r.stages.startup = { ok: false, reason };
  r.status = 'done';
  r.finishedAt = new Date().toISOString();
  return r;
}

/** How to run a lab's queue cells: `fallback` is the lab's --redis (and --redis-ca). */
export function queueCellRunner(fallback: { url?: string; ca?: string }) {
  return async (c: CellSpec, cfg: LabConfig, out: string, progress: (line: string) => void): Promise<CellResult> => {
    const l = c.launcher as QueueLauncher;
    let describe = `queue ${l.queue}`;
    let q: Queue | null = null;
    let ev: QueueEvents | null = null;
    try {
      const target = redisOf(l, fallback, c.id);
      describe = `queue ${l.queue} at ${target.shown}`;
      await checkRedis(target);
      const redis = new Redis(target.options);
      const workers = await redis.hlen(keys(l.queue).workers).finally(() => redis.disconnect());
      if (workers === 0)
        throw new GpenLabError(
          'E_NETWORK',
          `no worker serves queue ${l.queue} at ${target.shown}`,
          `Start one on the host the cell is for: gpen-lab worker --redis URL --queue ${l.queue}${c.command || c.env ? ' --allow-commands' : ''}`,
          { input: c.id },
        );
      const connection = bullConnection(target);
      q = new Queue(l.queue, { connection, prefix: PREFIX });
      ev = new QueueEvents(l.queue, { connection, prefix: PREFIX });
      await ev.waitUntilReady();
      const locals = inputsOf(cfg, c);
      const data: CellJobData = {
        kind: 'cell',
        cell: c,
        config: { ...cfg, cells: undefined } as unknown as CellJobData['config'],
        inputs: await Promise.all(
          locals.map(async (f, i) => ({
            name: `${i}-${path.basename(f)}`,
            base64: (await readFile(f)).toString('base64'),
          })),
        ),
        modelSha256: cfg.model.file ? await sha256File(cfg.model.file) : null,
      };
      const job = await q.add('cell', data, {
        jobId: `cell-${c.id}-${randomBytes(6).toString('hex')}`,
        attempts: 1,
        removeOnComplete: { age: 3600 },
      });
      progress(`sent to ${describe}; waiting for a worker`);
      // the cell's own processes are timed out by the worker; this only bounds a worker lost for good
      const limit = (cfg.timeoutSec ?? 300) * 1000 * ((cfg.coldRuns ?? 3) + 3);
      let got: CellJobResult;
      try {
        got = (await job.waitUntilFinished(ev, limit)) as CellJobResult;
      } catch (e) {
        const f = failureOf(errorMessage(e));
        throw new GpenLabError(
          f.code === 'unknown' ? 'E_INTERNAL' : f.code,
          `cell ${c.id} on ${describe}: ${f.message}`,
          f.fix || "See the worker's output.",
          { input: c.id },
        );
      }
      const cellDir = path.join(out, 'cells', c.id);
      for (const f of got.files) {
        const dest = path.join(cellDir, f.path);
        if (!dest.startsWith(cellDir + path.sep)) continue; // a path outside the cell's folder is not taken
        await mkdir(path.dirname(dest), { recursive: true });
        await writeFile(dest, Buffer.from(f.base64, 'base64'));
      }
      // the worker's paths made this lab's: its folder for the lab's, its copies of the inputs for the inputs
      let text = got.result.split(JSON.stringify(got.outRoot).slice(1, -1)).join(JSON.stringify(out).slice(1, -1));
      got.inputs.forEach((p, i) => {
        text = text.split(JSON.stringify(p).slice(1, -1)).join(JSON.stringify(locals[i]).slice(1, -1));
      });
      const r = JSON.parse(text) as CellResult;
      r.env.launcher = `${describe} (worker ${got.worker})`;
      r.env.host = got.host;
      return r;
    } catch (e) {
      const reason = isGpenLabError(e) ? `${e.message} [${e.code}] (fix: ${e.fix})` : errorMessage(e);
      return failedCell(c, cfg, describe, reason);
    } finally {
      await ev?.close().catch(() => undefined);
      await q?.close().catch(() => undefined);
    }
  };
}
