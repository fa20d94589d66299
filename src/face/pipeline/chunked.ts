// One image of many faces in overlapping chunks: the face workers align and paste one chunk while the session runs
// another, and the PNG stripes no face reaches are compressed meanwhile.
import type { EarlyStripes, PngPart } from '../../io/png.js';
import { photoPngs, pngStripeJobs, stripeReads } from '../../io/png.js';
import { invertAffine } from '../align.js';
import { sharedBytes } from '../face-workers.js';
import { Compositor } from '../paste.js';
import { cropFootprint } from '../warp.js';
import type { RestoreContext } from './context.js';
import { PHOTO_OUTPUTS, encodeOutputs, prepFaces } from './outputs.js';
import { StageClock, readableCrops, runCrops } from './stages.js';
import type { Pending } from './types.js';

/** Images with this many faces or more are restored in overlapping chunks (RestoreOptions.pipeline). */
export const PIPELINE_FROM = 12;

/**
 * The faces of a chunk, each chunk a run of the session (on a GPU, a batch of 10 costs per face about what one of 29
 * does): at least a third of the image's faces, up to one face per worker (a chunk then aligns and pastes in one round
 * of the workers), at most half; fewer where --batch is smaller. With 15 face workers the Solvay photo's 29 faces
 * infer faster as 15 + 14 than as 10 + 10 + 9 (measured on an H200).
 */
export function pipelineChunk(faces: number, workers: number, batch: number): number {
  return Math.max(1, Math.min(batch, Math.ceil(faces / 2), Math.max(workers, Math.ceil(faces / 3))));
}

/**
 * One image in chunks (prepare.ts's `chunks`): chunk c is inferred once aligned, and its faces are pasted on the
 * face workers while the session runs chunk c + 1; the patches merge in face order, so the output is the one
 * finish() makes. Stages count the waits on the critical path: align until a chunk's crops are ready, infer until
 * its run returns, paste from the last run to the composite.
 */
export async function pipelined(ctx: RestoreContext, p: Pending): Promise<void> {
  const r = p.result;
  const S = ctx.size;
  const per = 3 * S * S;
  const alpha = ctx.opts.alpha;
  const workers = ctx.workerPool()!;
  r.chunks = p.chunks!.length;
  const clock = new StageClock(r);
  const saved = ctx.opts.outputs.includes('faces') ? new Float32Array(per * p.faces.length) : null;
  const smoothInPaste = p.faces.map(() => false);
  const comp = new Compositor(p.img.width, p.img.height, p.shared ? ctx.sharedPool : ctx.pool);
  // the output PNGs' stripes that no face reaches, compressed while the chunks run
  const early = earlyStripes(ctx, p);
  early?.stripes.catch(() => undefined); // awaited by the encode; a failure is thrown there
  // merges run in chunk order whenever their patches arrive; a failed chunk fails the rest of the chain
  let merged: Promise<void> = Promise.resolve();
  try {
    for (const { from, to, aligned } of p.chunks!) {
      await aligned;
      clock.lap('align');
      const session = await ctx.ready();
      const input = readableCrops(ctx.pool, p.crops.subarray(from * per, to * per), session.readsSharedMemory === true);
      try {
        const into = input.copied ? undefined : p.restored.subarray(from * per, to * per);
        const out = await runCrops(session, input.x, to - from, S, into);
        if (input.copied) p.restored.set(out.data.subarray(0, (to - from) * per), from * per);
      } finally {
        input.release();
      }
      p.done = to;
      ctx.progress(p);
      clock.lap('infer');
      if (saved) saved.set(p.restored.subarray(from * per, to * per), from * per);
      prepFaces(ctx, p, from, to, alpha, smoothInPaste);
      const faces = p.transforms
        .slice(from, to)
        .map((m, j) => ({ toCrop: m, offset: (from + j) * per, smooth: smoothInPaste[from + j] }));
      const patches = workers.patches(p.restored, S, p.img.width, p.img.height, faces);
      patches.catch(() => undefined); // awaited through `merged`
      merged = merged.then(async () => {
        for (const patch of await patches) comp.merge(patch);
      });
    }
    await merged;
    const into = new Uint8Array(new SharedArrayBuffer(p.img.rgb.length));
    const outRgb = p.shared ? await comp.compositeOn(workers, p.shared, into) : comp.composite(p.img.rgb, into);
    clock.lap('paste');
    const out = { rgb: outRgb, width: p.img.width, height: p.img.height, alpha: p.img.alpha };
    await encodeOutputs(ctx, p, out, saved, {}, early);
  } finally {
    // after a failure, the workers' jobs still under way finish before the crops go back to the pool
    await Promise.allSettled([merged, ...p.chunks!.map((c) => c.aligned), early?.stripes]);
    comp.release();
  }
}

/**
 * With PNG outputs on the face workers: the stripes of the two outputs whose rows (and the window before them) no
 * face's patch reaches, compressed now from the input's pixels, which those rows of the outputs are (the
 * composite copies them). In a group photo that is the rows below and above the faces (the Solvay photo: 286 of 568).
 */
function earlyStripes(ctx: RestoreContext, p: Pending): EarlyStripes | null {
  const workers = ctx.pngWorkers();
  const photo = PHOTO_OUTPUTS.filter((k) => ctx.opts.outputs.includes(k));
  if (!workers || ctx.extOf(p) !== '.png' || ctx.opts.aligned || !p.shared || photo.length === 0) return null;
  const { width: W, height: H } = p.img;
  let lo = H,
    hi = 0;
  for (const m of p.transforms) {
    const [, y0, , y1] = cropFootprint(invertAffine(m), ctx.size, W, H);
    if (y1 > y0) {
      lo = Math.min(lo, y0);
      hi = Math.max(hi, y1);
    }
  }
  const alpha = p.img.alpha ? (p.sharedAlpha ??= sharedBytes(p.img.alpha)) : null;
  const input: PngPart = { data: p.shared, width: W, alpha };
  const jobs = photoPngs(input, input, H, photo).map((im) => pngStripeJobs(im.parts, im.height));
  const early = jobs.map((js) =>
    js.map((j) => {
      const [first, end] = stripeReads(j);
      return end <= lo || first >= hi;
    }),
  );
  if (!early.some((e) => e.some(Boolean))) return null;
  return { early, stripes: workers.pngStripes(jobs.flatMap((js, i) => js.filter((_, k) => early[i][k]))) };
}
