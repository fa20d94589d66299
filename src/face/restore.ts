// The restoration pipeline as a library: decode, detect, align, GPEN (batched across faces and images), paste back,
// encode, write. The CLI, the lab and the service all call this and share its RestoreResult; the parts are in
// ./pipeline/ (docs/architecture.md).
import { performance } from 'node:perf_hooks';
import type { ModelInfo } from '../model/registry.js';
import { DEFAULT_BUILD } from '../runtime/builds.js';
import { paddedRunner } from '../runtime/fixed-batch.js';
import type { RouteChoice } from '../runtime/routes.js';
import type { GpenRunner } from '../runtime/session.js';
import { createBlazeFace } from './blazeface.js';
import { chooseSession } from './choose.js';
import { restoreFiles } from './pipeline/batch.js';
import { RestoreContext } from './pipeline/context.js';
import { checkOptions } from './pipeline/options.js';
import { inferCrops, restoreDecoded } from './pipeline/service.js';
import type { DecodedRestored, RestoreDecodedArgs } from './pipeline/service.js';
import type { OutputTarget, ResolvedOptions, RestoreOptions, RestoreResult, RestorerState } from './pipeline/types.js';
import type { FaceDetector } from './types.js';

export { pipelineChunk } from './pipeline/chunked.js';
export { SYNTHETIC_NOTE } from './pipeline/context.js';
export { OUTPUT_KINDS } from './pipeline/types.js';
export { checkAlpha } from './pipeline/options.js';
export type { FinishOptions, OutputKind, OutputTarget, RestoreOptions, RestoreResult } from './pipeline/types.js';

export class Restorer implements RestorerState {
  /**
   * How long create() took, in milliseconds: preparing the model (build or load), the GPEN session, the detector;
   * session_ready_at: since the process started, when the session was ready (a cold start's timeline).
   */
  createMs = { model: 0, session: 0, detector: 0, session_ready_at: 0 };
  /** Whether the paste and encoder warmed up while the first inference waited for its session or ran (warmup.ts). */
  finishWarmed = false;
  /** Things the user should hear once (a model cache that could not be written), kept for every result's warnings. */
  readonly notes: string[] = [];
  private readonly ctx: RestoreContext;

  private constructor(
    public info: ModelInfo,
    sessionP: Promise<GpenRunner>,
    /** What was asked and what runs (runtime/routes.ts); a deferred session's is final once it is created. */
    public choice: RouteChoice,
    detector: FaceDetector | null,
    opts: ResolvedOptions,
    public label: string,
  ) {
    this.ctx = new RestoreContext(this, sessionP, detector, opts);
  }

  static async create(opts: RestoreOptions): Promise<Restorer> {
    const { alpha, outputs } = checkOptions(opts);
    const t0 = performance.now();
    // the provider, route, precision, option set and batch (face/choose.ts): the first candidate's model is prepared
    // now, its session on the way; `settled` is the session that runs, after any candidate that failed
    const { first, settled } = await chooseSession(opts);
    const t1 = performance.now();
    const createMs = { model: t1 - t0, session: 0, detector: 0, session_ready_at: 0 };
    const holder: { ctx: RestoreContext | null } = { ctx: null };
    const sessionP = settled.then((plan) => {
      const fixed = plan.prepared.info.onnx?.fixedBatch ?? null;
      // on a GPU, runs padded to one batch size (fixed-batch.ts): through the stock binding each change of size costs
      // ~1 s; with CUDA graphs a graph captured for one size and replayed after runs of another failed (CUDA errors 700
      // and 717: ONNX Runtime's convolutions keep one plan per node, made again for each new size, and the older graph
      // still refers to the one replaced). The padded size only grows, so no graph is replayed after another size ran
      const gpu = (plan.choice.provider === 'cuda' || plan.choice.provider === 'tensorrt') && !opts.runner;
      const pad =
        fixed !== null && fixed > 1
          ? { most: fixed, fixed: true }
          : (opts.padBatch ?? gpu)
            ? { most: plan.choice.batch }
            : null;
      return plan.runner.then((s) => (pad ? paddedRunner(s, pad) : s));
    });
    void sessionP.then(
      () => {
        createMs.session_ready_at = performance.now();
        createMs.session = createMs.session_ready_at - t1;
      },
      () => undefined,
    );
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
      const build = plan.choice.runtime?.build ?? DEFAULT_BUILD;
      detector = opts.aligned
        ? null
        : (opts.detector ??
          (await createBlazeFace({
            provider: placement.provider,
            // a session made elsewhere may be the stock binding's, whose process the detector's C API would not share
            capi: placement.capi && (!opts.runner || build !== DEFAULT_BUILD),
            runtime: build,
            inputWorkers: () => holder.ctx?.workerPool() ?? null,
          })));
    } catch (e) {
      void sessionP.then(
        (s) => s.release(),
        () => undefined,
      );
      throw e;
    }
    createMs.detector = performance.now() - t2;
    const fixed = plan.prepared.info.onnx?.fixedBatch ?? null;
    const resolved: ResolvedOptions = {
      ...opts,
      alpha,
      batch: fixed ?? plan.choice.batch,
      aligned: opts.aligned ?? false,
      outputs,
      write: opts.write ?? true,
    };
    const r = new Restorer(plan.prepared.info, sessionP, plan.choice, detector, resolved, plan.prepared.label);
    r.createMs = createMs;
    if (plan.prepared.note) r.notes.push(plan.prepared.note);
    holder.ctx = r.ctx;
    // a deferred session's plan is taken when it settles (before the first run, which waits for sessionP); its
    // failure fails restoreFiles
    if (defer) {
      void settled.then(
        (p) => r.ctx.adopt(p),
        () => undefined,
      );
    }
    if (!defer) await r.ready(); // already created: sessionP was awaited before the detector
    return r;
  }

  get size(): number {
    return this.ctx.size;
  }

  /** The GPEN session once created (null while a deferred one is still being created). */
  get runner(): GpenRunner | null {
    return this.ctx.session;
  }

  /** The GPEN session, waiting for it when its creation was deferred. */
  ready(): Promise<GpenRunner> {
    return this.ctx.ready();
  }

  /**
   * Restores every file; a bad file becomes a result with `error`, and the others go on. `targets` (one per file)
   * names each file's output folder and NAME instead of the options' outDir and the names of io/output-names.ts.
   */
  restoreFiles(
    files: string[],
    onResult?: (r: RestoreResult, index: number) => void,
    targets?: readonly OutputTarget[],
  ): Promise<RestoreResult[]> {
    return restoreFiles(this.ctx, files, onResult, targets);
  }

  async restoreFile(file: string): Promise<RestoreResult> {
    return (await this.restoreFiles([file]))[0];
  }

  /**
   * One decoded image through the pipeline, its faces inferred by `infer` (the service passes a batcher that shares
   * batches with other requests); nothing is written: the encoded images come back.
   */
  restoreDecoded(...args: RestoreDecodedArgs): Promise<DecodedRestored> {
    return restoreDecoded(this.ctx, ...args);
  }

  /** Runs `n` aligned crops (planar, [-1, 1]) through the session at once: the service's batched inference. */
  inferCrops(x: Float32Array, n: number): Promise<Float32Array> {
    return inferCrops(this.ctx, x, n);
  }

  release(): Promise<void> {
    return this.ctx.release();
  }
}
