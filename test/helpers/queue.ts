// What the queue's tests make and look at: small distinct images, decoded pixels, and BullMQ's own view of a queue's
// jobs (which worker processed each, how many tries a job took).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { Queue } from 'bullmq';
import { readLines, type Lines } from './signals.js';

const REPO = path.resolve(import.meta.dirname, '..', '..');
const CLI = ['--import', 'tsx', path.join(REPO, 'src/cli/index.ts')];

/** A gpen-lab command running, its output read line by line. */
export interface Proc {
  child: ChildProcess;
  out: Lines;
  err: Lines;
  exited: Promise<number | null>;
}

/** Starts `gpen-lab ARGS` from the repository; `children` holds it until it exits (killed after the tests). */
export function startCli(args: string[], env: NodeJS.ProcessEnv, children: Set<ChildProcess>): Proc {
  const child = spawn(process.execPath, [...CLI, ...args], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void exited.then(() => children.delete(child));
  return { child, out: readLines(child.stdout!), err: readLines(child.stderr!), exited };
}

/** A worker's joined event (`--json`). */
export const joined = async (w: Proc) =>
  JSON.parse((await w.out.waitFor(/"event":"joined"/))[0]) as { id: string; device: number | null; queues: string[] };

/** SIGTERM, then its exit: the jobs in flight finish first. */
export async function stop(w: Proc): Promise<void> {
  if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGTERM');
  await w.exited;
}

/** `n` distinct 64x64 RGB PNGs in `dir`: img000.png, img001.png, ... */
export async function images(dir: string, n: number): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  for (let i = 0; i < n; i++) {
    const d = Buffer.alloc(64 * 64 * 3);
    for (let k = 0; k < d.length; k++) d[k] = (k * 7 + i * 31) % 251;
    const f = path.join(dir, `img${String(i).padStart(3, '0')}.png`);
    await sharp(d, { raw: { width: 64, height: 64, channels: 3 } })
      .png()
      .toFile(f);
    files.push(f);
  }
  return files;
}

/** An image's RGB bytes. */
export const decoded = (f: string): Promise<Buffer> => sharp(f).removeAlpha().raw().toBuffer();

/** BullMQ's record of a queue (gpen-lab's prefix) on a loopback Redis. */
export async function jobsOf(
  port: number,
  queue: string,
): Promise<{
  counts: Record<string, number>;
  processedBy: (string | undefined)[];
  job(id: string): Promise<{ attemptsMade: number; returnvalue: unknown } | null>;
  close(): Promise<void>;
}> {
  const q = new Queue(queue, { connection: { host: '127.0.0.1', port }, prefix: 'gpen-lab' });
  const counts = await q.getJobCounts('completed', 'failed', 'waiting', 'active', 'delayed');
  const completed = await q.getCompleted(0, -1);
  return {
    counts,
    processedBy: completed.map((j) => j.processedBy),
    async job(id) {
      const j = await q.getJob(id);
      return j ? { attemptsMade: j.attemptsMade, returnvalue: j.returnvalue as unknown } : null;
    },
    close: () => q.close(),
  };
}
