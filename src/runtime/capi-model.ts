// The C API route (capi.ts) behind the same interface as the stock binding's ModelSession, so that the restoration
// pipeline, the bench's cold starts and the lab can ask for CUDA provider options the stock binding cannot pass, and
// run a runtime build other than onnxruntime-node's (builds.ts), on the CUDA provider or the CPU.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { GpenLabError, errorMessage } from '../errors.js';
import { DEFAULT_BUILD } from './builds.js';
import { mapFile, type DeviceBinding, type MappedFile } from './capi/device-io.js';
import { load } from './capi/api.js';
import { CapiSession } from './capi/session.js';
import { splitCudaOptions } from './capi/options.js';
import { HostPins, type PinnedStats } from './cuda/host-pins.js';
import { mark } from './marks.js';
import { graphCache } from './graph-cache.js';
import { prime, type PrimeReport } from './primer.js';
import type { Provider } from './providers.js';
import { checkCapiProvider } from './routes.js';
import type { GpenRunner, RunResult, SessionConfig } from './session.js';
import type { Placement } from './profile.js';
import { placementFromProfileDirAsync } from './profile.js';
// session.ts (the stock binding) is imported where needed: this module starts a cold start's early session, and the
// binding's import (~40 ms) would come first

/** Parses `k=v,k=v` (CUDA provider options by ONNX Runtime's names). */
export function parseCudaOptions(s: string, flag = '--cuda-options'): Record<string, string> {
  const o: Record<string, string> = {};
  for (const part of s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0 || eq === part.length - 1)
      throw new GpenLabError(
        'E_ARGUMENT',
        `Expected key=value pairs for ${flag} but received "${part}"`,
        `Pass e.g. ${flag} cudnn_conv_algo_search=HEURISTIC,prefer_nhwc=1 (CUDA provider options by ONNX Runtime's names).`,
        { input: flag },
      );
    o[part.slice(0, eq)] = part.slice(eq + 1);
  }
  splitCudaOptions(o); // gpen-lab's own keys (graph_optimization_level, ...) checked now, not at session creation
  return o;
}

export class CapiModelSession implements GpenRunner {
  private placementValue: Placement | null = null;
  private placementP: Promise<void> | null = null;
  private firstRunP: Promise<Float32Array> | null = null;
  private runs = 0;
  /** With enable_cuda_graph=1: the GPU tensors bound for the current batch size, under a graph id of their own. */
  private bound: { size: number; binding: DeviceBinding } | null = null;
  /** The graph id the next new binding takes (ids are never reused: ONNX Runtime keeps each captured graph). */
  private nextGraphId = 1;
  /** The host buffers runs copy from and into, page-locked once each (GPEN_LAB_PIN_HOST=0 leaves them pageable). */
  private readonly pins: HostPins | null;
  /** Inputs and outputs may be views of SharedArrayBuffers (the face workers' crops): read and written in place. */
  readonly readsSharedMemory = true;
  /** With graph_cache=ort: whether the optimised graph came from the cache or was written for later sessions. */
  graphCache: 'hit' | 'written' | null = null;
  /** With prime=1: the primer's run (primer.ts), settled or still going. */
  primer: Promise<PrimeReport> | null = null;
  primerReport: PrimeReport | null = null;
  /** When its creation began (ms since the process started): before node's modules for an early session. */
  startedAt = 0;
  private profileDir: string | null;
  private constructor(
    private readonly s: CapiSession,
    readonly asked: Provider,
    readonly createMs: number,
    readonly cudaOptions: Record<string, string>,
    profileDir: string | null,
    private readonly label: string,
  ) {
    this.profileDir = profileDir;
    this.pins = asked === 'cuda' && process.env.GPEN_LAB_PIN_HOST !== '0' ? new HostPins() : null;
  }

  /**
   * Created on a worker thread (CapiSession.createAsync): the JavaScript thread goes on meanwhile. A session started
   * early for the same model file and configuration (startEarlySession) is taken instead of creating another.
   */
  static create(
    model: string | Uint8Array,
    cfg: SessionConfig & { cudaOptions: Record<string, string> },
  ): Promise<CapiModelSession> {
    const key = earlyKey(model, cfg);
    const early = key !== null ? earlySessions.get(key) : undefined;
    if (early) {
      earlySessions.delete(key!);
      return early;
    }
    return CapiModelSession.createNow(model, cfg);
  }

  /** Creates a session now (create() takes an early one first). */
  static async createNow(
    model: string | Uint8Array,
    cfg: SessionConfig & { cudaOptions: Record<string, string> },
  ): Promise<CapiModelSession> {
    const t0 = performance.now();
    const provider = checkCapiProvider(cfg.provider, cfg.runtime ?? DEFAULT_BUILD);
    // the build's library first: the primer and the caches key on the build loaded, and load none of their own
    load(cfg.runtime);
    const { graphCache: useCache, prime: usePrimer, ...split } = splitCudaOptions(cfg.cudaOptions);
    const { graph_cache: _gc, prime: _pr, ...keyed } = cfg.cudaOptions;
    // prime=1: the weightless copy of the graph created and run beside this session (primer.ts); never awaited here
    const primer = usePrimer
      ? prime(model, { device_id: String(cfg.deviceId ?? 0), ...split.cuda }, 'cuda', split.fusedAct === true)
      : null;
    // graph_cache=ort: the optimised graph of an earlier session in ONNX Runtime's format, mapped into memory and read
    // in place, optimisations off (no protobuf to parse, the weights taken from the mapping: the session is created sooner)
    // a cache folder that cannot be made costs the cache, never the session (its argument errors still stand)
    const cache = useCache
      ? await graphCache(model, provider, keyed).catch((e: unknown) => {
          if (e instanceof GpenLabError) throw e;
          return null;
        })
      : null;
    const ortHit = cache?.state === 'hit';
    const ortConfig: Record<string, string> = !cache
      ? {}
      : ortHit
        ? {
            'session.load_model_format': 'ORT',
            'session.use_ort_model_bytes_directly': '1',
            'session.use_ort_model_bytes_for_initializers': '1',
          }
        : { 'session.save_model_format': 'ORT' };
    const profileDir = (cfg.recordPlacement ?? true) ? mkdtempSync(path.join(os.tmpdir(), 'gpen-lab-prof-')) : null;
    let s: CapiSession;
    let mapped: MappedFile | null = null;
    try {
      mark('session_create_dispatched');
      mapped = ortHit ? mapFile(cache!.model) : null;
      s = await CapiSession.createAsync(mapped ?? (cache ? cache.model : model), {
        provider,
        ...split,
        ...(provider === 'cuda' ? { cuda: { device_id: String(cfg.deviceId ?? 0), ...split.cuda } } : {}),
        ...(cfg.runtime ? { runtime: cfg.runtime } : {}),
        gpenOps: split.fusedAct === true,
        ...(cache?.state === 'hit' ? { graphOptimizationLevel: 0 as const } : {}),
        ...(cache?.saveTo ? { saveOptimizedTo: cache.saveTo } : {}),
        ...(cfg.intraOpNumThreads ? { intraOpNumThreads: cfg.intraOpNumThreads } : {}),
        config: {
          ...(cfg.allowSpinning === false
            ? { 'session.intra_op.allow_spinning': '0', 'session.inter_op.allow_spinning': '0' }
            : {}),
          ...ortConfig,
          ...split.config,
        },
        ...(profileDir ? { profilePrefix: path.join(profileDir, 'profile') } : {}),
      });
      await cache?.commit();
    } catch (e) {
      mapped?.unmap();
      await primer;
      await cache?.abandon();
      if (profileDir) rmSync(profileDir, { recursive: true, force: true });
      // the same diagnosis as the stock binding's (missing provider files, a library that did not load, ...)
      const { providerFailure } = await import('./session.js');
      throw providerFailure({ ...cfg, provider }, e);
    }
    const r = new CapiModelSession(
      s,
      provider,
      performance.now() - t0,
      cfg.cudaOptions,
      profileDir,
      cfg.label ?? 'the model',
    );
    r.startedAt = t0;
    r.graphCache = cache ? (cache.state === 'hit' ? 'hit' : 'written') : null;
    r.primer = primer;
    void primer?.then((p) => {
      r.primerReport = p;
    });
    return r;
  }

  get placement(): Placement | null {
    return this.placementValue;
  }

  placementSettled(): Promise<void> {
    return this.placementP ?? Promise.resolve();
  }

  async run(data: Float32Array, dims: number[], into?: Float32Array): Promise<RunResult> {
    // the first run may still be on its worker, and ONNX Runtime's profiler still writing its profile
    if (this.firstRunP) await this.firstRunP.catch(() => undefined);
    if (this.placementP) await this.placementP;
    mark('first_run_started');
    const t0 = performance.now();
    const n = dims.reduce((a, b) => a * b, 1);
    let out: Float32Array;
    try {
      if (this.cudaOptions.enable_cuda_graph === '1') {
        // CUDA graphs replay on fixed GPU addresses: a batch size gets its bound tensors and a graph, captured by ONNX
        // Runtime on its first runs; plain runs on host tensors are refused then. A graph is never replayed after a
        // run of another size: ONNX Runtime's convolutions keep one plan per node, made again for each new size, and
        // the older graph refers to the plan replaced (its replays fail with CUDA errors 700 and 717).
        // So a change of size binds anew under a new graph id (the restore pipeline pads its runs to one size)
        const b = dims[0];
        if (this.bound?.size !== b) {
          this.bound?.binding.release();
          this.bound = { size: b, binding: this.s.bindDevice(dims, undefined, this.nextGraphId++) };
        }
        const bound = this.bound.binding;
        const target = into ?? new Float32Array(n);
        const x = data.subarray(0, n);
        this.pins?.pin(x);
        this.pins?.pin(target);
        // on the JavaScript thread, always the same one: ONNX Runtime keeps CUDA graphs (and cuDNN/cuBLAS handles) per
        // calling thread, and runs on libuv's rotating workers would be captured again and again (twice the stock
        // binding's inference time, measured on an H200); synchronous, so runs cannot interleave
        bound.upload(x);
        bound.run();
        bound.download(target);
        out = target;
      } else {
        // on the JavaScript thread too: ONNX Runtime's CUDA provider keeps cuDNN/cuBLAS handles and scratch per calling
        // thread, and runs spread over libuv's workers paid them on each (the C API pipeline ran slower end to end).
        // The first run alone goes to a worker: it waits on first-use work on the GPU (a cold start's 350-450 ms), and
        // the JavaScript thread warms the paste up meanwhile (face/pipeline/warmup.ts)
        const first = this.runs === 0;
        this.runs++;
        if (first) {
          this.firstRunP = this.s.runAsync(data, dims, n, undefined, into);
          try {
            out = await this.firstRunP;
          } finally {
            this.firstRunP = null;
          }
        } else {
          // ONNX Runtime copies the input to the GPU from where it lies
          this.pins?.pin(data);
          out = this.s.run(data, dims, n, undefined, into);
        }
      }
    } catch (e) {
      throw new GpenLabError(
        'E_INFERENCE',
        `Inference failed on ${this.asked} (C API, ${JSON.stringify(this.cudaOptions)}) for ${this.label} with input [${dims.join(', ')}]: ${errorMessage(e)}`,
        `Run \`gpen-lab doctor --provider ${this.asked}\` for the cause, or drop --cuda-options to use the stock binding.`,
        { input: this.label, provider: this.asked, dims },
      );
    }
    const ms = performance.now() - t0;
    mark('first_run_done');
    if (this.profileDir) {
      // the first run's profile says where its nodes ran: ended and read on a worker thread while the caller pastes
      // and encodes (15-20 ms of a cold start on its path otherwise); the next run waits for it
      const dir = this.profileDir;
      this.profileDir = null;
      this.placementP = placementFromProfileDirAsync(dir, this.asked, () => this.s.endProfilingAsync())
        .then(
          (p) => {
            this.placementValue = p;
          },
          () => {
            this.placementValue = null;
          },
        )
        .finally(() => mark('placement_read'));
    }
    return { data: out, dims, ms };
  }

  async release(): Promise<void> {
    if (this.profileDir) rmSync(this.profileDir, { recursive: true, force: true });
    await this.primer;
    await this.placementP;
    this.s.release();
    this.pins?.release();
  }

  /** The page-locked host buffers (null when GPEN_LAB_PIN_HOST=0). */
  pinnedStats(): PinnedStats | null {
    return this.pins?.stats() ?? null;
  }
}

/** Sessions started before the command line's modules loaded (startEarlySession), by model file and configuration. */
const earlySessions = new Map<string, Promise<CapiModelSession>>();

/** What makes an early session the one a later create() asks for: the model file and every setting it was made with. */
function earlyKey(
  model: string | Uint8Array,
  cfg: SessionConfig & { cudaOptions: Record<string, string> },
): string | null {
  if (typeof model !== 'string') return null;
  const { cudaOptions, ...rest } = cfg;
  return JSON.stringify({
    model,
    cfg: Object.entries(rest)
      .filter(([, v]) => v !== undefined)
      .sort(),
    cudaOptions: Object.entries(cudaOptions).sort(),
  });
}

/**
 * Starts creating the C API session of an ONNX file now, for a create() with the same file and configuration to take
 * later (the CLI does this for `restore --cuda-options` before loading its modules: ~150 ms sooner). A session nobody
 * takes is never used; its failure surfaces in the create() that takes it.
 */
export function startEarlySession(
  model: string,
  cfg: SessionConfig & { cudaOptions: Record<string, string> },
): Promise<CapiModelSession> {
  const p = CapiModelSession.createNow(model, cfg);
  p.catch(() => undefined); // reported by the create() that takes it, not as an unhandled rejection here
  earlySessions.set(earlyKey(model, cfg)!, p);
  return p;
}

/**
 * A GPEN session: through the C API when CUDA provider options are given or the runtime build is not
 * onnxruntime-node's, else through the stock binding.
 */
export async function openSession(model: string | Uint8Array, cfg: SessionConfig): Promise<GpenRunner> {
  if (cfg.cudaOptions && Object.keys(cfg.cudaOptions).length > 0) {
    if (cfg.provider !== 'cuda')
      throw new GpenLabError(
        'E_ARGUMENT',
        `cudaOptions were given with the ${cfg.provider} provider`,
        'Use the cuda provider with cudaOptions, or leave cudaOptions out.',
        { input: 'cudaOptions', option: 'cudaOptions' },
      );
    return CapiModelSession.create(model, { ...cfg, cudaOptions: cfg.cudaOptions });
  }
  if (cfg.runtime && cfg.runtime !== DEFAULT_BUILD) return CapiModelSession.create(model, { ...cfg, cudaOptions: {} });
  const { ModelSession } = await import('./session.js');
  return ModelSession.create(model, cfg);
}
