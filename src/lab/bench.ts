// `gpen-lab bench`: GPEN model-only (session creation, first run, then each batch size: median and spread of many
// timed runs, ms per face, the GPU memory the process holds beyond its bare CUDA context) and end to end (a photo
// through the whole pipeline, warm), per provider and precision, with the agreement of fp16 with fp32 and, given the
// peer's seeded input and output (torch_gpen.py --save-pth), of gpen-lab with the official PyTorch model.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { GpenLabError } from '../errors.js';
import { startGpuSampler, summarizeGpu } from '../doctor/gpu-sampler.js';
import { readGpus } from '../doctor/gpu.js';
import { Restorer } from '../face/restore.js';
import { nodeScriptArgs } from '../io/node-script.js';
import { readNpy } from '../io/npy.js';
import { psnrFloat } from '../metrics/quality.js';
import type { TimingStats } from '../metrics/stats.js';
import { median, timingStats } from '../metrics/stats.js';
import type { Precision } from '../model/gpen-graph.js';
import { GraphBuilder, TensorType } from '../onnx/builder.js';
import type { ModelSpec } from '../model/registry.js';
import { formForCuda, prepareModel } from '../model/registry.js';
import type { Provider } from '../runtime/providers.js';
import type { DeviceBinding, PinnedStats } from '../runtime/capi.js';
import { CapiSession, splitCudaOptions } from '../runtime/capi.js';
import { ModelSession, runtimeVersion } from '../runtime/session.js';
import { readProfileNodes } from '../runtime/profile.js';

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
  /** On CUDA, the end-to-end runs also through the C API route with each of these option sets (as restore --cuda-options). */
  e2eCudaOptions?: Record<string, string>[];
  /** The peer's seeded input and output (.npy), for the agreement on the same weights. */
  compare?: { input: string; output: string };
  onProgress?: (line: string) => void;
  /** Also time CUDA through ONNX Runtime's C API (src/runtime/capi.ts), once per set of CUDA provider options. */
  capiCuda?: Record<string, string>[];
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

export interface E2e { photo: string; detector?: Provider; /** C API CUDA options of the session (null: the stock binding). */ cudaOptions?: Record<string, string> | null; faces: number; stats: TimingStats; stagesMedianMs: Record<string, number>; /** The C API route's page-locked host buffers. */ pinned?: PinnedStats }

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
  /** C API variants: median ms to copy the batch to the GPU and back, per batch size (not in the rows' times). */
  copyMs?: Record<string, number>;
  /** C API variants with --profile-batch: ONNX Runtime's node times of one run. */
  profile?: { batch: number; launchBlocking: boolean; nodes: number; totalMs: number; byOp: Record<string, number>; top: { node: string; op: string; ms: number; provider: string }[] };
}

export interface BenchReport {
  schema: typeof BENCH_SCHEMA;
  date: string;
  runtime: string;
  gpu: { name: string | null; driver: string | null; cuda: string | null };
  model: string;
  variants: BenchVariant[];
}

function seededInput(n: number, size: number, seed = 1): Float32Array {
  let s = seed >>> 0;
  const x = new Float32Array(n * 3 * size * size);
  for (let i = 0; i < x.length; i++) x[i] = (((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1) * 0.9;
  return x;
}

async function contextBaseline(provider: Provider): Promise<number | null> {
  if (provider !== 'cuda' && provider !== 'tensorrt') return null;
  const g = new GraphBuilder();
  const w = g.initializer('w', [1, 1, 1, 1], Float32Array.from([1]));
  const [y] = g.node('Conv', ['input', w], {}, 1, 'conv');
  g.rename(y, 'output');
  const graph = g.encode({ name: 'context_probe', opset: 17, inputs: [{ name: 'input', elemType: TensorType.FLOAT, dims: [1, 1, 4, 4] }], outputs: [{ name: 'output', elemType: TensorType.FLOAT, dims: [1, 1, 4, 4] }], metadata: {} });
  const s = await ModelSession.create(graph, { provider: 'cuda', recordPlacement: false });
  await s.run(new Float32Array(16), [1, 1, 4, 4]);
  const mib = await processMiB();
  await s.release();
  return mib;
}

/** Agreement of `got` with the peer's output on the same input and weights: PSNR over [-1, 1] and max abs. */
function vsPeer(v: BenchVariant, got: Float32Array, want: Float32Array): void {
  v.agreement.vsPeerPsnr = psnrFloat(got, want, 2);
  let m = 0;
  for (let i = 0; i < got.length; i++) m = Math.max(m, Math.abs(got[i] - want[i]));
  v.agreement.vsPeerMaxAbs = m;
}

export async function runBench(o: BenchOptions): Promise<BenchReport> {
  const log = o.onProgress ?? (() => undefined);
  const gpus = await readGpus();
  const variants: BenchVariant[] = [];
  const fp32Out = new Map<Provider, Float32Array>();
  let label = '';
  for (const provider of o.providers) {
    for (const precision of o.precisions) {
      const v: BenchVariant = { provider, precision, ok: false, error: null, ran: null, prepareMs: 0, sessionMs: 0, firstRunMs: 0, contextMiB: null, batch1ProcessMiB: null, rows: [], agreement: { vsFp32Psnr: null, vsPeerPsnr: null, vsPeerMaxAbs: null }, e2e: null };
      variants.push(v);
      let session: ModelSession | null = null;
      try {
        v.contextMiB = await contextBaseline(provider);
        let t = performance.now();
        const prepared = await prepareModel(o.model, precision);
        label = prepared.label;
        v.prepareMs = performance.now() - t;
        t = performance.now();
        session = await ModelSession.create(prepared.model, { provider, label: prepared.label });
        v.sessionMs = performance.now() - t;
        const S = prepared.info.size;
        const one = seededInput(1, S);
        t = performance.now();
        const first = await session.run(one, [1, 3, S, S]);
        v.firstRunMs = performance.now() - t;
        v.ran = session.placement?.ran ?? null;
        log(`${provider} ${precision}: session ${(v.sessionMs / 1000).toFixed(2)} s, first run ${(v.firstRunMs / 1000).toFixed(2)} s, ran ${v.ran?.join('+')}`);
        if (precision === 'fp32') fp32Out.set(provider, Float32Array.from(first.data));
        else if (fp32Out.has(provider)) v.agreement.vsFp32Psnr = psnrFloat(first.data, fp32Out.get(provider)!, 2);
        for (const b of o.batches) {
          // a batch size that fails is recorded and the others go on (GPEN-512 at 64 exceeds the CUDA kernels' int32)
          try {
            const x = seededInput(b, S);
            const into = new Float32Array(x.length);
            for (let i = 0; i < o.warmup; i++) await session.run(x, [b, 3, S, S], into);
            const sampler = startGpuSampler({ intervalMs: 20, pids: () => [process.pid] });
            const times: number[] = [];
            const runs = b === 1 ? o.runs : Math.max(5, Math.ceil(o.runs / 3));
            for (let i = 0; i < runs; i++) {
              const t1 = performance.now();
              await session.run(x, [b, 3, S, S], into);
              times.push(performance.now() - t1);
            }
            const g = summarizeGpu(sampler.stop());
            const stats = timingStats(times);
            v.rows.push({ provider, precision, batch: b, stats, msPerFace: stats.median / b, gpuProcessPeakMiB: g.processPeakMiB });
            if (b === 1) v.batch1ProcessMiB = g.processPeakMiB;
            log(`${provider} ${precision} batch ${b}: ${stats.median.toFixed(2)} ms (${(stats.median / b).toFixed(2)} ms/face)${g.processPeakMiB !== null ? `, ${g.processPeakMiB.toFixed(0)} MiB` : ''}`);
          } catch (e) {
            (v.failedBatches ??= []).push({ batch: b, error: (e as Error).message });
            log(`${provider} ${precision} batch ${b}: ${(e as Error).message}`);
          }
        }
        if (o.compare) {
          const xin = await readNpy(o.compare.input);
          const want = await readNpy(o.compare.output);
          const got = await session.run(xin.data as Float32Array, xin.dims);
          vsPeer(v, got.data, want.data as Float32Array);
        }
        await session.release();
        session = null;
        if (o.photo) {
          const routes: (Record<string, string> | null)[] = [null, ...(provider === 'cuda' ? o.e2eCudaOptions ?? [] : [])];
          for (const [detectorProvider, cudaOptions] of (o.e2eDetectors ?? ['cpu']).flatMap((d) => routes.map((c) => [d, c] as const))) {
            // batch 32 at most: the photo's 29 faces in one run, and under the CUDA kernels' limit
            const r = await Restorer.create({ model: o.model, precision, provider, route: cudaOptions ? 'fast' : 'stock', detectorProvider, batch: Math.min(Math.max(...o.batches), 32), outDir: '/tmp', write: false, ...(cudaOptions ? { session: { cudaOptions } } : {}) });
            await r.restoreFile(o.photo);
            const totals: number[] = [];
            const stages: Record<string, number[]> = {};
            let faces = 0;
            for (let i = 0; i < (o.e2eRuns ?? 5); i++) {
              const t1 = performance.now();
              const res = await r.restoreFile(o.photo);
              totals.push(performance.now() - t1);
              faces = res.faces.length;
              for (const [k, val] of Object.entries(res.stages_ms)) (stages[k] ??= []).push(val);
            }
            // the C API route's page-locked host buffers (what was locked, or why not)
            const pinned = r.runner?.pinnedStats?.() ?? null;
            await r.release();
            const e2e = { photo: o.photo, detector: detectorProvider, cudaOptions, faces, stats: timingStats(totals), stagesMedianMs: Object.fromEntries(Object.entries(stages).map(([k, xs]) => [k, median(xs)])), ...(pinned ? { pinned } : {}) };
            (v.e2eAll ??= []).push(e2e);
            if (!v.e2e || e2e.stats.median < v.e2e.stats.median) v.e2e = e2e;
            log(`${provider} ${precision} end to end (detector on ${detectorProvider}${cudaOptions ? `, C API ${JSON.stringify(cudaOptions)}` : ''}): ${median(totals).toFixed(0)} ms for ${faces} faces (${Object.entries(e2e.stagesMedianMs).map(([k, x]) => `${k} ${x.toFixed(0)}`).join(', ')})`);
          }
        }
        v.ok = true;
      } catch (e) {
        v.error = (e as Error).message;
        log(`${provider} ${precision}: ${v.error}`);
        await session?.release();
      }
    }
  }
  for (const cudaOptions of o.capiCuda ?? []) {
    for (const precision of o.precisions) variants.push(await (o.isolate ? isolatedVariant : capiVariant)(o, cudaOptions, precision, log));
  }
  return { schema: BENCH_SCHEMA, date: new Date().toISOString(), runtime: runtimeVersion(), gpu: { name: gpus.devices[0]?.name ?? null, driver: gpus.driverVersion, cuda: gpus.cudaDriverVersion }, model: label, variants };
}

/** The GPU memory this process holds now, by the driver (NVML), sampled for 120 ms. */
async function processMiB(): Promise<number | null> {
  const sampler = startGpuSampler({ intervalMs: 20, pids: () => [process.pid] });
  await new Promise((r) => setTimeout(r, 120));
  return summarizeGpu(sampler.stop()).processPeakMiB;
}

/** One row of torch_gpen.py's output. */
interface PeerRow { dtype: string; batch: number; median_ms: number; ms_per_face: number; peak_gb: number }
export interface PeerReport { fused_ops: boolean; gpu?: string; rows: PeerRow[] }

export interface Target { value: number | null; peer_native: number | null; peer_fused: number | null; peer: number | null; ratio: number | null }

/** The GPU-speed targets P1-P5 from a bench report, the peer's two variants and a cold-start figure. */
export function targets(b: BenchReport, native: PeerReport | null, fused: PeerReport | null, coldMs: number | null): Record<'P1' | 'P2' | 'P3' | 'P4' | 'P5', Target> {
  const gpu = b.variants.filter((v) => v.ok && v.provider !== 'cpu');
  const minOf = (xs: (number | null | undefined)[]): number | null => {
    const ys = xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
    return ys.length ? Math.min(...ys) : null;
  };
  const t = (value: number | null, pn: number | null, pf: number | null): Target => {
    const peer = minOf([pn, pf]);
    return { value, peer_native: pn, peer_fused: pf, peer, ratio: value !== null && peer ? value / peer : null };
  };
  const peerB1 = (p: PeerReport | null) => minOf(p?.rows.filter((r) => r.dtype === 'float16' && r.batch === 1).map((r) => r.median_ms) ?? []);
  const peerBest = (p: PeerReport | null) => minOf(p?.rows.map((r) => r.ms_per_face) ?? []);
  const peerMem = (p: PeerReport | null) => minOf(p?.rows.filter((r) => r.dtype === 'float16' && r.batch === 1).map((r) => r.peak_gb) ?? []);
  // in GB (1e9 bytes), the unit of the peer's peak_gb (torch's bytes / 1e9); NVML's figures are MiB
  const mem = minOf(gpu.filter((v) => v.provider === 'cuda' && v.precision === 'fp16' && v.batch1ProcessMiB !== null && v.contextMiB !== null)
    .map((v) => ((v.batch1ProcessMiB! - v.contextMiB!) * 2 ** 20) / 1e9));
  return {
    P1: t(minOf(gpu.flatMap((v) => v.rows.filter((r) => r.batch === 1).map((r) => r.stats.median))), peerB1(native), peerB1(fused)),
    P2: t(minOf(gpu.flatMap((v) => v.rows.map((r) => r.msPerFace))), peerBest(native), peerBest(fused)),
    P3: t(coldMs, null, null),
    P4: t(minOf(gpu.map((v) => v.e2e?.stats.median)), null, null),
    P5: t(mem, peerMem(native), peerMem(fused)),
  };
}

/** A line without its terminal colours (ONNX Runtime colours its own log lines). */
// eslint-disable-next-line no-control-regex
const plain = (l: string): string => l.replace(/\x1b\[[0-9;]*m/g, '');

/** What bench-child.ts is asked: one C API variant, its result written to `out`. */
export interface IsolatedJob { options: Omit<BenchOptions, 'onProgress'>; cudaOptions: Record<string, string>; precision: Precision; out: string }

/** How a variant's process ended, for its record when it wrote no result. */
export interface ChildEnd { code: number | null; signal: string | null; stderrTail: string; spawnError?: string; timedOutMs?: number }

/** The variant a process of its own wrote, or, where it wrote none, a failed variant saying how the process ended. */
export function isolatedResult(written: string | null, cudaOptions: Record<string, string>, precision: Precision, end: ChildEnd): BenchVariant {
  if (written !== null) {
    try {
      return { ...(JSON.parse(written) as BenchVariant), isolated: true };
    } catch { /* a torn file: reported below */ }
  }
  const ended = end.timedOutMs !== undefined ? `was still running after ${end.timedOutMs / 1000} s and was killed` : end.signal ? `was killed by ${end.signal}` : `exited with code ${end.code}`;
  const how = end.spawnError ?? `${ended} ${written === null ? 'before writing its result' : 'and its result could not be read'}`;
  const last = plain(end.stderrTail).trim().split('\n').filter((l) => l.trim() && !l.includes('W:onnxruntime')).slice(-3).join(' | ');
  return {
    provider: 'cuda', route: 'capi', capiOptions: cudaOptions, precision, ok: false, isolated: true,
    error: `the variant's process ${how}${last ? ` (last lines: ${last})` : ''}`,
    ran: null, prepareMs: 0, sessionMs: 0, firstRunMs: 0, contextMiB: null, batch1ProcessMiB: null, rows: [],
    agreement: { vsFp32Psnr: null, vsPeerPsnr: null, vsPeerMaxAbs: null }, e2e: null,
  };
}

/** capiVariant in a new process (bench-child.ts), its progress lines passed on as they come. */
async function isolatedVariant(o: BenchOptions, cudaOptions: Record<string, string>, precision: Precision, log: (l: string) => void): Promise<BenchVariant> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gpen-bench-variant-'));
  try {
    const { onProgress: _drop, ...options } = o;
    const job: IsolatedJob = { options, cudaOptions, precision, out: path.join(dir, 'variant.json') };
    const jobFile = path.join(dir, 'job.json');
    writeFileSync(jobFile, JSON.stringify(job));
    const end = await new Promise<ChildEnd>((resolve) => {
      const child = spawn(process.execPath, [...nodeScriptArgs(import.meta.url, 'bench-child'), jobFile], { stdio: ['ignore', 'ignore', 'pipe'] });
      let tail = '';
      let partial = '';
      child.stderr.on('data', (d: Buffer) => {
        const text = partial + d.toString();
        const lines = text.split('\n');
        partial = lines.pop() ?? '';
        for (const l of lines.map(plain)) if (l.trim() && !l.includes('W:onnxruntime')) log(l);
        tail = (tail + d.toString()).slice(-16 * 1024);
      });
      let settled = false;
      let timedOut = false;
      const limit = o.isolateTimeoutMs ?? 20 * 60_000;
      const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, limit);
      const finish = (e: ChildEnd) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(timedOut ? { ...e, timedOutMs: limit } : e);
      };
      child.on('error', (e) => finish({ code: null, signal: null, stderrTail: tail, spawnError: `could not start (${e.message})` }));
      child.on('close', (code, signal) => {
        if (plain(partial).trim() && !partial.includes('W:onnxruntime')) log(plain(partial));
        finish({ code, signal, stderrTail: tail });
      });
    });
    const written = existsSync(job.out) ? readFileSync(job.out, 'utf8') : null;
    const v = isolatedResult(written, cudaOptions, precision, end);
    if (!v.ok && written === null) log(`cuda (C API ${Object.entries(cudaOptions).map(([k, x]) => `${k}=${x}`).join(',')}) ${precision}: ${v.error}`);
    return v;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * CUDA through the C API with one set of provider options: session creation, first run, then per batch size the
 * model alone on tensors already on the GPU (IO binding; with enable_cuda_graph=1 each batch size is its own
 * captured graph), like the peer's timing of the forward pass on a GPU tensor; the copies to and from the GPU are
 * timed beside it. GPU memory is read after the runs of each batch size (the arena keeps its peak).
 */
export async function capiVariant(o: BenchOptions, cudaOptions: Record<string, string>, precision: Precision, log: (l: string) => void): Promise<BenchVariant> {
  const v: BenchVariant = { provider: 'cuda', route: 'capi', capiOptions: cudaOptions, precision, ok: false, error: null, ran: null, prepareMs: 0, sessionMs: 0, firstRunMs: 0, contextMiB: null, batch1ProcessMiB: null, rows: [], agreement: { vsFp32Psnr: null, vsPeerPsnr: null, vsPeerMaxAbs: null }, e2e: null, copyMs: {} };
  const tag = `cuda (C API ${Object.entries(cudaOptions).map(([k, x]) => `${k}=${x}`).join(',')}) ${precision}`;
  let s: CapiSession | null = null;
  const graphs = cudaOptions.enable_cuda_graph === '1';
  try {
    v.contextMiB = await contextBaseline('cuda');
    let t = performance.now();
    // prefer_nhwc=1 takes the graph's NHWC form (BuildOptions.nhwc), fused_act=1 its FusedAct nodes
    const prepared = await prepareModel(o.model, precision, formForCuda(cudaOptions));
    v.prepareMs = performance.now() - t;
    const S = prepared.info.size;
    t = performance.now();
    const { graphCache, prime: usePrimer, ...split } = splitCudaOptions(cudaOptions);
    // the optimised-graph cache and the primer serve restore's sessions in a fresh process: --cold-cuda-options measures them
    const coldKey = graphCache ? `graph_cache=${graphCache === 'ort' ? 'ort' : '1'}` : usePrimer ? `prime=${usePrimer}` : null;
    if (coldKey) throw new GpenLabError('E_ARGUMENT', `${coldKey} is not measured by --capi-cuda (it serves a cold start's session, made from a model file)`, `Pass ${coldKey} in --cold-cuda-options, where restore uses it.`, { input: '--capi-cuda' });
    s = CapiSession.create(prepared.model, { provider: 'cuda', ...split, gpenOps: split.fusedAct === true });
    v.sessionMs = performance.now() - t;
    v.sessionProcessMiB = await processMiB();
    const per = 3 * S * S;
    t = performance.now();
    const first = graphs ? null : s.run(seededInput(1, S), [1, 3, S, S], per);
    if (first) v.firstRunMs = performance.now() - t;
    v.ran = ['cuda'];
    if (first && o.compare) {
      const xin = await readNpy(o.compare.input);
      const want = (await readNpy(o.compare.output)).data as Float32Array;
      const got = s.run(xin.data as Float32Array, xin.dims, want.length);
      vsPeer(v, got, want);
    }
    log(`${tag}: session ${(v.sessionMs / 1000).toFixed(2)} s, first run ${(v.firstRunMs / 1000).toFixed(2)} s${v.agreement.vsPeerPsnr !== null ? `, vs peer ${v.agreement.vsPeerPsnr.toFixed(1)} dB` : ''}`);
    for (const b of o.batches) {
      let bound: DeviceBinding | null = null;
      try {
        const x = seededInput(b, S);
        const into = new Float32Array(b * per);
        bound = s.bindDevice([b, 3, S, S], undefined, graphs ? b : undefined);
        bound.upload(x);
        // with CUDA graphs the first runs are the warm-up and the capture
        for (let i = 0; i < Math.max(o.warmup, graphs ? 3 : 0); i++) {
          const t1 = performance.now();
          bound.run();
          // with graphs the session's first run is this one (the plain first run above is skipped): time it here
          if (graphs && i === 0 && v.firstRunMs === 0) v.firstRunMs = performance.now() - t1;
        }
        const times: number[] = [];
        const runs = b === 1 ? o.runs : Math.max(5, Math.ceil(o.runs / 3));
        for (let i = 0; i < runs; i++) {
          const t1 = performance.now();
          bound.run();
          times.push(performance.now() - t1);
        }
        const copies: number[] = [];
        for (let i = 0; i < 3; i++) {
          const t1 = performance.now();
          bound.upload(x);
          bound.download(into);
          copies.push(performance.now() - t1);
        }
        v.copyMs![String(b)] = median(copies);
        if (b === 1 && graphs && o.compare) {
          // the captured graph's output against the peer: the replay computes what the session computes
          const xin = await readNpy(o.compare.input);
          if (xin.dims[0] === 1) {
            const want = (await readNpy(o.compare.output)).data as Float32Array;
            bound.upload(xin.data as Float32Array);
            bound.run();
            const got = new Float32Array(want.length);
            bound.download(got);
            vsPeer(v, got, want);
          }
        }
        const mib = await processMiB();
        const stats = timingStats(times);
        v.rows.push({ provider: 'cuda', precision, batch: b, stats, msPerFace: stats.median / b, gpuProcessPeakMiB: mib });
        let arena = '';
        if (b === 1) {
          v.batch1ProcessMiB = mib;
          try {
            const st = s.allocatorStats('cuda');
            v.batch1Arena = { maxInUseMiB: st.MaxInUse / 2 ** 20, inUseMiB: st.InUse / 2 ** 20, reservedMiB: st.TotalAllocated / 2 ** 20 };
            arena = ` (arena: peak in use ${v.batch1Arena.maxInUseMiB.toFixed(0)} MiB, reserved ${v.batch1Arena.reservedMiB.toFixed(0)} MiB)`;
          } catch (err) {
            v.batch1Arena = null;
            arena = ` (arena statistics: ${(err as Error).message})`;
          }
        }
        log(`${tag} batch ${b}: ${stats.median.toFixed(2)} ms (${(stats.median / b).toFixed(2)} ms/face) on the GPU, copies ${v.copyMs![String(b)].toFixed(2)} ms${mib !== null ? `, ${mib.toFixed(0)} MiB` : ''}${arena}`);
      } catch (err) {
        (v.failedBatches ??= []).push({ batch: b, error: (err as Error).message });
        log(`${tag} batch ${b}: ${(err as Error).message}`);
      } finally {
        bound?.release();
      }
    }
    if (o.profileBatch) {
      s.release();
      s = null;
      v.profile = profileNodes(prepared.model, cudaOptions, o.profileBatch, S);
      log(`${tag} profile at batch ${o.profileBatch}: ${Object.entries(v.profile.byOp).slice(0, 8).map(([k, x]) => `${k} ${x.toFixed(2)}`).join(', ')} ms`);
    }
    v.ok = true;
  } catch (e) {
    v.error = (e as Error).message;
    log(`${tag}: ${v.error}`);
  } finally {
    s?.release();
  }
  return v;
}

/**
 * ONNX Runtime's per-node profile of one run at `batch` (after two unprofiled-in-effect warm-up runs): time per
 * operator type and the slowest nodes. Run under CUDA_LAUNCH_BLOCKING=1 the node times include the GPU's work.
 */
function profileNodes(model: string | Uint8Array, cudaOptions: Record<string, string>, batch: number, S: number): NonNullable<BenchVariant['profile']> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gpen-bench-prof-'));
  const split = splitCudaOptions(cudaOptions);
  const s = CapiSession.create(model, { provider: 'cuda', ...split, cuda: { ...split.cuda, enable_cuda_graph: '0' }, profilePrefix: path.join(dir, 'p') });
  try {
    const x = seededInput(batch, S);
    const n = batch * 3 * S * S;
    for (let i = 0; i < 3; i++) s.run(x, [batch, 3, S, S], n);
    // the last run only: the last occurrence of each node
    const last = new Map<string, { op: string; ms: number; provider: string }>();
    for (const n of readProfileNodes(s.endProfiling())) last.set(n.node, { op: n.op, ms: n.ms, provider: n.provider });
    const byOp: Record<string, number> = {};
    let total = 0;
    for (const v of last.values()) {
      byOp[v.op] = (byOp[v.op] ?? 0) + v.ms;
      total += v.ms;
    }
    const sorted = Object.fromEntries(Object.entries(byOp).sort((a, b) => b[1] - a[1]));
    const top = [...last.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 40).map(([node, v]) => ({ node, ...v }));
    return { batch, launchBlocking: process.env.CUDA_LAUNCH_BLOCKING === '1', nodes: last.size, totalMs: total, byOp: sorted, top };
  } finally {
    s.release();
    rmSync(dir, { recursive: true, force: true });
  }
}
