// What `gpen-lab bench` is asked and what it reports: the options, the report's shape (schema gpen-lab.bench/1) and
// the GPU-speed targets P1-P5 drawn from a report beside the peer's.
import type { Precision } from '../model/gpen-graph.js';
import type { ModelSpec } from '../model/registry.js';
import type { TimingStats } from '../metrics/stats.js';
import type { RuntimeBuild } from '../runtime/builds.js';
import type { Provider } from '../runtime/providers.js';
import type { PinnedStats } from '../runtime/cuda/host-pins.js';

export const BENCH_SCHEMA = 'gpen-lab.bench/1';

export interface BenchOptions {
  model: ModelSpec;
  providers: Provider[];
  precisions: Precision[];
  batches: number[];
  runs: number;
  warmup: number;
  /** A photo for the end-to-end runs (none: model only). */
  photo?: string;
  /** Where the face detector runs in the end-to-end runs: each listed provider is one set of runs (default cpu). */
  e2eDetectors?: Provider[];
  e2eRuns?: number;
  /**
   * On CUDA, the end-to-end runs also through the C API route with each of these option sets (as restore
   * --cuda-options).
   */
  e2eCudaOptions?: Record<string, string>[];
  /** The peer's seeded input and output (.npy), for the agreement on the same weights. */
  compare?: { input: string; output: string };
  onProgress?: (line: string) => void;
  /** Also time CUDA through ONNX Runtime's C API (src/runtime/capi/), once per set of CUDA provider options. */
  capiCuda?: Record<string, string>[];
  /**
   * The runtime build every variant runs (runtime/builds.ts; default onnxruntime-node's): another runs the model-only
   * and end-to-end variants through its C API, and has no stock binding to compare with.
   */
  runtime?: RuntimeBuild;
  /** Profile one run per C API variant at this batch size (node times by operator). */
  profileBatch?: number;
  /**
   * Each C API variant (option set x precision) in a process of its own: its GPU memory counts alone (an arena
   * registered by an earlier variant stays with the process), and a variant that crashes is a finding, not the end.
   */
  isolate?: boolean;
  /** With isolate: a variant's process still running after this long is killed and recorded so (default 20 min). */
  isolateTimeoutMs?: number;
}

export interface BenchRow {
  provider: Provider;
  precision: Precision;
  batch: number;
  stats: TimingStats;
  msPerFace: number;
  gpuProcessPeakMiB: number | null;
}

export interface E2e {
  photo: string;
  detector?: Provider;
  /** C API CUDA options of the session (null: the stock binding). */
  cudaOptions?: Record<string, string> | null;
  faces: number;
  stats: TimingStats;
  stagesMedianMs: Record<string, number>;
  /** The C API route's page-locked host buffers. */
  pinned?: PinnedStats;
}

export interface BenchVariant {
  provider: Provider;
  /** 'binding' (onnxruntime-node) or 'capi' (the C API through koffi, with `capiOptions`). */
  route?: 'binding' | 'capi';
  capiOptions?: Record<string, string>;
  precision: Precision;
  ok: boolean;
  error: string | null;
  ran: string[] | null;
  prepareMs: number;
  sessionMs: number;
  firstRunMs: number;
  /** Process GPU memory right after a bare CUDA context (a 1x1 convolution session), and with GPEN at batch 1. */
  contextMiB: number | null;
  batch1ProcessMiB: number | null;
  rows: BenchRow[];
  agreement: { vsFp32Psnr: number | null; vsPeerPsnr: number | null; vsPeerMaxAbs: number | null };
  /** The fastest of the end-to-end sets (e2eAll: one per detector provider). */
  e2e: E2e | null;
  e2eAll?: E2e[];
  /** Batch sizes that failed, with the error (the other sizes still ran). */
  failedBatches?: { batch: number; error: string }[];
  /** C API variants measured in a process of their own (bench --isolate). */
  isolated?: boolean;
  /** C API variants: process GPU memory right after the session was created, before any run. */
  sessionProcessMiB?: number | null;
  /**
   * C API variants, after the batch-1 runs: the CUDA arena's own figures (AllocatorGetStats) in MiB. maxInUse is the
   * allocator's peak of tensors (weights and activations), what the peer's torch.cuda.max_memory_allocated counts;
   * reserved is what the arena holds from the driver (the rest of the process's figure is the context and the
   * libraries' kernels).
   */
  batch1Arena?: { maxInUseMiB: number; inUseMiB: number; reservedMiB: number } | null;
  /** C API variants on a runtime build whose C API lacks AllocatorGetStats: why batch1Arena is null. */
  batch1ArenaOmitted?: string;
  /** C API variants: median ms to copy the batch to the GPU and back, per batch size (not in the rows' times). */
  copyMs?: Record<string, number>;
  /** C API variants with --profile-batch: ONNX Runtime's node times of one run. */
  profile?: {
    batch: number;
    launchBlocking: boolean;
    nodes: number;
    totalMs: number;
    byOp: Record<string, number>;
    top: { node: string; op: string; ms: number; provider: string }[];
  };
}

/** A variant's measurements before any ran: what an error leaves in the report. */
export function unmeasured(): Pick<
  BenchVariant,
  'ran' | 'prepareMs' | 'sessionMs' | 'firstRunMs' | 'contextMiB' | 'batch1ProcessMiB' | 'rows' | 'agreement' | 'e2e'
> {
  return {
    ran: null,
    prepareMs: 0,
    sessionMs: 0,
    firstRunMs: 0,
    contextMiB: null,
    batch1ProcessMiB: null,
    rows: [],
    agreement: { vsFp32Psnr: null, vsPeerPsnr: null, vsPeerMaxAbs: null },
    e2e: null,
  };
}

export interface BenchReport {
  schema: typeof BENCH_SCHEMA;
  date: string;
  /** ONNX Runtime's version, of the build that ran (`build`). */
  runtime: string;
  build?: RuntimeBuild;
  gpu: { name: string | null; driver: string | null; cuda: string | null };
  model: string;
  variants: BenchVariant[];
}

/** One row of torch_gpen.py's output. */
interface PeerRow {
  dtype: string;
  batch: number;
  median_ms: number;
  ms_per_face: number;
  peak_gb: number;
}
export interface PeerReport {
  fused_ops: boolean;
  gpu?: string;
  rows: PeerRow[];
}

export interface Target {
  value: number | null;
  peer_native: number | null;
  peer_fused: number | null;
  peer: number | null;
  ratio: number | null;
}

/** The GPU-speed targets P1-P5 from a bench report, the peer's two variants and a cold-start figure. */
export function targets(
  b: BenchReport,
  native: PeerReport | null,
  fused: PeerReport | null,
  coldMs: number | null,
): Record<'P1' | 'P2' | 'P3' | 'P4' | 'P5', Target> {
  const gpu = b.variants.filter((v) => v.ok && v.provider !== 'cpu');
  const minOf = (xs: (number | null | undefined)[]): number | null => {
    const ys = xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
    return ys.length ? Math.min(...ys) : null;
  };
  const t = (value: number | null, pn: number | null, pf: number | null): Target => {
    const peer = minOf([pn, pf]);
    return { value, peer_native: pn, peer_fused: pf, peer, ratio: value !== null && peer ? value / peer : null };
  };
  const fp16b1 = (p: PeerReport | null) => p?.rows.filter((r) => r.dtype === 'float16' && r.batch === 1);
  const peerB1 = (p: PeerReport | null) => minOf(fp16b1(p)?.map((r) => r.median_ms) ?? []);
  const peerBest = (p: PeerReport | null) => minOf(p?.rows.map((r) => r.ms_per_face) ?? []);
  const peerMem = (p: PeerReport | null) => minOf(fp16b1(p)?.map((r) => r.peak_gb) ?? []);
  // in GB (1e9 bytes), the unit of the peer's peak_gb (torch's bytes / 1e9); NVML's figures are MiB
  const measured = gpu.filter(
    (v) => v.provider === 'cuda' && v.precision === 'fp16' && v.batch1ProcessMiB !== null && v.contextMiB !== null,
  );
  const mem = minOf(measured.map((v) => ((v.batch1ProcessMiB! - v.contextMiB!) * 2 ** 20) / 1e9));
  const b1 = minOf(gpu.flatMap((v) => v.rows.filter((r) => r.batch === 1).map((r) => r.stats.median)));
  return {
    P1: t(b1, peerB1(native), peerB1(fused)),
    P2: t(minOf(gpu.flatMap((v) => v.rows.map((r) => r.msPerFace))), peerBest(native), peerBest(fused)),
    P3: t(coldMs, null, null),
    P4: t(minOf(gpu.map((v) => v.e2e?.stats.median)), null, null),
    P5: t(mem, peerMem(native), peerMem(fused)),
  };
}
