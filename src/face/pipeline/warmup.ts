// The paste and the encoder warmed up on the JavaScript thread while a cold start's first inference waits or runs.
import { encodeImage } from '../../io/image.js';
import { Compositor, facePatch, pasteMask, pasteReduction } from '../paste.js';
import { FACE_WORKERS_FROM, type RestoreContext } from './context.js';
import { SMALL_FACE_PX } from './outputs.js';
import type { Pending } from './types.js';

/**
 * A cold start waits for its session after alignment, then for its first run (a worker thread's, on the C API
 * route). Meanwhile the paste runs on the first face's own crop (standing in for the restored one) until V8 has its
 * loops optimised, three times at most and only until the run returns, and one composite is encoded; all of it is
 * thrown away. The real paste and encode after the first inference then run warm: a paste in unoptimised code is
 * several times slower.
 */
export async function prewarmFinish(ctx: RestoreContext, p: Pending, until: Promise<unknown>): Promise<void> {
  if (ctx.prewarmed) return;
  ctx.prewarmed = true;
  let done = false;
  void until.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  // the run is asked for first; a run that returned meanwhile (a synchronous one) leaves nothing to overlap
  await new Promise((r) => setImmediate(r));
  if (done) return;
  const S = ctx.size;
  const per = 3 * S * S;
  const mask = pasteMask(S);
  // many faces are pasted on the face workers, whose code this thread cannot warm
  if (p.faces.length === 0 || p.faces.length >= FACE_WORKERS_FROM) return;
  const [x1, y1, x2, y2] = p.faces[0].box;
  const smooth = Math.min(x2 - x1, y2 - y1) < SMALL_FACE_PX && pasteReduction(p.transforms[0]) > 1;
  const crop = ctx.pool.take(per);
  crop.set(p.crops.subarray(0, per));
  const { width, height } = p.img;
  const comp = new Compositor(width, height, ctx.pool);
  ctx.state.finishWarmed = true;
  try {
    comp.add(crop, S, p.transforms[0], mask, 0, smooth);
    const rgb = comp.composite(p.img.rgb);
    // not awaited: libvips encodes on its own threads, and the run may return before it is done
    void encodeImage({ width, height, rgb, alpha: null }, ctx.extOf(p)).catch(() => undefined);
    for (let i = 1; i < 3; i++) {
      // yield between the rounds: a run that returned meanwhile ends the warm-up
      await new Promise((r) => setImmediate(r));
      if (done) break;
      facePatch(crop, S, p.transforms[0], mask, width, height, 0, smooth);
    }
  } finally {
    comp.release();
    ctx.pool.give(crop);
  }
}
