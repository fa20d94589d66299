// What a C API session is asked for: gpen-lab's session keys among the CUDA provider options (the CLI's
// --cuda-options), the arena configuration (which ONNX Runtime takes as an allocator registered with the
// environment), and the OrtSessionOptions made from them.
import { GpenLabError } from '../../errors.js';
import type { RuntimeBuild } from '../builds.js';
import { gpenOpsDomain } from '../gpen-ops.js';
import { check, envLoaded, load, ortEnv, type Api } from './api.js';

export interface CapiOptions {
  provider: 'cpu' | 'cuda';
  /** CUDA provider options by their ONNX Runtime names (device_id, cudnn_conv_algo_search, prefer_nhwc, ...). */
  cuda?: Record<string, string>;
  intraOpNumThreads?: number;
  /** 0 disabled, 1 basic, 2 extended, 99 all (default). */
  graphOptimizationLevel?: 0 | 1 | 2 | 99;
  /** Session config entries (onnxruntime_session_options_config_keys.h), e.g. session.intra_op.allow_spinning. */
  config?: Record<string, string>;
  /** Write the optimised graph here while the session is created (a cache for later cold starts). */
  saveOptimizedTo?: string;
  /** Profile runs into files starting with this prefix (read back by endProfiling). */
  profilePrefix?: string;
  /** ONNX Runtime's memory patterns (one planned block for the activations; default on). */
  memPattern?: boolean;
  /** The CUDA arena's configuration (OrtArenaCfg keys: max_dead_bytes_per_chunk, initial_chunk_size_bytes, ...). */
  arena?: Record<string, number>;
  /** Register gpen-lab's operators (gpen-ops.ts: FusedAct) for graphs built with BuildOptions.fusedAct. */
  gpenOps?: boolean;
  /** The runtime build (builds.ts): the process's, loaded by its first session; another is a coded error. */
  runtime?: RuntimeBuild;
}

/** The keys CreateArenaCfgV2 takes (onnxruntime_c_api.h). */
export const ARENA_KEYS = [
  'max_mem',
  'arena_extend_strategy',
  'initial_chunk_size_bytes',
  'max_dead_bytes_per_chunk',
  'initial_growth_chunk_size_bytes',
  'max_power_of_two_extend_bytes',
  // CUDA's own stream-ordered pool (cudaMallocFromPoolAsync) in place of the BFC arena (ONNX Runtime 1.23+; not
  // with CUDA graphs)
  'use_cuda_mempool',
  'cuda_mempool_release_threshold',
  'cuda_mempool_bytes_to_keep_on_shrink',
] as const;

/** Keys of a CUDA option set that are session options of gpen-lab's, not CUDA provider options. */
export const SESSION_KEYS = {
  mem_pattern: 'ONNX Runtime memory patterns, 0 or 1',
  graph_optimization_level: 'ONNX Runtime graph optimisations: 0 disabled, 1 basic, 2 extended, 99 all',
  graph_cache:
    "ort: cache the optimised graph of an ONNX file in ONNX Runtime's own format and load it in later " +
    'sessions from memory, optimisations off, its weights used in place (no protobuf to parse: the session is ' +
    'created sooner); 0: off',
  prime:
    "1: create and run a weightless copy of the graph on worker threads beside the session (a cold start's " +
    'per-process first-run costs); 0: off',
  fused_act:
    "1 (with prefer_nhwc=1): the graph built with gpen-lab's FusedAct operator, one GPU kernel for each " +
    "styled convolution's concatenation, bias, leaky ReLU and next modulation (C API route only)",
  'arena.*':
    'the CUDA arena (OrtArenaCfg): arena.max_dead_bytes_per_chunk, arena.initial_chunk_size_bytes, ' +
    'arena.arena_extend_strategy (0 power of two, 1 as requested), arena.max_mem, ...; arena.use_cuda_mempool=1: ' +
    "CUDA's stream-ordered pool instead of the arena (not with enable_cuda_graph), " +
    'arena.cuda_mempool_release_threshold: the bytes it keeps at a synchronisation',
  'session.*':
    'any other key with a dot: an ONNX Runtime session config entry ' +
    '(e.g. session.use_device_allocator_for_initializers=1)',
} as const;

const LEVELS = [0, 1, 2, 99] as const;

export interface SplitOptions {
  cuda: Record<string, string>;
  memPattern?: boolean;
  graphOptimizationLevel?: 0 | 1 | 2 | 99;
  config?: Record<string, string>;
  graphCache?: false | 'ort';
  prime?: number;
  arena?: Record<string, number>;
  fusedAct?: boolean;
}

/** A coded E_ARGUMENT for a session key given a value it does not take. */
function badKey(key: string, message: string, hint: string): GpenLabError {
  return new GpenLabError('E_ARGUMENT', message, hint, { input: key });
}

/** Splits gpen-lab's session keys (SESSION_KEYS) from the CUDA provider options, checking them. */
export function splitCudaOptions(all: Record<string, string>): SplitOptions {
  const { mem_pattern: mp, graph_optimization_level: gl, graph_cache: gc, prime: pr, fused_act: fa, ...rest } = all;
  // arena.<key>=<bytes>: the CUDA arena's configuration; other keys with a dot are session config entries
  const arenaEntries = Object.entries(rest).filter(([k]) => k.startsWith('arena.'));
  const arena: Record<string, number> = {};
  for (const [k, v] of arenaEntries) {
    const key = k.slice('arena.'.length);
    if (!(ARENA_KEYS as readonly string[]).includes(key) || !/^\d+$/.test(v)) {
      throw badKey(
        k,
        `Expected ${k} to be one of arena.${ARENA_KEYS.join(', arena.')} with a whole number of bytes, ` +
          `but received "${k}=${v}"`,
        `Pass e.g. arena.max_dead_bytes_per_chunk=1048576 (${SESSION_KEYS['arena.*']}).`,
      );
    }
    arena[key] = Number(v);
  }
  const cuda = Object.fromEntries(Object.entries(rest).filter(([k]) => !k.includes('.')));
  const config = Object.fromEntries(Object.entries(rest).filter(([k]) => k.includes('.') && !k.startsWith('arena.')));
  let level: 0 | 1 | 2 | 99 | undefined;
  if (gl !== undefined) {
    level = LEVELS.find((l) => String(l) === gl);
    if (level === undefined) {
      throw badKey(
        'graph_optimization_level',
        `Expected graph_optimization_level to be one of ${LEVELS.join(', ')} but received "${gl}"`,
        `Pass graph_optimization_level=${LEVELS.join('|')} (${SESSION_KEYS.graph_optimization_level}).`,
      );
    }
  }
  if (gc !== undefined && !['0', 'ort'].includes(gc)) {
    throw badKey(
      'graph_cache',
      `Expected graph_cache to be 0 or ort but received "${gc}"`,
      `Pass graph_cache=ort (${SESSION_KEYS.graph_cache}) or leave it out.`,
    );
  }
  if (fa !== undefined && !['0', '1'].includes(fa)) {
    throw badKey(
      'fused_act',
      `Expected fused_act to be 0 or 1 but received "${fa}"`,
      `Pass fused_act=1 (${SESSION_KEYS.fused_act}) or leave it out.`,
    );
  }
  if (fa === '1' && rest.prefer_nhwc !== '1') {
    throw badKey(
      'fused_act',
      'fused_act=1 needs prefer_nhwc=1: the FusedAct operator works on NHWC tensors',
      'Add prefer_nhwc=1, or leave fused_act out.',
    );
  }
  if (pr !== undefined && !['0', '1'].includes(pr)) {
    throw badKey(
      'prime',
      `Expected prime to be 0 or 1 but received "${pr}"`,
      `Pass prime=1 (${SESSION_KEYS.prime}) or leave it out.`,
    );
  }
  return {
    cuda,
    ...(pr !== undefined ? { prime: Number(pr) } : {}),
    ...(mp !== undefined ? { memPattern: mp !== '0' } : {}),
    ...(level !== undefined ? { graphOptimizationLevel: level } : {}),
    ...(Object.keys(config).length ? { config } : {}),
    ...(gc !== undefined ? { graphCache: gc === '0' ? (false as const) : ('ort' as const) } : {}),
    ...(arenaEntries.length ? { arena } : {}),
    ...(fa !== undefined ? { fusedAct: fa === '1' } : {}),
  };
}

/** Creates an OrtArenaCfg (release it with ReleaseArenaCfg); ONNX Runtime's refusal is a coded error. */
function arenaCfg(a: Api, arena: Record<string, number>): unknown {
  const keys = Object.keys(arena);
  const values = BigUint64Array.from(keys.map((k) => BigInt(arena[k])));
  const out: unknown[] = [null];
  check(a, a.fns.CreateArenaCfgV2(keys, values, keys.length, out), `CreateArenaCfgV2(${keys.join(', ')})`);
  return out[0];
}

/** Checks an arena configuration with ONNX Runtime itself (on any machine: it needs no GPU). */
export function checkArenaConfig(arena: Record<string, number>): void {
  const a = load();
  a.fns.ReleaseArenaCfg(arenaCfg(a, arena));
}

/** The allocator this process registered with the environment for an arena configuration (one per device). */
let registered: { provider: 'cpu' | 'cuda'; key: string; info: unknown } | null = null;

/**
 * Registers an arena allocator with this configuration in the environment (CreateAndRegisterAllocatorV2), replacing
 * the one registered before; sessions created with session.use_env_allocators=1 then allocate from it. On CUDA it is
 * made from the same provider options (device, gpu_mem_limit, arena_extend_strategy) as the session's provider.
 * The environment must exist (envLoaded).
 */
export function registerArena(
  a: Api,
  provider: 'cpu' | 'cuda',
  providerOptions: Record<string, string>,
  arena: Record<string, number>,
): void {
  const key = JSON.stringify([provider, providerOptions, arena]);
  if (registered?.key === key) return;
  const env = ortEnv();
  const out: unknown[] = [null];
  if (registered) {
    check(a, a.fns.UnregisterAllocator(env, registered.info), 'UnregisterAllocator');
    a.fns.ReleaseMemoryInfo(registered.info);
    registered = null;
  }
  // OrtArenaAllocator (1) for OrtMemTypeDefault (0) on the provider's device
  const device = Number(providerOptions.device_id ?? 0);
  check(a, a.fns.CreateMemoryInfo(provider === 'cuda' ? 'Cuda' : 'Cpu', 1, device, 0, out), 'CreateMemoryInfo');
  const info = out[0];
  // ONNX Runtime builds the allocator from the arena configuration alone: its extend strategy and limit default to
  // power-of-two growth without a limit, whatever the provider options say, so the provider's own are carried over
  const fromProvider: Record<string, number> = {};
  const strategy = providerOptions.arena_extend_strategy;
  if (strategy !== undefined) {
    fromProvider.arena_extend_strategy = strategy === 'kSameAsRequested' || strategy === '1' ? 1 : 0;
  }
  if (providerOptions.gpu_mem_limit !== undefined) fromProvider.max_mem = Number(providerOptions.gpu_mem_limit);
  const cfg = arenaCfg(a, { ...fromProvider, ...arena });
  try {
    const entries = Object.entries(providerOptions);
    const ep = provider === 'cuda' ? 'CUDAExecutionProvider' : 'CPUExecutionProvider';
    check(
      a,
      a.fns.CreateAndRegisterAllocatorV2(
        env,
        ep,
        info,
        cfg,
        entries.map((e) => e[0]),
        entries.map((e) => e[1]),
        entries.length,
      ),
      `CreateAndRegisterAllocatorV2(${provider}, ${Object.keys(arena).join(', ')})`,
    );
  } catch (e) {
    a.fns.ReleaseMemoryInfo(info);
    throw e;
  } finally {
    a.fns.ReleaseArenaCfg(cfg);
  }
  registered = { provider, key, info };
}

/** The environment (once) and the session options for `o`; the caller releases the options. */
export function sessionOptions(o: CapiOptions): { a: Api; opts: unknown; cudaAsked: Record<string, string> | null } {
  const a = envLoaded(o.runtime);
  const out: unknown[] = [null];
  check(a, a.fns.CreateSessionOptions(out), 'CreateSessionOptions');
  const opts = out[0];
  let cudaAsked: Record<string, string> | null = null;
  try {
    check(
      a,
      a.fns.SetSessionGraphOptimizationLevel(opts, o.graphOptimizationLevel ?? 99),
      'SetSessionGraphOptimizationLevel',
    );
    if (o.intraOpNumThreads) {
      check(a, a.fns.SetIntraOpNumThreads(opts, o.intraOpNumThreads), 'SetIntraOpNumThreads');
    }
    for (const [k, v] of Object.entries(o.config ?? {})) {
      check(a, a.fns.AddSessionConfigEntry(opts, k, v), `AddSessionConfigEntry(${k}=${v})`);
    }
    if (o.gpenOps) {
      check(a, a.fns.AddCustomOpDomain(opts, gpenOpsDomain(a, o.provider)), 'AddCustomOpDomain(gpen_lab)');
    }
    if (o.saveOptimizedTo) {
      check(a, a.fns.SetOptimizedModelFilePath(opts, o.saveOptimizedTo), 'SetOptimizedModelFilePath');
    }
    if (o.profilePrefix) check(a, a.fns.EnableProfiling(opts, o.profilePrefix), 'EnableProfiling');
    // CUDA graphs replay fixed addresses: ONNX Runtime's memory patterns must be off with them
    const graphs = o.provider === 'cuda' && o.cuda?.enable_cuda_graph === '1';
    if (o.memPattern === false || graphs) check(a, a.fns.DisableMemPattern(opts), 'DisableMemPattern');
    if (o.provider === 'cuda') cudaAsked = { device_id: '0', ...o.cuda };
    if (o.arena) {
      // ONNX Runtime takes an arena configuration for its CUDA provider only as an allocator registered with the
      // environment (UpdateCUDAProviderOptionsWithValue knows user_compute_stream alone); sessions opt in
      registerArena(a, o.provider, cudaAsked ?? {}, o.arena);
      check(
        a,
        a.fns.AddSessionConfigEntry(opts, 'session.use_env_allocators', '1'),
        'AddSessionConfigEntry(session.use_env_allocators=1)',
      );
    }
    if (cudaAsked) {
      check(a, a.fns.CreateCUDAProviderOptions(out), 'CreateCUDAProviderOptions');
      const cudaOpts = out[0];
      try {
        const entries = Object.entries(cudaAsked);
        check(
          a,
          a.fns.UpdateCUDAProviderOptions(
            cudaOpts,
            entries.map((e) => e[0]),
            entries.map((e) => e[1]),
            entries.length,
          ),
          'UpdateCUDAProviderOptions',
        );
        check(
          a,
          a.fns.SessionOptionsAppendExecutionProvider_CUDA_V2(opts, cudaOpts),
          'SessionOptionsAppendExecutionProvider_CUDA_V2',
        );
      } finally {
        a.fns.ReleaseCUDAProviderOptions(cudaOpts);
      }
    }
  } catch (e) {
    a.fns.ReleaseSessionOptions(opts);
    throw e;
  }
  return { a, opts, cudaAsked };
}
