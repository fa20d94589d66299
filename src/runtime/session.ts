// Sessions on one execution provider. This is the only module that imports onnxruntime-node. A session records the
// provider asked for and, from ONNX Runtime's own profile of the first run, the provider that ran each node.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type * as OrtModule from 'onnxruntime-node';
import { onFirstUse } from '../io/lazy-module.js';
import { GpenLabError, errorMessage } from '../errors.js';
import type { Provider } from './providers.js';
import { PROVIDER_SPECS, PROVIDERS, missingProviderFiles, nvidiaDeviceVisible, ortVersion } from './providers.js';
import type { Placement } from './profile.js';
import type { PinnedStats } from './cuda/host-pins.js';
import { placementFromProfileDir } from './profile.js';
import { DEFAULT_BUILD, buildSpec, providerDir, type RuntimeBuild } from './builds.js';
import { claimBuild, foreignBuild } from './process-build.js';

// onnxruntime-node loaded on first use (the stock binding's addon and its JavaScript: 15-30 ms), not by a process
// that runs only through the C API route (a cold start with --cuda-options, a build other than onnxruntime-node's)
const binding = onFirstUse<typeof OrtModule>('onnxruntime-node');
let bindingChecked = false;

/** onnxruntime-node; refused in a process that runs another build, whose libonnxruntime.so.1 the binding would take. */
function ort(): typeof OrtModule {
  if (!bindingChecked) {
    const other = foreignBuild();
    if (other) {
      throw new GpenLabError(
        'E_RUNTIME_VERSION',
        `onnxruntime-node's binding (${ortVersion()}) cannot load in a process that runs ${other}: a process runs one build`,
        `Run ${DEFAULT_BUILD} (the stock route, WebGPU) in a process of its own; runtime ${other} runs through the C API on the fast route.`,
        { input: 'runtime', option: 'runtime', received: other },
      );
    }
    claimBuild(DEFAULT_BUILD);
    bindingChecked = true;
  }
  return binding();
}

export const GRAPH_OPT_LEVELS = ['disabled', 'basic', 'extended', 'all'] as const;
export type GraphOptLevel = (typeof GRAPH_OPT_LEVELS)[number];

export interface SessionConfig {
  provider: Provider;
  deviceId?: number;
  graphOptimizationLevel?: GraphOptLevel;
  intraOpNumThreads?: number;
  /**
   * Let ONNX Runtime's idle worker threads spin (its default, true): lowest latency for back-to-back runs, but the
   * spinning threads take the cores from the JavaScript work between runs (alignment, paste).
   */
  allowSpinning?: boolean;
  /** Profile the first run to learn which provider ran each node (default true). */
  recordPlacement?: boolean;
  /** Label used in error messages (the model file, or "synthetic GPEN-512"). */
  label?: string;
  /**
   * CUDA provider options by ONNX Runtime's names (cudnn_conv_algo_search, prefer_nhwc, arena_extend_strategy, ...):
   * the session is then created through the C API route (src/runtime/capi/), since the stock binding passes only
   * deviceId. Only with provider cuda.
   */
  cudaOptions?: Record<string, string>;
  /** The runtime build (builds.ts; default onnxruntime-node's): any other is created through the C API route. */
  runtime?: RuntimeBuild;
}

export interface RunResult {
  data: Float32Array;
  dims: number[];
  ms: number;
}

/**
 * Providers the installed binary knows, and whether their libraries ship with it; in a process that runs another
 * build, that build's (its CPU provider is inside its library), without loading the binding.
 */
export function knownProviders(): { provider: Provider; bundled: boolean }[] {
  const other = foreignBuild();
  if (other) return buildSpec(other).providers.map((p) => ({ provider: p, bundled: p === 'cpu' }));
  const listed = new Map(
    ort()
      .listSupportedBackends()
      .map((b) => [b.name, b.bundled] as const),
  );
  return PROVIDERS.filter((p) => listed.has(PROVIDER_SPECS[p].ort)).map((p) => ({
    provider: p,
    bundled: listed.get(PROVIDER_SPECS[p].ort) ?? false,
  }));
}

/** ONNX Runtime's version of the build this process runs (onnxruntime-node's unless another is loaded or claimed). */
export function runtimeVersion(): string {
  const other = foreignBuild();
  return other ? buildSpec(other).ortVersion : ortVersion();
}

/** A session that could not be created, as the user's error: missing provider files, a library that did not load, or else. */
export function providerFailure(cfg: SessionConfig, e: unknown): GpenLabError {
  const said = errorMessage(e).trim();
  const p = cfg.provider;
  const build = cfg.runtime ?? DEFAULT_BUILD;
  const spec = buildSpec(build);
  const dir = providerDir(build);
  const missing = missingProviderFiles(p, dir);
  const label = cfg.label ?? 'the model';
  const setup = build === DEFAULT_BUILD ? 'gpen-lab setup cuda' : `gpen-lab setup cuda --runtime ${build}`;
  if (missing.length > 0) {
    return new GpenLabError(
      'E_PROVIDER_UNAVAILABLE',
      `The ${p} execution provider cannot load: ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} missing from ${dir} (ONNX Runtime said: ${said})`,
      (p === 'cuda' || p === 'tensorrt') && !nvidiaDeviceVisible()
        ? 'No NVIDIA GPU or driver is visible here (no /dev/nvidia* device), so installing the provider cannot help: run on a host with an NVIDIA GPU (in a container: --gpus all), or use --provider cpu.'
        : p === 'cuda' || p === 'tensorrt'
          ? `Run \`${setup}\` (installs the ${p} provider built for ONNX Runtime ${spec.ortVersion} next to its libonnxruntime in ${dir}), or use --provider cpu.`
          : 'Use --provider cpu.',
      { input: label, provider: p, missing, ort: said },
    );
  }
  if (/adapter|vulkan|webgpu/i.test(said) && p === 'webgpu') {
    return new GpenLabError(
      'E_PROVIDER_UNAVAILABLE',
      `The webgpu execution provider found no GPU adapter for ${label} (ONNX Runtime said: ${said})`,
      'Install a Vulkan driver (libvulkan1 and the GPU vendor ICD) or use --provider cpu.',
      { input: label, provider: p, ort: said },
    );
  }
  // a library that did not load (not "Failed to load model because protobuf parsing failed": that is the model)
  if (/load(ing)? (shared )?librar|shared library|cannot open shared|dlopen/i.test(said)) {
    return new GpenLabError(
      'E_PROVIDER_UNAVAILABLE',
      `The ${p} execution provider failed to load for ${label}: a library it depends on did not load (ONNX Runtime said: ${said})`,
      `Run \`gpen-lab doctor --provider ${p}\`: it names the library that did not load and prints the line to fix it (the ${p} provider of ${build} needs CUDA ${spec.cudaMajor}, cuDNN ${spec.cudnnMajor} and a driver for CUDA ${spec.cudaMajor}).`,
      { input: label, provider: p, ort: said },
    );
  }
  return new GpenLabError(
    'E_SESSION',
    `ONNX Runtime could not create a ${p} session for ${label}: ${said}`,
    p === 'cpu'
      ? 'Check that the model is a valid ONNX file with `gpen-lab model info FILE`.'
      : `Run \`gpen-lab doctor --provider ${p}\`: it matches this error against known causes and prints the fix; \`gpen-lab model info FILE\` checks the model itself.`,
    { input: label, provider: p, ort: said },
  );
}

/** What the restoration pipeline needs of a GPEN session (the stock binding's ModelSession, or the C API route's). */
export interface GpenRunner {
  readonly asked: Provider;
  readonly createMs: number;
  readonly placement: Placement | null;
  /** CUDA provider options given through the C API route (null: the stock binding, which passes only deviceId). */
  readonly cudaOptions: Record<string, string> | null;
  /** With the C API's graph_cache=ort: the optimised graph came from the cache ('hit') or was written ('written'). */
  readonly graphCache?: 'hit' | 'written' | null;
  /** With the C API's prime=1: what the primer did, once it settled (null while it runs). */
  readonly primerReport?: { ms: number; ok: boolean; error?: string } | null;
  /** The C API route: when the session's creation began (ms since the process started). */
  readonly startedAt?: number;
  /** Resolves when `placement` is known (the C API route reads its first run's profile while the caller goes on). */
  placementSettled?(): Promise<void>;
  /** Whether run() takes views of SharedArrayBuffers as they are (the stock binding's tensors need a copy). */
  readonly readsSharedMemory?: boolean;
  /** The C API route's page-locked host buffers (what is locked, or why locking stopped). */
  pinnedStats?(): PinnedStats | null;
  run(data: Float32Array, dims: number[], into?: Float32Array): Promise<RunResult>;
  release(): Promise<void>;
}

export class ModelSession implements GpenRunner {
  readonly cudaOptions = null;
  readonly config: SessionConfig;
  readonly asked: Provider;
  readonly createMs: number;
  readonly inputName: string;
  readonly outputName: string;
  /** Input dims as the graph declares them (strings are symbolic). */
  readonly inputDims: (number | string)[];
  private placementValue: Placement | null = null;
  private profileDir: string | null;
  private runs = 0;

  private constructor(
    private readonly session: OrtModule.InferenceSession,
    cfg: SessionConfig,
    createMs: number,
    profileDir: string | null,
  ) {
    this.config = cfg;
    this.asked = cfg.provider;
    this.createMs = createMs;
    this.inputName = session.inputNames[0];
    this.outputName = session.outputNames[0];
    const meta = session.inputMetadata[0];
    this.inputDims = meta && meta.isTensor ? [...meta.shape] : [];
    this.profileDir = profileDir;
  }

  static async create(model: string | Uint8Array, cfg: SessionConfig): Promise<ModelSession> {
    const spec = PROVIDER_SPECS[cfg.provider];
    const deviceId = cfg.deviceId ?? 0;
    const ep: OrtModule.InferenceSession.ExecutionProviderConfig =
      cfg.provider === 'cuda'
        ? { name: 'cuda', deviceId }
        : cfg.provider === 'tensorrt'
          ? { name: 'tensorrt', deviceId }
          : spec.ort;
    const record = cfg.recordPlacement ?? true;
    const profileDir = record ? mkdtempSync(path.join(os.tmpdir(), 'gpen-lab-prof-')) : null;
    const options: OrtModule.InferenceSession.SessionOptions = {
      executionProviders: [ep],
      graphOptimizationLevel: cfg.graphOptimizationLevel ?? 'all',
      logSeverityLevel: 3,
      ...(cfg.intraOpNumThreads ? { intraOpNumThreads: cfg.intraOpNumThreads } : {}),
      ...(cfg.allowSpinning === false
        ? { extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } } }
        : {}),
      ...(profileDir ? { enableProfiling: true, profileFilePrefix: path.join(profileDir, 'profile') } : {}),
    };
    const t0 = performance.now();
    let session: OrtModule.InferenceSession;
    try {
      session =
        typeof model === 'string'
          ? await ort().InferenceSession.create(model, options)
          : await ort().InferenceSession.create(model, options);
    } catch (e) {
      if (profileDir) rmSync(profileDir, { recursive: true, force: true });
      throw providerFailure(cfg, e);
    }
    return new ModelSession(session, cfg, performance.now() - t0, profileDir);
  }

  /** Where the nodes ran, known after the first run (null before it or when not recorded). */
  get placement(): Placement | null {
    return this.placementValue;
  }

  /** Runs the first input; `into` receives the first output in place (same dims as the input, e.g. GPEN). */
  async run(data: Float32Array, dims: number[], into?: Float32Array): Promise<RunResult> {
    const all = await this.runAll(data, dims, into);
    const first = all.outputs[this.outputName];
    return { data: first.data, dims: first.dims, ms: all.ms };
  }

  /** Names of every graph output, in order. */
  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /** Runs the first input (float32, or bytes for a graph that takes them) and returns every float32 output (detectors have several). */
  async runAll(
    data: Float32Array | Uint8Array,
    dims: number[],
    into?: Float32Array,
  ): Promise<{ outputs: Record<string, { data: Float32Array; dims: number[] }>; ms: number }> {
    const t0 = performance.now();
    let out: OrtModule.InferenceSession.OnnxValueMapType;
    try {
      const feeds = {
        [this.inputName]:
          data instanceof Uint8Array
            ? new (ort().Tensor)('uint8', data, dims)
            : new (ort().Tensor)('float32', data, dims),
      };
      out = into
        ? await this.session.run(feeds, { [this.outputName]: new (ort().Tensor)('float32', into, dims) })
        : await this.session.run(feeds);
    } catch (e) {
      throw new GpenLabError(
        'E_INFERENCE',
        `Inference failed on ${this.asked} for ${this.config.label ?? 'the model'} with input [${dims.join(', ')}]: ${errorMessage(e)}`,
        this.asked === 'cpu'
          ? 'Check the input shape against the model with `gpen-lab model info FILE`.'
          : `Run \`gpen-lab doctor --provider ${this.asked}\` for the cause, or use --provider cpu; \`gpen-lab model info FILE\` checks the input shape.`,
        { input: this.config.label, provider: this.asked, dims },
      );
    }
    const ms = performance.now() - t0;
    const outputs: Record<string, { data: Float32Array; dims: number[] }> = {};
    for (const name of this.session.outputNames) {
      const t = out[name] as OrtModule.Tensor;
      outputs[name] = { data: into && name === this.outputName ? into : (t.data as Float32Array), dims: [...t.dims] };
    }
    if (this.runs++ === 0 && this.profileDir) this.readPlacement();
    return { outputs, ms };
  }

  private readPlacement(): void {
    const dir = this.profileDir!;
    this.profileDir = null;
    this.placementValue = placementFromProfileDir(dir, this.asked, () => this.session.endProfiling());
  }

  async release(): Promise<void> {
    if (this.profileDir) rmSync(this.profileDir, { recursive: true, force: true });
    await this.session.release();
  }
}
