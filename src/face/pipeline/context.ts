// What the parts of one Restorer's pipeline share: the model and route, the GPEN session, the buffer pools and the
// face workers; the pipeline's functions take it as their first argument.
import type { DecodedImage, OutputExt } from '../../io/image.js';
import { decodeImage } from '../../io/image.js';
import { outputExtFor } from '../../io/metadata.js';
import type { ModelInfo } from '../../model/registry.js';
import type { RouteChoice } from '../../runtime/routes.js';
import type { GpenRunner } from '../../runtime/session.js';
import type { Plan } from '../choose.js';
import { FaceWorkers, defaultFaceThreads } from '../face-workers.js';
import { FloatPool } from '../pool.js';
import type { DetectedFace, FaceDetector } from '../types.js';
import { zeroStages } from './stages.js';
import type { FinishOptions, Pending, ResolvedOptions, RestoreResult, RestorerState } from './types.js';

export const SYNTHETIC_NOTE = 'made with synthetic GPEN weights (seeded random): not a restoration';
/** Fewer faces than this are warped and pasted on the JavaScript thread: a message round trip costs more. */
export const FACE_WORKERS_FROM = 4;
/**
 * PNG outputs are compressed in stripes on the face workers from this many threads on (src/io/png.ts): Node's zlib
 * compresses at about half libvips' speed on one thread, so 2 workers lose.
 */
const STRIPED_PNG_THREADS = 4;

export class RestoreContext {
  /** Crops, outputs and paste planes are reused from image to image (fresh large arrays cost a page fault a page). */
  readonly pool = new FloatPool();
  /**
   * Crops of images the face workers handle, in shared memory. onnxruntime-node refuses shared memory ("Invalid
   * argument"), so their inference goes through a copy (~15 ms for 29 faces at 512) instead of running in place.
   */
  readonly sharedPool = new FloatPool(4, true);
  workers: FaceWorkers | null = null;
  /** The session once created (null while a deferred one is still being created). */
  session: GpenRunner | null = null;
  prewarmed = false;

  constructor(
    /** The Restorer's own fields: a deferred session's plan is written there. */
    readonly state: RestorerState,
    readonly sessionP: Promise<GpenRunner>,
    readonly detector: FaceDetector | null,
    readonly opts: ResolvedOptions,
  ) {}

  get info(): ModelInfo {
    return this.state.info;
  }

  /** What was asked and what runs (runtime/routes.ts); a deferred session's is final once it is created. */
  get choice(): RouteChoice {
    return this.state.choice;
  }

  get label(): string {
    return this.state.label;
  }

  /** Takes the plan whose session was created (another candidate than the first, after a failure under auto). */
  adopt(plan: Plan): void {
    this.state.info = plan.prepared.info;
    this.state.choice = plan.choice;
    this.state.label = plan.prepared.label;
    this.opts.batch = plan.prepared.info.onnx?.fixedBatch ?? plan.choice.batch;
  }

  get size(): number {
    return this.info.size;
  }

  /** The GPEN session, waiting for it when its creation was deferred. */
  async ready(): Promise<GpenRunner> {
    this.session ??= await this.sessionP;
    return this.session;
  }

  /** Gives a crop buffer back to the pool it came from. */
  giveCrops(a: Float32Array): void {
    (a.buffer instanceof SharedArrayBuffer ? this.sharedPool : this.pool).give(a);
  }

  get faceThreads(): number {
    return this.opts.faceThreads ?? defaultFaceThreads();
  }

  /** The face workers (started at first use), or null with faceThreads 0. */
  workerPool(): FaceWorkers | null {
    if (this.faceThreads <= 0) return null;
    this.workers ??= new FaceWorkers(this.faceThreads);
    return this.workers;
  }

  /**
   * The face workers, when they are running and enough to encode PNGs in stripes faster than libvips
   * (STRIPED_PNG_THREADS): never started for it (a one-face cold start encodes through libvips, not after 8 threads
   * start).
   */
  pngWorkers(): FaceWorkers | null {
    return this.faceThreads >= STRIPED_PNG_THREADS ? this.workers : null;
  }

  /** The face workers for an image of `n` faces, or null when it stays on the JavaScript thread. */
  faceWorkers(n: number): FaceWorkers | null {
    return n < FACE_WORKERS_FROM ? null : this.workerPool();
  }

  /** An image's output format: asked for, else its input's. */
  extOf(p: Pending, o: FinishOptions = {}): OutputExt {
    return o.ext ?? this.opts.ext ?? outputExtFor(p.img.source.format);
  }

  progress(p: { file: string; faces: DetectedFace[]; done: number }): void {
    this.opts.onProgress?.({ input: p.file, faces: p.faces.length, done: p.done });
  }

  emptyResult(file: string): RestoreResult {
    const ran = this.session?.placement?.ran ?? null;
    return {
      input: file,
      outputs: { gpen: null, comp: null, faces: [] },
      faces: [],
      stages_ms: zeroStages(),
      provider: { asked: this.choice.asked.provider, chosen: this.choice.provider, ran },
      route: this.choice,
      model: { file: this.info.file, sha256: this.info.sha256, size: this.info.size, synthetic: this.info.synthetic },
      warnings: [...(this.info.synthetic ? [SYNTHETIC_NOTE] : []), ...this.state.notes],
    };
  }

  decode(file: string): Promise<DecodedImage> {
    return decodeImage(file, this.opts.maxPixels !== undefined ? { maxPixels: this.opts.maxPixels } : undefined);
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
