// An image's last steps once its faces are restored: the blend before the paste, the paste, the encodes (through
// libvips, or as PNG stripes on the face workers) and the atomic writes.
import path from 'node:path';
import { rm } from 'node:fs/promises';
import { writeFileAtomicSafe } from '../../io/files.js';
import { encodeImage, outputMetadata } from '../../io/image.js';
import { outputExtOf } from '../../io/metadata.js';
import type { EarlyStripes, PngPart } from '../../io/png.js';
import { encodePngsStriped, hstack, partsWidth, photoPngs } from '../../io/png.js';
import { sharedBytes } from '../face-workers.js';
import { Compositor, blendAlpha, pasteMask, pasteReduction, smoothSmallFace } from '../paste.js';
import { tensorToPixels } from '../warp.js';
import { SYNTHETIC_NOTE, type RestoreContext } from './context.js';
import { StageClock } from './stages.js';
import type { FinishOptions, OutputKind, Pending } from './types.js';

/** Faces narrower than this (in the photo) get the official 3x3 smoothing after restoration. */
export const SMALL_FACE_PX = 100;
/** The outputs that show the whole photo, and their names' suffixes. */
export const PHOTO_OUTPUTS = ['gpen', 'comp'] as const;
const SUFFIX = { gpen: 'GPEN', comp: 'COMP' } as const;

/** The photo's pixels and alpha as one output image holds them. */
interface OutputPixels {
  rgb: Uint8Array;
  width: number;
  height: number;
  alpha: Uint8Array | null;
}

/**
 * The outputs known before detection (NAME_GPEN, NAME_COMP, as asked) in the format they take; NAME_faceNN come
 * after it.
 */
export async function outputFiles(
  ctx: RestoreContext,
  name: string,
  file: string,
  outDir = ctx.opts.outDir,
): Promise<string[]> {
  const ext = ctx.opts.ext ?? (await outputExtOf(file));
  const base = path.join(outDir, name);
  return PHOTO_OUTPUTS.filter((k) => ctx.opts.outputs.includes(k)).map((k) => `${base}_${SUFFIX[k]}${ext}`);
}

/** Whether a face's restored values are finite, judged on every 61st (a broken model's output is all NaN or Inf). */
function finiteSample(a: Float32Array, from: number, n: number): boolean {
  for (let k = from; k < from + n; k += 61) if (!Number.isFinite(a[k])) return false;
  return Number.isFinite(a[from + n - 1]);
}

/**
 * The official order before the paste, for faces [from, to): small faces smoothed, then blended with the aligned
 * original by alpha, in place. Where the paste reduces the crop anyway (and alpha is 1), the smoothing rides along
 * in the reduction for free: `smoothInPaste` says so per face.
 */
export function prepFaces(
  ctx: RestoreContext,
  p: Pending,
  from: number,
  to: number,
  alpha: number,
  smoothInPaste: boolean[],
): void {
  const S = ctx.size;
  const per = 3 * S * S;
  for (let i = from; i < to; i++) {
    // a model whose output is not a number (NaN or infinite) leaves the face as it was, and says so
    if (!finiteSample(p.restored, i * per, per)) {
      p.restored.set(p.crops.subarray(i * per, (i + 1) * per), i * per);
      p.result.warnings.push(
        `the model's output for face ${i} is not a number (NaN or infinite): that face is left as it was ` +
          '(the weights or the precision may be broken; try --precision fp32)',
      );
    }
    const [x1, y1, x2, y2] = p.faces[i].box;
    const small = !ctx.opts.aligned && Math.min(x2 - x1, y2 - y1) < SMALL_FACE_PX;
    if (small && alpha === 1 && pasteReduction(p.transforms[i]) > 1) smoothInPaste[i] = true;
    else if (small) smoothSmallFace(p.restored, S, i * per);
    blendAlpha(p.restored, p.crops, alpha, per, i * per, i * per);
  }
}

/** An image whose faces are all restored: blended, pasted back, then its outputs encoded (and written). */
export async function finish(ctx: RestoreContext, p: Pending, o: FinishOptions = {}): Promise<[string, Buffer][]> {
  const alpha = o.alpha ?? ctx.opts.alpha;
  const saveFace = (o.outputs ?? ctx.opts.outputs).includes('faces');
  const S = ctx.size;
  const per = 3 * S * S;
  const clock = new StageClock(p.result);
  const { img } = p;
  // the restored crops saved as they are, before the smoothing and the blend
  const smoothInPaste = p.faces.map(() => false);
  const saved = saveFace ? new Float32Array(p.restored.subarray(0, per * p.faces.length)) : null;
  prepFaces(ctx, p, 0, p.faces.length, alpha, smoothInPaste);
  let outRgb: Uint8Array;
  let outW = img.width,
    outH = img.height;
  let outAlpha = img.alpha;
  if (ctx.opts.aligned) {
    const px = tensorToPixels(p.restored, S);
    outRgb = px.data;
    outW = S;
    outH = S;
    outAlpha = null;
  } else {
    // a parser's masks are computed here, one face at a time; the standard mask the workers make themselves
    const workers = ctx.opts.parser ? null : ctx.faceWorkers(p.faces.length);
    // with the workers, the planes in shared memory: they composite the photo in bands of rows
    const comp = new Compositor(img.width, img.height, workers && p.shared ? ctx.sharedPool : ctx.pool);
    if (workers) {
      const faces = p.transforms.map((m, i) => ({ toCrop: m, offset: i * per, smooth: smoothInPaste[i] }));
      const patches = await workers.patches(p.restored, S, img.width, img.height, faces);
      for (const patch of patches) comp.merge(patch);
    } else {
      for (let i = 0; i < p.faces.length; i++) {
        const mask = ctx.opts.parser ? ctx.opts.parser(p.restored.subarray(i * per, (i + 1) * per), S) : pasteMask(S);
        comp.add(p.restored, S, p.transforms[i], mask, i * per, smoothInPaste[i]);
      }
    }
    try {
      if (workers && p.shared) {
        outRgb = await comp.compositeOn(workers, p.shared, new Uint8Array(new SharedArrayBuffer(img.rgb.length)));
      } else {
        const into = ctx.pngWorkers() ? new Uint8Array(new SharedArrayBuffer(img.rgb.length)) : undefined;
        outRgb = comp.composite(img.rgb, into);
      }
    } finally {
      comp.release();
    }
  }
  clock.lap('paste');
  return encodeOutputs(ctx, p, { rgb: outRgb, width: outW, height: outH, alpha: outAlpha }, saved, o);
}

/**
 * Encodes the outputs asked for (the result, the side-by-side comparison, each face's pair); writes them unless told
 * not to.
 */
export async function encodeOutputs(
  ctx: RestoreContext,
  p: Pending,
  out: OutputPixels,
  saved: Float32Array | null,
  o: FinishOptions,
  early?: EarlyStripes | null,
): Promise<[string, Buffer][]> {
  const kinds = o.outputs ?? ctx.opts.outputs;
  const write = o.write ?? ctx.opts.write;
  const r = p.result;
  const S = ctx.size;
  const per = 3 * S * S;
  const { img } = p;
  const { rgb: outRgb, width: outW, height: outH, alpha: outAlpha } = out;
  const clock = new StageClock(r);
  const ext = ctx.extOf(p, o);
  const base = path.join(p.outDir ?? ctx.opts.outDir, p.name ?? path.parse(p.file).name);
  const description = ctx.info.synthetic
    ? `gpen-lab: ${SYNTHETIC_NOTE}`
    : `gpen-lab: restored with ${path.basename(ctx.label)}`;
  // the photo's EXIF goes with it (Orientation 1: its pixels are upright now); the face crops get the description
  const exif = img.source.exif ?? null;
  const photo = PHOTO_OUTPUTS.filter((k) => kinds.includes(k));
  // the encodes run in sharp's threads, all at once, or as PNG stripes on every face worker
  const jobs: [OutputKind, string, Promise<Buffer>][] = [];
  // side by side: the input (scaled to the output's height when aligned) and the result
  const left = ctx.opts.aligned
    ? tensorToPixels(p.crops, S)
    : { width: img.width, height: img.height, data: p.shared ?? img.rgb };
  const pngWorkers = ext === '.png' && photo.length > 0 ? ctx.pngWorkers() : null;
  if (pngWorkers) {
    const data = sharedBytes(outRgb);
    const result: PngPart = { data, width: outW, alpha: outAlpha ? (p.sharedAlpha ??= sharedBytes(outAlpha)) : null };
    const images = photoPngs({ data: sharedBytes(left.data), width: left.width, alpha: null }, result, outH, photo);
    const metas = await Promise.all(
      images.map((im) => outputMetadata({ description, exif, width: partsWidth(im.parts), height: outH })),
    );
    const { encoded, stripes } = encodePngsStriped(
      (js) => pngWorkers.pngStripes(js),
      images,
      metas,
      early ?? undefined,
    );
    r.png_stripes = { total: stripes, early: early?.early.flat().filter(Boolean).length ?? 0 };
    photo.forEach((k, i) => jobs.push([k, `${base}_${SUFFIX[k]}${ext}`, encoded[i]]));
  } else {
    for (const k of photo) {
      const im =
        k === 'gpen'
          ? { width: outW, height: outH, rgb: outRgb, alpha: outAlpha }
          : hstack([left, { width: outW, height: outH, data: outRgb }]);
      jobs.push([k, `${base}_${SUFFIX[k]}${ext}`, encodeImage(im, ext, { description, exif })]);
    }
  }
  if (kinds.includes('faces')) {
    for (let i = 0; i < p.faces.length; i++) {
      const pair = hstack([tensorToPixels(p.crops, S, i * per), tensorToPixels(saved!, S, i * per)]);
      jobs.push(['faces', `${base}_face${String(i).padStart(2, '0')}${ext}`, encodeImage(pair, ext, { description })]);
    }
  }
  const buffers = await Promise.all(jobs.map((j) => j[2]));
  const files: [string, Buffer][] = jobs.map((j, i) => [j[1], buffers[i]]);
  clock.lap('encode');
  // where the nodes ran (the C API route reads its first run's profile meanwhile)
  await ctx.session?.placementSettled?.();
  clock.restart();
  const placement = ctx.session?.placement ?? null;
  r.provider.ran = placement?.ran ?? null;
  if (placement?.mismatch) {
    r.warnings.push(`asked for ${ctx.choice.provider} but nodes ran on ${placement.ran.join(', ')}`);
  }
  if (!write) return files;
  // each file whole or not at all, none replaced unless asked; after a failure the image's other outputs go too
  const written: string[] = [];
  const noClobber = ctx.opts.overwrite !== true;
  const results = await Promise.allSettled(
    files.map(([f, buf]) => writeFileAtomicSafe(f, buf, { fsync: false, noClobber }).then(() => written.push(f))),
  );
  const failed = results.find((x): x is PromiseRejectedResult => x.status === 'rejected');
  if (failed) {
    await Promise.all(written.map((f) => rm(f, { force: true })));
    throw failed.reason;
  }
  clock.lap('write');
  const of = (k: OutputKind) => jobs.filter((j) => j[0] === k).map((j) => j[1]);
  r.outputs = { gpen: of('gpen')[0] ?? null, comp: of('comp')[0] ?? null, faces: of('faces') };
  return files;
}
