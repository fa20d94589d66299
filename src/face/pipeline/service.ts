// The service's path: one decoded image whose faces another batcher infers (shared with other requests), and the
// batched inference that batcher calls; nothing is written.
import { performance } from 'node:perf_hooks';
import type { GpenLabError } from '../../errors.js';
import type { DecodedImage } from '../../io/image.js';
import type { RestoreContext } from './context.js';
import { outputsOf } from './options.js';
import { finish } from './outputs.js';
import { prepareDecoded } from './prepare.js';
import { readableCrops, runCrops } from './stages.js';
import type { FinishOptions, RestoreResult } from './types.js';

/** Runs `n` crops through a batcher's inference: planar [-1, 1], one after another; the restored crops back. */
export type InferCrops = (crops: Float32Array, n: number) => Promise<Float32Array>;

/** restoreDecoded's arguments after the context (Restorer.restoreDecoded passes them on). */
export type RestoreDecodedArgs = [
  img: DecodedImage,
  name: string,
  o: FinishOptions,
  infer: InferCrops,
  cancelled?: () => GpenLabError | null,
];

/** A decoded image's result and its encoded images (file name, bytes). */
export interface DecodedRestored {
  result: RestoreResult;
  images: [string, Buffer][];
}

/**
 * One decoded image through the pipeline, its faces inferred by `infer` (the service passes a batcher that shares
 * batches with other requests); nothing is written: the encoded images come back.
 */
export async function restoreDecoded(
  ctx: RestoreContext,
  ...[img, name, o, infer, cancelled]: RestoreDecodedArgs
): Promise<DecodedRestored> {
  const r = ctx.emptyResult(name);
  const stop = () => {
    const e = cancelled?.();
    if (e) throw e;
  };
  stop();
  const p = await prepareDecoded(ctx, img, name, r);
  // work whose request timed out or went away stops before its inference and its paste
  try {
    stop();
  } catch (e) {
    ctx.giveCrops(p.crops);
    ctx.giveCrops(p.restored);
    throw e;
  }
  try {
    if (p.faces.length > 0) {
      const t = performance.now();
      const n = 3 * ctx.size * ctx.size * p.faces.length;
      // the batcher's inference cannot read shared memory: a copy when the face workers made the crops
      const input = readableCrops(ctx.pool, p.crops.subarray(0, n), false);
      const out = await infer(input.x, p.faces.length).finally(() => input.release());
      p.restored.set(out.subarray(0, n));
      r.stages_ms.infer += performance.now() - t;
    }
    stop();
    const outputs = o.outputs ?? outputsOf(['gpen', 'comp'], o.saveFace);
    const images = await finish(ctx, p, { ...o, outputs, write: false });
    return { result: r, images };
  } finally {
    ctx.giveCrops(p.crops);
    ctx.giveCrops(p.restored);
  }
}

/** Runs `n` aligned crops (planar, [-1, 1]) through the session at once: the service's batched inference. */
export async function inferCrops(ctx: RestoreContext, x: Float32Array, n: number): Promise<Float32Array> {
  const S = ctx.size;
  return (await runCrops(await ctx.ready(), x, n, S)).data;
}
