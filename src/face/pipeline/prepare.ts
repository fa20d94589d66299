// Decode, detect and align: one image's faces as crops ready for inference, or for an image of many faces, its
// chunks' alignments under way (chunked.ts).
import type { DecodedImage } from '../../io/image.js';
import type { PaddedRunner } from '../../runtime/fixed-batch.js';
import type { Affine } from '../align.js';
import { alignTransform } from '../align.js';
import { sharedBytes } from '../face-workers.js';
import type { DetectedFace } from '../types.js';
import { warpToTensor } from '../warp.js';
import { PIPELINE_FROM, pipelineChunk } from './chunked.js';
import type { RestoreContext } from './context.js';
import { notSquare } from './options.js';
import { StageClock } from './stages.js';
import type { Pending, RestoreResult } from './types.js';

/** Decodes (or takes the decode already under way) and prepares one file; the decode stage counts the wait. */
export async function prepare(
  ctx: RestoreContext,
  file: string,
  r: RestoreResult,
  chunked = false,
  decoding: Promise<DecodedImage> = ctx.decode(file),
): Promise<Pending> {
  const clock = new StageClock(r);
  const img = await decoding;
  clock.lap('decode');
  return prepareDecoded(ctx, img, file, r, chunked);
}

/**
 * Detect and align a decoded image: the crops of its faces, ready for inference. With `chunked`, an image that
 * qualifies for the pipeline (RestoreOptions.pipeline) comes back with its chunks' alignments under way instead.
 */
export async function prepareDecoded(
  ctx: RestoreContext,
  img: DecodedImage,
  file: string,
  r: RestoreResult,
  chunked = false,
): Promise<Pending> {
  const S = ctx.size;
  const { opts } = ctx;
  const clock = new StageClock(r);
  let faces: DetectedFace[];
  let transforms: Affine[];
  // with face workers, one shared copy of the photo serves the detector's and the warp's (each copied it before)
  const data = ctx.faceThreads > 0 && !opts.aligned ? sharedBytes(img.rgb) : img.rgb;
  const pix = { width: img.width, height: img.height, data };
  if (opts.aligned) {
    if (img.width !== img.height) throw notSquare(file, img);
    // the whole image is the face: scale it onto the crop
    const landmarks: DetectedFace['landmarks'] = { left_eye: [0, 0], right_eye: [0, 0], nose: [0, 0] };
    faces = [{ box: [0, 0, img.width, img.height], score: 1, landmarks, raw: [] }];
    transforms = [[S / img.width, 0, (S / img.width - 1) / 2, 0, S / img.height, (S / img.height - 1) / 2]];
  } else {
    faces = await ctx.detector!.detect(pix);
    clock.lap('detect');
    transforms = faces.map((f) => alignTransform(f.landmarks, S));
  }
  ctx.progress({ file, faces, done: 0 });
  r.faces = opts.aligned ? [] : faces;
  if (faces.length === 0) r.warnings.push(`no face found in ${file}: the image is written unchanged`);
  const per = 3 * S * S;
  const workers = ctx.faceWorkers(faces.length);
  const cropPool = workers ? ctx.sharedPool : ctx.pool;
  // on the C API route, and through a session whose runs are padded to one batch size: unpadded, the stock
  // binding's CUDA session pays ~1 s for each change of batch size between chunks (measured on an H200)
  const session = ctx.session;
  const overlaps = session?.readsSharedMemory === true || (session as PaddedRunner | null)?.paddedTo !== undefined;
  const many = faces.length >= PIPELINE_FROM;
  const split = workers && chunked && opts.pipeline !== false && !opts.parser && !opts.aligned && many && overlaps;
  const size = pipelineChunk(faces.length, workers?.threads ?? 0, opts.batch);
  // in chunks, room for a whole last chunk: a padded session (fixed-batch.ts) runs it in place, without a copy
  const room = split ? Math.ceil(faces.length / size) * size : faces.length;
  const crops = cropPool.take(per * room).subarray(0, per * faces.length);
  const restored = cropPool.take(per * room).subarray(0, per * faces.length);
  if (split) {
    // every chunk's alignment asked for at once: each worker takes its jobs in order, so the first chunk is ready first
    const chunks: NonNullable<Pending['chunks']> = [];
    for (let from = 0; from < faces.length; from += size) {
      const to = Math.min(faces.length, from + size);
      const jobs = transforms.slice(from, to).map((m, j) => ({ toCrop: m, offset: (from + j) * per }));
      const aligned = workers.warp(pix, S, crops, jobs);
      aligned.catch(() => undefined); // awaited in turn by pipelined(); a failure is thrown there
      chunks.push({ from, to, aligned });
    }
    workers.warmPaste(S);
    return { file, img, faces, transforms, crops, restored, done: 0, result: r, chunks, shared: pix.data };
  }
  if (workers) {
    const jobs = transforms.map((m, i) => ({ toCrop: m, offset: i * per }));
    const aligned = workers.warp(pix, S, crops, jobs);
    workers.warmPaste(S);
    await aligned;
  } else transforms.forEach((m, i) => warpToTensor(pix, m, S, crops, i * per));
  clock.lap('align');
  const shared = pix.data.buffer instanceof SharedArrayBuffer ? { shared: pix.data } : {};
  return { file, img, faces, transforms, crops, restored, done: 0, result: r, ...shared };
}
