// What the queue's tests make and look at: small distinct images, decoded pixels, and BullMQ's own view of a queue's
// jobs (which worker processed each, how many tries a job took).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { Queue } from 'bullmq';

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
