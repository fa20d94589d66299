// The restoration pipeline as a library: decode, detect, align, GPEN (batched across faces and images), paste back,
// encode, write. The CLI, the lab and the service all call this and share its RestoreResult.
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { GpenLabError, badArgument, toGpenLabError, type ErrorCode } from '../errors.js';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { outputExists, writeFileAtomicSafe } from '../io/files.js';
import { outputNames } from '../io/output-names.js';
import type { DecodedImage, OutputExt } from '../io/image.js';
import { decodeImage, encodeImage, outputMetadata } from '../io/image.js';
import { outputExtFor, outputExtOf } from '../io/metadata.js';
import type { EarlyStripes, PngPart } from '../io/png.js';
import { encodePngsStriped, hstack, partsWidth, photoPngs, pngStripeJobs, stripeReads } from '../io/png.js';
import type { Precision } from '../model/gpen-graph.js';
import type { GraphForm, ModelInfo, ModelSpec, PreparedModel } from '../model/registry.js';
import type { Provider } from '../runtime/providers.js';
import type { ProviderChoice, Route, RouteChoice, Workload } from '../runtime/routes.js';
import type { Availability, Plan } from './choose.js';
import { chooseSession } from './choose.js';
import type { GpenRunner, SessionConfig } from '../runtime/session.js';
import type { Affine } from './align.js';
import { alignTransform, invertAffine } from './align.js';
import { createBlazeFace } from './blazeface.js';
import { Compositor, blendAlpha, facePatch, pasteMask, pasteReduction, smoothSmallFace } from './paste.js';
import { FloatPool } from './pool.js';
import { FaceWorkers, defaultFaceThreads, sharedBytes } from './face-workers.js';
import type { PaddedRunner } from '../runtime/fixed-batch.js';
import { paddedRunner } from '../runtime/fixed-batch.js';
import type { DetectedFace, FaceDetector } from './types.js';
import { cropFootprint, tensorToPixels, warpToTensor } from './warp.js';

export const SYNTHETIC_NOTE = 'made with synthetic GPEN weights (seeded random): not a restoration';
/** Faces narrower than this (in the photo) get the official 3x3 smoothing after restoration. */
export const SMALL_FACE_PX = 100;

export interface RestoreOptions {
  model: ModelSpec;
  /** Default: fp16 on GPU providers, fp32 on the CPU, for a model built here; an ONNX file's own. */
  precision?: Precision;
  /** Default auto: CUDA, else a hardware WebGPU adapter, else the CPU (face/choose.ts). */
  provider?: ProviderChoice;
  /** Default fast: the measured-best binding and options for the provider (runtime/routes.ts); stock: the baseline. */
  route?: Route;
  /** The job's shape, which picks the fast route's CUDA set: one image (default), several, or a service. */
  workload?: Workload;
  /** How the model is prepared for a candidate (the service does it in a worker thread); default prepareModel. */
  prepare?: (spec: ModelSpec, precision: Precision | undefined, form: GraphForm) => Promise<PreparedModel>;
  /** Availability checks for auto (tests fake them): null when a provider may be tried, else why not. */
  available?: Availability;
  /** Weight of the restored face against the aligned original (official --alpha), 0..1. */
  alpha?: number;
  /** Treat each input as an already aligned face: GAN only, no detection or paste. */
  aligned?: boolean;
  /** The files each image gets (default ['gpen']): NAME_GPEN, the side-by-side NAME_COMP, the crop pairs NAME_faceNN. */
  outputs?: OutputKind[];
  /** @deprecated outputs with 'faces'. */
  saveFace?: boolean;
  /** Default: the input's format (JPEG, PNG, WebP; others PNG). */
  ext?: OutputExt;
  /** Hears each image's faces found (done 0) and each batch or chunk of them restored. */
  onProgress?: (p: RestoreProgress) => void;
  /** Faces per inference (across images; default per provider, routes.ts defaultBatch); a fixed-batch model: its own. */
  batch?: number;
  outDir: string;
  maxPixels?: number;
  /** A detector to use instead of BlazeFace (the seam for other detectors). */
  detector?: FaceDetector;
  /**
   * Return once the detector is ready while the GPEN session is still being created; the first inference waits for
   * it (a cold start decodes, detects and aligns meanwhile). A session that fails then fails restoreFiles as a whole.
   * It overlaps only where the session is created off the JavaScript thread: the C API route. Default: on that
   * route for a single image.
   */
  deferSession?: boolean;
  /** Where BlazeFace runs (default routes.ts detectorPlacement: on CUDA beside the warm set, else the CPU). */
  detectorProvider?: Provider;
  /** A face-parsing mask for a restored crop (size x size, 0..1): the seam for a user-supplied parser. */
  parser?: (restored: Float32Array, size: number) => Float32Array;
  /** The model already prepared (the service prepares it in a worker thread); `model` still names it. */
  prepared?: PreparedModel;
  /** Session options beyond the provider (graph optimisation level, threads, device): the lab's cells set them. */
  session?: Partial<Omit<SessionConfig, 'provider' | 'label'>>;
  /** A GPEN session made elsewhere, ready or on its way, for `prepared`'s model (then `session` is unused); released with the Restorer. */
  runner?: Promise<GpenRunner>;
  /** Write the encoded outputs (default true; the benchmark encodes but does not write). */
  write?: boolean;
  /** Replace output files that are already there (default false: such an image is an E_OUTPUT_EXISTS result). */
  overwrite?: boolean;
  /**
   * Worker threads that warp faces into crops and sample restored faces back, for images with FACE_WORKERS_FROM
   * faces or more (default: the cores but one, at most 16; 0: all on the JavaScript thread). Started at first use.
   */
  faceThreads?: number;
  /**
   * Overlap one image's alignment, inference and paste (default true): on the C API route (--cuda-options; a session
   * that reads the workers' shared memory) and with padBatch, an image of PIPELINE_FROM faces or more runs in chunks, the face workers
   * aligning and pasting one chunk while the session runs another. The output is the same either way.
   */
  pipeline?: boolean;
  /**
   * Give every inference one batch size (runtime/fixed-batch.ts: the largest run so far up to --batch, fewer faces
   * padded with zeros). Default true on CUDA and TensorRT, where each change of batch size costs ~1 s through the
   * stock binding and ~0.1 s through the C API without CUDA graphs (measured on an H200), but not with
   * enable_cuda_graph=1 (a graph per batch size); always for a model exported with a fixed batch; false elsewhere.
   */
  padBatch?: boolean;
}

/** Whether a face's restored values are finite, judged on every 61st (a broken model's output is all NaN or Inf). */
export function finiteSample(a: Float32Array, from: number, n: number): boolean {
  for (let k = from; k < from + n; k += 61) if (!Number.isFinite(a[k])) return false;
  return Number.isFinite(a[from + n - 1]);
}

/** Fewer faces than this are warped and pasted on the JavaScript thread: a message round trip costs more. */
export const FACE_WORKERS_FROM = 4;
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
 * PNG outputs are compressed in stripes on the face workers from this many threads on (src/io/png.ts): Node's zlib
 * compresses at about half libvips' speed on one thread, so 2 workers lose.
 */
export const STRIPED_PNG_THREADS = 4;

/** What restore can write per image, in this order (RestoreOptions.outputs). */
export const OUTPUT_KINDS = ['gpen', 'comp', 'faces'] as const;
export type OutputKind = (typeof OUTPUT_KINDS)[number];

/** Progress inside one image (RestoreOptions.onProgress): its faces, and how many the model has restored. */
export interface RestoreProgress {
  input: string;
  faces: number;
  done: number;
}

/**
 * Per-call overrides of the pipeline's options (the service takes them from each request). restoreDecoded's outputs
 * default to gpen and comp, and faces with saveFace.
 */
export interface FinishOptions {
  alpha?: number;
  ext?: OutputExt;
  outputs?: OutputKind[];
  saveFace?: boolean;
  write?: boolean;
}

export type StageName = 'decode' | 'detect' | 'align' | 'infer' | 'paste' | 'encode' | 'write';

export interface RestoreResult {
  input: string;
  outputs: { gpen: string | null; comp: string | null; faces: string[] };
  faces: DetectedFace[];
  stages_ms: Record<StageName, number>;
  /** Set when the image ran in overlapping chunks (RestoreOptions.pipeline): how many; the stages then count waits. */
  chunks?: number;
  /** Set when the PNG outputs were compressed in stripes on the face workers: how many, and how many before the paste. */
  png_stripes?: { total: number; early: number };
  /** The provider asked for (auto or a name), the one chosen, and the providers ONNX Runtime placed nodes on. */
  provider: { asked: ProviderChoice; chosen: Provider; ran: string[] | null };
  /** What was asked and what ran: route, binding, precision, CUDA option set, batch, detector, skipped providers. */
  route: RouteChoice;
  model: { file: string | null; sha256: string | null; size: number; synthetic: boolean };
  warnings: string[];
  error?: { code: ErrorCode; message: string; fix: string };
}

/** A failure as a result's error: a coded error as it is, anything else E_INTERNAL. */
function resultError(e: unknown): NonNullable<RestoreResult['error']> {
  const g = toGpenLabError(e);
  return { code: g.code, message: g.message, fix: g.fix };
}

const zeroStages = (): Record<StageName, number> => ({ decode: 0, detect: 0, align: 0, infer: 0, paste: 0, encode: 0, write: 0 });

interface Pending {
  file: string;
  /** Its outputs' NAME (io/output-names.ts: unique among the inputs of one call). */
  name?: string;
  img: DecodedImage;
  faces: DetectedFace[];
  transforms: Affine[];
  /** Aligned crops, planar [-1, 1], one after another. */
  crops: Float32Array;
  restored: Float32Array;
  done: number;
  result: RestoreResult;
  /** A pipelined image: its chunks of faces [from, to), each with its alignment (already asked of the face workers). */
  chunks?: { from: number; to: number; aligned: Promise<void> }[];
  /** The photo's pixels in shared memory, when the face workers read them; its alpha plane there (made when needed). */
  shared?: Uint8Array;
  sharedAlpha?: Uint8Array;
}

export class Restorer {
  /** Crops, outputs and paste planes are reused from image to image (fresh large arrays cost a page fault a page). */
  private readonly pool = new FloatPool();
  /**
   * Crops of images the face workers handle, in shared memory. onnxruntime-node refuses shared memory ("Invalid
   * argument"), so their inference goes through a copy (~15 ms for 29 faces at 512) instead of running in place.
   */
  private readonly sharedPool = new FloatPool(4, true);
  private workers: FaceWorkers | null = null;
  /** How long create() took: preparing the model (build or load), the GPEN session, the detector. */
  /** Milliseconds each took; session_ready_at: since the process started, when the session was ready (a cold start's timeline). */
  createMs = { model: 0, session: 0, detector: 0, session_ready_at: 0 };

  /** The session once created (null while a deferred one is still being created). */
  private session: GpenRunner | null = null;
  private prewarmed = false;
  /** Whether the paste and encoder warmed up while the first inference waited for its session or ran (prewarmFinish). */
  finishWarmed = false;

  /** Things the user should hear once (a model cache that could not be written), kept for every result's warnings. */
  readonly notes: string[] = [];

  private constructor(
    public info: ModelInfo,
    private readonly sessionP: Promise<GpenRunner>,
    /** What was asked and what runs (runtime/routes.ts); a deferred session's is final once it is created. */
    public choice: RouteChoice,
    private readonly detector: FaceDetector | null,
    private readonly opts: Required<Pick<RestoreOptions, 'alpha' | 'aligned' | 'outputs' | 'batch' | 'outDir' | 'write'>> & RestoreOptions,
    public label: string,
  ) {}

  /** Takes the plan whose session was created (another candidate than the first, after a failure under auto). */
  private adopt(plan: Plan): void {
    this.info = plan.prepared.info;
    this.choice = plan.choice;
    this.label = plan.prepared.label;
    this.opts.batch = plan.prepared.info.onnx?.fixedBatch ?? plan.choice.batch;
  }

  /** Gives a crop buffer back to the pool it came from. */
  private giveCrops(a: Float32Array): void {
    (a.buffer instanceof SharedArrayBuffer ? this.sharedPool : this.pool).give(a);
  }

  private get faceThreads(): number {
    return this.opts.faceThreads ?? defaultFaceThreads();
  }

  /** The face workers (started at first use), or null with faceThreads 0. */
  private workerPool(): FaceWorkers | null {
    if (this.faceThreads <= 0) return null;
    this.workers ??= new FaceWorkers(this.faceThreads);
    return this.workers;
  }

  /**
   * The face workers, when they are running and enough to encode PNGs in stripes faster than libvips
   * (STRIPED_PNG_THREADS): never started for it (a one-face cold start encodes through libvips, not after 8 threads start).
   */
  private pngWorkers(): FaceWorkers | null {
    return this.faceThreads >= STRIPED_PNG_THREADS ? this.workers : null;
  }

  /** The face workers for an image of `n` faces, or null when it stays on the JavaScript thread. */
  private faceWorkers(n: number): FaceWorkers | null {
    return n < FACE_WORKERS_FROM ? null : this.workerPool();
  }

  static async create(opts: RestoreOptions): Promise<Restorer> {
    const alpha = opts.alpha ?? 1;
    if (!(alpha >= 0 && alpha <= 1)) throw new GpenLabError('E_ARGUMENT', `Expected a number between 0 and 1 for --alpha but received ${alpha}`, 'Pass --alpha between 0 (original) and 1 (restored).', { input: '--alpha' });
    if (opts.batch !== undefined && (!Number.isInteger(opts.batch) || opts.batch < 1 || opts.batch > 256)) throw new GpenLabError('E_ARGUMENT', `Expected an integer between 1 and 256 for --batch but received ${opts.batch}`, 'Pass --batch between 1 and 256.', { input: '--batch' });
    if (opts.faceThreads !== undefined && !(Number.isInteger(opts.faceThreads) && opts.faceThreads >= 0 && opts.faceThreads <= 64)) {
      throw new GpenLabError('E_ARGUMENT', `Expected an integer between 0 and 64 for --face-threads but received ${opts.faceThreads}`, 'Pass --face-threads between 0 (warp and paste on the main thread) and 64.', { input: '--face-threads' });
    }
    const outputs = outputsOf(opts.outputs ?? ['gpen'], opts.saveFace);
    const t0 = performance.now();
    // the provider, route, precision, option set and batch (face/choose.ts): the first candidate's model is prepared
    // now, its session on the way; `settled` is the session that runs, after any candidate that failed
    const { first, settled } = await chooseSession(opts);
    const t1 = performance.now();
    const createMs = { model: t1 - t0, session: 0, detector: 0, session_ready_at: 0 };
    const holder: { r: Restorer | null } = { r: null };
    const sessionP = settled.then((plan) => {
      const fixed = plan.prepared.info.onnx?.fixedBatch ?? null;
      // on a GPU, runs padded to one batch size (fixed-batch.ts): through the stock binding each change of size costs
      // ~1 s; with CUDA graphs a graph captured for one size and replayed after runs of another failed (CUDA errors 700
      // and 717: ONNX Runtime's convolutions keep one plan per node, made again for each new size, and the older graph
      // still refers to the one replaced). The padded size only grows, so no graph is replayed after another size ran
      const gpu = (plan.choice.provider === 'cuda' || plan.choice.provider === 'tensorrt') && !opts.runner;
      const pad = fixed !== null && fixed > 1 ? { most: fixed, fixed: true } : (opts.padBatch ?? gpu) ? { most: plan.choice.batch } : null;
      return plan.runner.then((s) => (pad ? paddedRunner(s, pad) : s));
    });
    void sessionP.then(() => { createMs.session_ready_at = performance.now(); createMs.session = createMs.session_ready_at - t1; }, () => undefined);
    // a cold start on the C API route decodes, detects and aligns while its session is created (off this thread)
    const defer = opts.deferSession ?? (first.choice.binding === 'capi' && first.choice.workload === 'single');
    let plan = first;
    if (!defer) {
      await sessionP;
      plan = await settled;
    }
    const t2 = performance.now();
    let detector: FaceDetector | null;
    try {
      // BlazeFace fills its crops on the face workers too (the Restorer's, made at first use); on CUDA it takes the
      // GPEN session's route: through the C API (CUDA graphs) on the fast route
      const placement = plan.choice.detector;
      detector = opts.aligned ? null : (opts.detector ?? (await createBlazeFace({ provider: placement.provider, capi: placement.capi && !opts.runner, inputWorkers: () => holder.r?.workerPool() ?? null })));
    } catch (e) {
      void sessionP.then((s) => s.release(), () => undefined);
      throw e;
    }
    createMs.detector = performance.now() - t2;
    const fixed = plan.prepared.info.onnx?.fixedBatch ?? null;
    const r = new Restorer(plan.prepared.info, sessionP, plan.choice, detector, { ...opts, alpha, batch: fixed ?? plan.choice.batch, aligned: opts.aligned ?? false, outputs, write: opts.write ?? true }, plan.prepared.label);
    r.createMs = createMs;
    if (plan.prepared.note) r.notes.push(plan.prepared.note);
    holder.r = r;
    // a deferred session's plan is taken when it settles (before the first run, which waits for sessionP); its
    // failure fails restoreFiles
    if (defer) void settled.then((p) => r.adopt(p), () => undefined);
    if (!defer) await r.ready(); // already created: sessionP was awaited before the detector
    return r;
  }

  get size(): number {
    return this.info.size;
  }

  /** The GPEN session once created (null while a deferred one is still being created). */
  get runner(): GpenRunner | null {
    return this.session;
  }

  /** The GPEN session, waiting for it when its creation was deferred. */
  async ready(): Promise<GpenRunner> {
    this.session ??= await this.sessionP;
    return this.session;
  }

  /** Restores every file; a bad file becomes a result with `error`, and the others go on. */
  async restoreFiles(files: string[], onResult?: (r: RestoreResult, index: number) => void): Promise<RestoreResult[]> {
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
        this.giveCrops(p.crops);
        this.giveCrops(p.restored);
      }
      done(p.result);
    };
    const flush = async (all: boolean) => {
      while (queue.length > 0 && (all || queuedFaces >= this.opts.batch)) {
        await this.inferSome(queue);
        while (queue.length > 0 && queue[0].done === queue[0].faces.length) {
          const p = queue.shift()!;
          queuedFaces -= p.faces.length;
          await complete(p, () => this.finish(p));
        }
      }
    };
    const names = outputNames(files);
    // the next file is decoded (off this thread) while this one is restored: one decoded image ahead at most
    const decodeAhead = (k: number): Promise<DecodedImage> | null => {
      if (k >= files.length) return null;
      const d = this.decode(files[k]);
      d.catch(() => undefined); // its failure is that file's result, taken in its turn
      return d;
    };
    let ahead = decodeAhead(0);
    for (const [i, file] of files.entries()) {
      let p: Pending | null = null;
      const r = this.emptyResult(file);
      const decoding = ahead!;
      ahead = decodeAhead(i + 1);
      try {
        // outputs already there are refused before any work (and again, atomically, when written)
        if (this.opts.write && !this.opts.overwrite) {
          for (const f of await this.outputFiles(names[i], file)) if (existsSync(f)) throw outputExists(f);
        }
        // an image restored in chunks runs on its own: only when nothing is queued before it
        p = await this.prepare(file, r, queue.length === 0, decoding);
        p.name = names[i];
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
        await complete(chunked, () => this.pipelined(chunked));
        continue;
      }
      queue.push(p);
      queuedFaces += p.faces.length;
      await flush(false);
    }
    await flush(true);
    return results;
  }

  /** The outputs known before detection (NAME_GPEN, NAME_COMP, as asked) in the format they take; NAME_faceNN come after it. */
  private async outputFiles(name: string, file: string): Promise<string[]> {
    const ext = this.opts.ext ?? (await outputExtOf(file));
    const base = path.join(this.opts.outDir, name);
    return PHOTO_OUTPUTS.filter((k) => this.opts.outputs.includes(k)).map((k) => `${base}_${SUFFIX[k]}${ext}`);
  }

  /** An image's output format: asked for, else its input's. */
  private extOf(p: Pending, o: FinishOptions = {}): OutputExt {
    return o.ext ?? this.opts.ext ?? outputExtFor(p.img.source.format);
  }

  private progress(p: { file: string; faces: DetectedFace[]; done: number }): void {
    this.opts.onProgress?.({ input: p.file, faces: p.faces.length, done: p.done });
  }

  async restoreFile(file: string): Promise<RestoreResult> {
    return (await this.restoreFiles([file]))[0];
  }

  private emptyResult(file: string): RestoreResult {
    return {
      input: file, outputs: { gpen: null, comp: null, faces: [] }, faces: [], stages_ms: zeroStages(),
      provider: { asked: this.choice.asked.provider, chosen: this.choice.provider, ran: this.session?.placement?.ran ?? null },
      route: this.choice,
      model: { file: this.info.file, sha256: this.info.sha256, size: this.info.size, synthetic: this.info.synthetic },
      warnings: [...(this.info.synthetic ? [SYNTHETIC_NOTE] : []), ...this.notes],
    };
  }

  private decode(file: string): Promise<DecodedImage> {
    return decodeImage(file, this.opts.maxPixels !== undefined ? { maxPixels: this.opts.maxPixels } : undefined);
  }

  /** Decodes (or takes the decode already under way) and prepares one file; the decode stage counts the wait. */
  private async prepare(file: string, r: RestoreResult, chunked = false, decoding: Promise<DecodedImage> = this.decode(file)): Promise<Pending> {
    let t = performance.now();
    const lap = (k: StageName) => { const n = performance.now(); r.stages_ms[k] += n - t; t = n; };
    const img = await decoding;
    lap('decode');
    return this.prepareDecoded(img, file, r, chunked);
  }

  /**
   * Detect and align a decoded image: the crops of its faces, ready for inference. With `chunked`, an image that
   * qualifies for the pipeline (RestoreOptions.pipeline) comes back with its chunks' alignments under way instead.
   */
  private async prepareDecoded(img: DecodedImage, file: string, r: RestoreResult, chunked = false): Promise<Pending> {
    const S = this.size;
    let t = performance.now();
    const lap = (k: StageName) => { const n = performance.now(); r.stages_ms[k] += n - t; t = n; };
    let faces: DetectedFace[];
    let transforms: Affine[];
    // with face workers, one shared copy of the photo serves the detector's and the warp's (each copied it before)
    const pix = { width: img.width, height: img.height, data: this.faceThreads > 0 && !this.opts.aligned ? sharedBytes(img.rgb) : img.rgb };
    if (this.opts.aligned) {
      if (img.width !== img.height) throw notSquare(file, img);
      // the whole image is the face: scale it onto the crop
      faces = [{ box: [0, 0, img.width, img.height], score: 1, landmarks: { left_eye: [0, 0], right_eye: [0, 0], nose: [0, 0] }, raw: [] }];
      transforms = [[S / img.width, 0, (S / img.width - 1) / 2, 0, S / img.height, (S / img.height - 1) / 2]];
    } else {
      faces = await this.detector!.detect(pix);
      lap('detect');
      transforms = faces.map((f) => alignTransform(f.landmarks, S));
    }
    this.progress({ file, faces, done: 0 });
    r.faces = this.opts.aligned ? [] : faces;
    if (faces.length === 0) r.warnings.push(`no face found in ${file}: the image is written unchanged`);
    const per = 3 * S * S;
    const workers = this.faceWorkers(faces.length);
    const cropPool = workers ? this.sharedPool : this.pool;
    // on the C API route, and through a session whose runs are padded to one batch size: unpadded, the stock
    // binding's CUDA session pays ~1 s for each change of batch size between chunks (measured on an H200)
    const split = workers && chunked && this.opts.pipeline !== false && !this.opts.parser && !this.opts.aligned && faces.length >= PIPELINE_FROM && (this.session?.readsSharedMemory === true || (this.session as PaddedRunner | null)?.paddedTo !== undefined);
    const size = pipelineChunk(faces.length, workers?.threads ?? 0, this.opts.batch);
    // in chunks, room for a whole last chunk: a padded session (fixed-batch.ts) runs it in place, without a copy
    const room = split ? Math.ceil(faces.length / size) * size : faces.length;
    const crops = cropPool.take(per * room).subarray(0, per * faces.length);
    const restored = cropPool.take(per * room).subarray(0, per * faces.length);
    if (split) {
      // every chunk's alignment asked for at once: each worker takes its jobs in order, so the first chunk is ready first
      const chunks: NonNullable<Pending['chunks']> = [];
      for (let from = 0; from < faces.length; from += size) {
        const to = Math.min(faces.length, from + size);
        const aligned = workers.warp(pix, S, crops, transforms.slice(from, to).map((m, j) => ({ toCrop: m, offset: (from + j) * per })));
        aligned.catch(() => undefined); // awaited in turn by pipelined(); a failure is thrown there
        chunks.push({ from, to, aligned });
      }
      workers.warmPaste(S);
      return { file, img, faces, transforms, crops, restored, done: 0, result: r, chunks, shared: pix.data };
    }
    if (workers) {
      const aligned = workers.warp(pix, S, crops, transforms.map((m, i) => ({ toCrop: m, offset: i * per })));
      workers.warmPaste(S);
      await aligned;
    } else transforms.forEach((m, i) => warpToTensor(pix, m, S, crops, i * per));
    lap('align');
    return { file, img, faces, transforms, crops, restored, done: 0, result: r, ...(pix.data.buffer instanceof SharedArrayBuffer ? { shared: pix.data } : {}) };
  }

  /**
   * One image in chunks (prepareDecoded's `chunks`): chunk c is inferred once aligned, and its faces are pasted on
   * the face workers while the session runs chunk c + 1; the patches merge in face order, so the output is the one
   * finish() makes. Stages count the waits on the critical path: align until a chunk's crops are ready, infer until
   * its run returns, paste from the last run to the composite.
   */
  private async pipelined(p: Pending): Promise<void> {
    const r = p.result;
    const S = this.size;
    const per = 3 * S * S;
    const alpha = this.opts.alpha;
    const workers = this.workerPool()!;
    r.chunks = p.chunks!.length;
    let t = performance.now();
    const lap = (k: StageName) => { const n = performance.now(); r.stages_ms[k] += n - t; t = n; };
    const saved = this.opts.outputs.includes('faces') ? new Float32Array(per * p.faces.length) : null;
    const smoothInPaste = p.faces.map(() => false);
    const comp = new Compositor(p.img.width, p.img.height, p.shared ? this.sharedPool : this.pool);
    // the output PNGs' stripes that no face reaches, compressed while the chunks run
    const early = this.earlyStripes(p);
    early?.stripes.catch(() => undefined); // awaited by the encode; a failure is thrown there
    // merges run in chunk order whenever their patches arrive; a failed chunk fails the rest of the chain
    let merged: Promise<void> = Promise.resolve();
    try {
      for (const { from, to, aligned } of p.chunks!) {
        await aligned;
        lap('align');
        const session = await this.ready();
        const x = p.crops.subarray(from * per, to * per);
        const inPlace = session.readsSharedMemory === true || !(x.buffer instanceof SharedArrayBuffer);
        const input = inPlace ? x : this.pool.take(x.length);
        if (!inPlace) input.set(x);
        try {
          const out = await session.run(input, [to - from, 3, S, S], inPlace ? p.restored.subarray(from * per, to * per) : undefined);
          if (!inPlace) p.restored.set(out.data.subarray(0, (to - from) * per), from * per);
        } finally {
          if (!inPlace) this.pool.give(input);
        }
        p.done = to;
        this.progress(p);
        lap('infer');
        if (saved) saved.set(p.restored.subarray(from * per, to * per), from * per);
        this.prepFaces(p, from, to, alpha, smoothInPaste);
        const patches = workers.patches(p.restored, S, p.img.width, p.img.height, p.transforms.slice(from, to).map((m, j) => ({ toCrop: m, offset: (from + j) * per, smooth: smoothInPaste[from + j] })));
        patches.catch(() => undefined); // awaited through `merged`
        merged = merged.then(async () => {
          for (const patch of await patches) comp.merge(patch);
        });
      }
      await merged;
      const into = new Uint8Array(new SharedArrayBuffer(p.img.rgb.length));
      const outRgb = p.shared ? await comp.compositeOn(workers, p.shared, into) : comp.composite(p.img.rgb, into);
      lap('paste');
      await this.encodeOutputs(p, { rgb: outRgb, width: p.img.width, height: p.img.height, alpha: p.img.alpha }, saved, {}, early);
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
  private earlyStripes(p: Pending): EarlyStripes | null {
    const workers = this.pngWorkers();
    if (!workers || this.extOf(p) !== '.png' || this.opts.aligned || !p.shared || !PHOTO_OUTPUTS.some((k) => this.opts.outputs.includes(k))) return null;
    const { width: W, height: H } = p.img;
    let lo = H, hi = 0;
    for (const m of p.transforms) {
      const [, y0, , y1] = cropFootprint(invertAffine(m), this.size, W, H);
      if (y1 > y0) {
        lo = Math.min(lo, y0);
        hi = Math.max(hi, y1);
      }
    }
    const input: PngPart = { data: p.shared, width: W, alpha: p.img.alpha ? (p.sharedAlpha ??= sharedBytes(p.img.alpha)) : null };
    const jobs = photoPngs(input, input, H, PHOTO_OUTPUTS.filter((k) => this.opts.outputs.includes(k))).map((im) => pngStripeJobs(im.parts, im.height));
    const early = jobs.map((js) => js.map((j) => {
      const [first, end] = stripeReads(j);
      return end <= lo || first >= hi;
    }));
    if (!early.some((e) => e.some(Boolean))) return null;
    return { early, stripes: workers.pngStripes(jobs.flatMap((js, i) => js.filter((_, k) => early[i][k]))) };
  }

  /**
   * The official order before the paste, for faces [from, to): small faces smoothed, then blended with the aligned
   * original by alpha, in place. Where the paste reduces the crop anyway (and alpha is 1), the smoothing rides along
   * in the reduction for free: `smoothInPaste` says so per face.
   */
  private prepFaces(p: Pending, from: number, to: number, alpha: number, smoothInPaste: boolean[]): void {
    const S = this.size;
    const per = 3 * S * S;
    for (let i = from; i < to; i++) {
      // a model whose output is not a number (NaN or infinite) leaves the face as it was, and says so
      if (!finiteSample(p.restored, i * per, per)) {
        p.restored.set(p.crops.subarray(i * per, (i + 1) * per), i * per);
        p.result.warnings.push(`the model's output for face ${i} is not a number (NaN or infinite): that face is left as it was (the weights or the precision may be broken; try --precision fp32)`);
      }
      const [x1, y1, x2, y2] = p.faces[i].box;
      const small = !this.opts.aligned && Math.min(x2 - x1, y2 - y1) < SMALL_FACE_PX;
      if (small && alpha === 1 && pasteReduction(p.transforms[i]) > 1) smoothInPaste[i] = true;
      else if (small) smoothSmallFace(p.restored, S, i * per);
      blendAlpha(p.restored, p.crops, alpha, per, i * per, i * per);
    }
  }

  /** Runs one batch of up to `batch` faces taken in order from the queued images. */
  private async inferSome(queue: Pending[]): Promise<void> {
    const S = this.size;
    const per = 3 * S * S;
    const take: { p: Pending; i: number }[] = [];
    for (const p of queue) {
      for (let i = p.done; i < p.faces.length && take.length < this.opts.batch; i++) take.push({ p, i });
      if (take.length >= this.opts.batch) break;
    }
    if (take.length === 0) return;
    // one image's faces in a row (the usual case) run in place: no copy in, the output straight into `restored`; the
    // face workers' crops (shared memory) only where the session reads them as they are (the C API route)
    const first = take[0];
    const inPlace = take.every((t, j) => t.p === first.p && t.i === first.i + j) && (!(first.p.crops.buffer instanceof SharedArrayBuffer) || this.session?.readsSharedMemory === true);
    let x: Float32Array;
    if (inPlace) {
      x = first.p.crops.subarray(first.i * per, (first.i + take.length) * per);
    } else {
      x = this.pool.take(per * take.length);
      take.forEach((t, j) => x.set(t.p.crops.subarray(t.i * per, (t.i + 1) * per), j * per));
    }
    const into = inPlace ? first.p.restored.subarray(first.i * per, (first.i + take.length) * per) : undefined;
    const runP = this.ready().then((s) => s.run(x, [take.length, 3, S, S], into));
    // the first inference: the paste and the encoder warm up while the session is still being created and while the
    // run is on the GPU (prewarmFinish)
    // (an optimisation: its failure would change no output, so it never fails the restore)
    if (!this.prewarmed && !this.opts.aligned && !this.opts.parser) await this.prewarmFinish(first.p, runP).catch(() => undefined);
    const out = await runP;
    if (!inPlace) this.pool.give(x);
    const share = out.ms / take.length;
    take.forEach((t, j) => {
      if (!inPlace) t.p.restored.set(out.data.subarray(j * per, (j + 1) * per), t.i * per);
      t.p.done = Math.max(t.p.done, t.i + 1);
      t.p.result.stages_ms.infer += share;
    });
    for (const p of new Set(take.map((t) => t.p))) this.progress(p);
  }

  /**
   * One decoded image through the pipeline, its faces inferred by `infer` (the service passes a batcher that shares
   * batches with other requests); nothing is written: the encoded images come back.
   */
  async restoreDecoded(img: DecodedImage, name: string, o: FinishOptions, infer: (crops: Float32Array, n: number) => Promise<Float32Array>, cancelled?: () => GpenLabError | null): Promise<{ result: RestoreResult; images: [string, Buffer][] }> {
    const r = this.emptyResult(name);
    const stop = () => { const e = cancelled?.(); if (e) throw e; };
    stop();
    const p = await this.prepareDecoded(img, name, r);
    // work whose request timed out or went away stops before its inference and its paste
    try {
      stop();
    } catch (e) {
      this.giveCrops(p.crops);
      this.giveCrops(p.restored);
      throw e;
    }
    try {
      if (p.faces.length > 0) {
        const t = performance.now();
        const n = 3 * this.size * this.size * p.faces.length;
        // the inference cannot read shared memory: a copy when the face workers made the crops
        const shared = p.crops.buffer instanceof SharedArrayBuffer;
        const x = shared ? this.pool.take(n) : p.crops.subarray(0, n);
        if (shared) x.set(p.crops.subarray(0, n));
        const out = await infer(x, p.faces.length).finally(() => { if (shared) this.pool.give(x); });
        p.restored.set(out.subarray(0, 3 * this.size * this.size * p.faces.length));
        r.stages_ms.infer += performance.now() - t;
      }
      stop();
      const images = await this.finish(p, { ...o, outputs: o.outputs ?? outputsOf(['gpen', 'comp'], o.saveFace), write: false });
      return { result: r, images };
    } finally {
      this.giveCrops(p.crops);
      this.giveCrops(p.restored);
    }
  }

  /**
   * A cold start waits for its session after alignment, then for its first run (a worker thread's, on the C API
   * route). Meanwhile the paste runs on the first face's own crop (standing in for the restored one) until V8 has its
   * loops optimised, three times at most and only until the run returns, and one composite is encoded; all of it is
   * thrown away. The real paste and encode after the first inference then run warm: a paste in unoptimised code is
   * several times slower.
   */
  private async prewarmFinish(p: Pending, until: Promise<unknown>): Promise<void> {
    if (this.prewarmed) return;
    this.prewarmed = true;
    let done = false;
    void until.then(() => { done = true; }, () => { done = true; });
    // the run is asked for first; a run that returned meanwhile (a synchronous one) leaves nothing to overlap
    await new Promise((r) => setImmediate(r));
    if (done) return;
    const S = this.size;
    const per = 3 * S * S;
    const mask = pasteMask(S);
    // many faces are pasted on the face workers, whose code this thread cannot warm
    if (p.faces.length === 0 || p.faces.length >= FACE_WORKERS_FROM) return;
    const [x1, y1, x2, y2] = p.faces[0].box;
    const smooth = Math.min(x2 - x1, y2 - y1) < SMALL_FACE_PX && pasteReduction(p.transforms[0]) > 1;
    const crop = this.pool.take(per);
    crop.set(p.crops.subarray(0, per));
    const comp = new Compositor(p.img.width, p.img.height, this.pool);
    this.finishWarmed = true;
    try {
      comp.add(crop, S, p.transforms[0], mask, 0, smooth);
      const rgb = comp.composite(p.img.rgb);
      // not awaited: libvips encodes on its own threads, and the run may return before it is done
      void encodeImage({ width: p.img.width, height: p.img.height, rgb, alpha: null }, this.extOf(p)).catch(() => undefined);
      for (let i = 1; i < 3; i++) {
        // yield between the rounds: a run that returned meanwhile ends the warm-up
        await new Promise((r) => setImmediate(r));
        if (done) break;
        facePatch(crop, S, p.transforms[0], mask, p.img.width, p.img.height, 0, smooth);
      }
    } finally {
      comp.release();
      this.pool.give(crop);
    }
  }

  /** Runs `n` aligned crops (planar, [-1, 1]) through the session at once: the service's batched inference. */
  async inferCrops(x: Float32Array, n: number): Promise<Float32Array> {
    const S = this.size;
    return (await (await this.ready()).run(x, [n, 3, S, S])).data;
  }

  private async finish(p: Pending, o: FinishOptions = {}): Promise<[string, Buffer][]> {
    const alpha = o.alpha ?? this.opts.alpha;
    const saveFace = (o.outputs ?? this.opts.outputs).includes('faces');
    const r = p.result;
    const S = this.size;
    const per = 3 * S * S;
    let t = performance.now();
    const lap = (k: StageName) => { const n = performance.now(); r.stages_ms[k] += n - t; t = n; };
    const { img } = p;
    // the restored crops saved as they are, before the smoothing and the blend
    const smoothInPaste = p.faces.map(() => false);
    const saved = saveFace ? new Float32Array(p.restored.subarray(0, per * p.faces.length)) : null;
    this.prepFaces(p, 0, p.faces.length, alpha, smoothInPaste);
    let outRgb: Uint8Array;
    let outW = img.width, outH = img.height;
    let outAlpha = img.alpha;
    if (this.opts.aligned) {
      const px = tensorToPixels(p.restored, S);
      outRgb = px.data; outW = S; outH = S; outAlpha = null;
    } else {
      // a parser's masks are computed here, one face at a time; the standard mask the workers make themselves
      const workers = this.opts.parser ? null : this.faceWorkers(p.faces.length);
      // with the workers, the planes in shared memory: they composite the photo in bands of rows
      const comp = new Compositor(img.width, img.height, workers && p.shared ? this.sharedPool : this.pool);
      if (workers) {
        const patches = await workers.patches(p.restored, S, img.width, img.height, p.transforms.map((m, i) => ({ toCrop: m, offset: i * per, smooth: smoothInPaste[i] })));
        for (const patch of patches) comp.merge(patch);
      } else {
        for (let i = 0; i < p.faces.length; i++) {
          const mask = this.opts.parser ? this.opts.parser(p.restored.subarray(i * per, (i + 1) * per), S) : pasteMask(S);
          comp.add(p.restored, S, p.transforms[i], mask, i * per, smoothInPaste[i]);
        }
      }
      try {
        outRgb = workers && p.shared
          ? await comp.compositeOn(workers, p.shared, new Uint8Array(new SharedArrayBuffer(img.rgb.length)))
          : comp.composite(img.rgb, this.pngWorkers() ? new Uint8Array(new SharedArrayBuffer(img.rgb.length)) : undefined);
      } finally {
        comp.release();
      }
    }
    lap('paste');
    return this.encodeOutputs(p, { rgb: outRgb, width: outW, height: outH, alpha: outAlpha }, saved, o);
  }

  /** Encodes the outputs asked for (the result, the side-by-side comparison, each face's pair); writes them unless told not to. */
  private async encodeOutputs(p: Pending, out: { rgb: Uint8Array; width: number; height: number; alpha: Uint8Array | null }, saved: Float32Array | null, o: FinishOptions, early?: EarlyStripes | null): Promise<[string, Buffer][]> {
    const kinds = o.outputs ?? this.opts.outputs;
    const write = o.write ?? this.opts.write;
    const r = p.result;
    const S = this.size;
    const per = 3 * S * S;
    const { img } = p;
    const { rgb: outRgb, width: outW, height: outH, alpha: outAlpha } = out;
    let t = performance.now();
    const lap = (k: StageName) => { const n = performance.now(); r.stages_ms[k] += n - t; t = n; };
    const ext = this.extOf(p, o);
    const base = path.join(this.opts.outDir, p.name ?? path.parse(p.file).name);
    const description = this.info.synthetic ? `gpen-lab: ${SYNTHETIC_NOTE}` : `gpen-lab: restored with ${path.basename(this.label)}`;
    // the photo's EXIF goes with it (Orientation 1: its pixels are upright now); the face crops get the description
    const exif = img.source.exif ?? null;
    const photo = PHOTO_OUTPUTS.filter((k) => kinds.includes(k));
    // the encodes run in sharp's threads, all at once, or as PNG stripes on every face worker
    const jobs: [OutputKind, string, Promise<Buffer>][] = [];
    // side by side: the input (scaled to the output's height when aligned) and the result
    const left = this.opts.aligned ? tensorToPixels(p.crops, S) : { width: img.width, height: img.height, data: p.shared ?? img.rgb };
    const pngWorkers = ext === '.png' && photo.length > 0 ? this.pngWorkers() : null;
    if (pngWorkers) {
      const out: PngPart = { data: sharedBytes(outRgb), width: outW, alpha: outAlpha ? (p.sharedAlpha ??= sharedBytes(outAlpha)) : null };
      const images = photoPngs({ data: sharedBytes(left.data), width: left.width, alpha: null }, out, outH, photo);
      const metas = await Promise.all(images.map((im) => outputMetadata({ description, exif, width: partsWidth(im.parts), height: outH })));
      const { encoded, stripes } = encodePngsStriped((jobs) => pngWorkers.pngStripes(jobs), images, metas, early ?? undefined);
      r.png_stripes = { total: stripes, early: early?.early.flat().filter(Boolean).length ?? 0 };
      photo.forEach((k, i) => jobs.push([k, `${base}_${SUFFIX[k]}${ext}`, encoded[i]]));
    } else {
      for (const k of photo) {
        const im = k === 'gpen' ? { width: outW, height: outH, rgb: outRgb, alpha: outAlpha } : hstack([left, { width: outW, height: outH, data: outRgb }]);
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
    lap('encode');
    // where the nodes ran (the C API route reads its first run's profile meanwhile)
    await this.session?.placementSettled?.();
    t = performance.now();
    const placement = this.session?.placement ?? null;
    r.provider.ran = placement?.ran ?? null;
    if (placement?.mismatch) r.warnings.push(`asked for ${this.choice.provider} but nodes ran on ${placement.ran.join(', ')}`);
    if (!write) return files;
    // each file whole or not at all, none replaced unless asked; after a failure the image's other outputs go too
    const written: string[] = [];
    const results = await Promise.allSettled(files.map(([f, buf]) => writeFileAtomicSafe(f, buf, { fsync: false, noClobber: this.opts.overwrite !== true }).then(() => written.push(f))));
    const failed = results.find((x): x is PromiseRejectedResult => x.status === 'rejected');
    if (failed) {
      await Promise.all(written.map((f) => rm(f, { force: true })));
      throw failed.reason;
    }
    lap('write');
    const of = (k: OutputKind) => jobs.filter((j) => j[0] === k).map((j) => j[1]);
    r.outputs = { gpen: of('gpen')[0] ?? null, comp: of('comp')[0] ?? null, faces: of('faces') };
    return files;
  }

  async release(): Promise<void> {
    this.pool.clear();
    this.sharedPool.clear();
    await this.workers?.close();
    this.workers = null;
    // a deferred session that failed was reported by the run that needed it; none ran without it
    const session = this.session ?? (await this.sessionP.catch(() => null));
    await session?.release();
    if (this.detector && !this.opts.detector) await this.detector.release();
  }
}

/** The outputs that show the whole photo, and their names' suffixes. */
const PHOTO_OUTPUTS = ['gpen', 'comp'] as const;
const SUFFIX = { gpen: 'GPEN', comp: 'COMP' } as const;

/** The outputs asked for, in OUTPUT_KINDS' order; the deprecated saveFace adds faces. */
function outputsOf(kinds: readonly string[], saveFace?: boolean): OutputKind[] {
  if (kinds.length === 0 || kinds.some((k) => !(OUTPUT_KINDS as readonly string[]).includes(k))) throw badArgument('--outputs', `a list of ${OUTPUT_KINDS.join(', ')}`, kinds.join(','));
  return OUTPUT_KINDS.filter((k) => kinds.includes(k) || (k === 'faces' && saveFace === true));
}

function notSquare(file: string, img: { width: number; height: number }): GpenLabError {
  return new GpenLabError('E_ARGUMENT', `--aligned takes square face crops, but ${file} is ${img.width}x${img.height}: it would be squashed onto the model's square`,
    'Leave out --aligned to find and align the faces in the photo, or crop the face to a square first (GPEN\'s aligned faces are 512x512).', { input: file, width: img.width, height: img.height });
}
