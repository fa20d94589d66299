// The files of one call in order: each decoded one ahead, prepared, and its faces queued for inference in batches
// that cross images; an image of many faces runs on its own in chunks (chunked.ts).
import { existsSync } from 'node:fs';
import { toGpenLabError } from '../../errors.js';
import { outputExists } from '../../io/files.js';
import type { DecodedImage } from '../../io/image.js';
import { outputNames } from '../../io/output-names.js';
import { pipelined } from './chunked.js';
import type { RestoreContext } from './context.js';
import { finish, outputFiles } from './outputs.js';
import { prepare } from './prepare.js';
import { readableCrops, runCrops, type SessionInput } from './stages.js';
import type { OutputTarget, Pending, RestoreResult } from './types.js';
import { prewarmFinish } from './warmup.js';

/** A failure as a result's error: a coded error as it is, anything else E_INTERNAL. */
function resultError(e: unknown): NonNullable<RestoreResult['error']> {
  const g = toGpenLabError(e);
  const option = g.details.option;
  return { code: g.code, message: g.message, fix: g.fix, ...(typeof option === 'string' ? { option } : {}) };
}

/** Restores every file; a bad file becomes a result with `error`, and the others go on. */
export async function restoreFiles(
  ctx: RestoreContext,
  files: string[],
  onResult?: (r: RestoreResult, index: number) => void,
  targets?: readonly OutputTarget[],
): Promise<RestoreResult[]> {
  const results: RestoreResult[] = [];
  const queue: Pending[] = [];
  let queuedFaces = 0;
  const done = (r: RestoreResult) => {
    results.push(r);
    onResult?.(r, results.length - 1);
  };
  // an image's last steps (finish, or the whole chunked pipeline): a failure becomes its result's error
  const complete = async (p: Pending, work: () => Promise<unknown>) => {
    try {
      await work();
    } catch (e) {
      p.result.error = resultError(e);
    } finally {
      ctx.giveCrops(p.crops);
      ctx.giveCrops(p.restored);
    }
    done(p.result);
  };
  const flush = async (all: boolean) => {
    while (queue.length > 0 && (all || queuedFaces >= ctx.opts.batch)) {
      await inferSome(ctx, queue);
      while (queue.length > 0 && queue[0].done === queue[0].faces.length) {
        const p = queue.shift()!;
        queuedFaces -= p.faces.length;
        await complete(p, () => finish(ctx, p));
      }
    }
  };
  const names = targets?.map((t) => t.name) ?? outputNames(files);
  const dirs = targets?.map((t) => t.outDir) ?? null;
  // the next file is decoded (off this thread) while this one is restored: one decoded image ahead at most
  const decodeAhead = (k: number): Promise<DecodedImage> | null => {
    if (k >= files.length) return null;
    const d = ctx.decode(files[k]);
    d.catch(() => undefined); // its failure is that file's result, taken in its turn
    return d;
  };
  let ahead = decodeAhead(0);
  for (const [i, file] of files.entries()) {
    let p: Pending | null = null;
    const r = ctx.emptyResult(file);
    const decoding = ahead!;
    ahead = decodeAhead(i + 1);
    try {
      // outputs already there are refused before any work (and again, atomically, when written)
      if (ctx.opts.write && !ctx.opts.overwrite) {
        for (const f of await outputFiles(ctx, names[i], file, dirs?.[i])) if (existsSync(f)) throw outputExists(f);
      }
      // an image restored in chunks runs on its own: only when nothing is queued before it
      p = await prepare(ctx, file, r, queue.length === 0, decoding);
      p.name = names[i];
      if (dirs) p.outDir = dirs[i];
    } catch (e) {
      r.error = resultError(e);
    }
    if (!p) {
      // an error, or nothing to restore: keep order by flushing what is queued before it
      await flush(true);
      if (!r.error) throw new Error('internal: no pending image and no error');
      done(r);
      continue;
    }
    if (p.chunks) {
      const chunked = p;
      await complete(chunked, () => pipelined(ctx, chunked));
      continue;
    }
    queue.push(p);
    queuedFaces += p.faces.length;
    await flush(false);
  }
  await flush(true);
  return results;
}

/** Runs one batch of up to `batch` faces taken in order from the queued images. */
async function inferSome(ctx: RestoreContext, queue: Pending[]): Promise<void> {
  const S = ctx.size;
  const per = 3 * S * S;
  const { batch } = ctx.opts;
  const take: { p: Pending; i: number }[] = [];
  for (const p of queue) {
    for (let i = p.done; i < p.faces.length && take.length < batch; i++) take.push({ p, i });
    if (take.length >= batch) break;
  }
  if (take.length === 0) return;
  // one image's faces in a row (the usual case) run in place: no copy in, the output straight into `restored`; the
  // face workers' crops (shared memory) only where the session reads them as they are (the C API route)
  const first = take[0];
  const from = first.i * per;
  const to = (first.i + take.length) * per;
  let input: SessionInput;
  if (take.every((t, j) => t.p === first.p && t.i === first.i + j)) {
    input = readableCrops(ctx.pool, first.p.crops.subarray(from, to), ctx.session?.readsSharedMemory === true);
  } else {
    const x = ctx.pool.take(per * take.length);
    take.forEach((t, j) => x.set(t.p.crops.subarray(t.i * per, (t.i + 1) * per), j * per));
    input = { x, copied: true, release: () => ctx.pool.give(x) };
  }
  const into = input.copied ? undefined : first.p.restored.subarray(from, to);
  const runP = ctx.ready().then((s) => runCrops(s, input.x, take.length, S, into));
  // the first inference: the paste and the encoder warm up while the session is still being created and while the
  // run is on the GPU (prewarmFinish)
  // (an optimisation: its failure would change no output, so it never fails the restore)
  if (!ctx.prewarmed && !ctx.opts.aligned && !ctx.opts.parser) {
    await prewarmFinish(ctx, first.p, runP).catch(() => undefined);
  }
  const out = await runP;
  input.release();
  const share = out.ms / take.length;
  take.forEach((t, j) => {
    if (input.copied) t.p.restored.set(out.data.subarray(j * per, (j + 1) * per), t.i * per);
    t.p.done = Math.max(t.p.done, t.i + 1);
    t.p.result.stages_ms.infer += share;
  });
  for (const p of new Set(take.map((t) => t.p))) ctx.progress(p);
}
