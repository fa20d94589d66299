// `gpen-lab bench`: GPEN model-only (session creation, first run, then each batch size: median and spread of many
// timed runs, ms per face, the GPU memory the process holds beyond its bare CUDA context) and end to end (a photo
// through the whole pipeline, warm), per provider and precision, with the agreement of fp16 with fp32 and, given the
// peer's seeded input and output (torch_gpen.py --save-pth), of gpen-lab with the official PyTorch model.
import { performance } from 'node:perf_hooks';
import { startGpuSampler, summarizeGpu } from '../doctor/gpu-sampler.js';
import { readGpus } from '../doctor/gpu.js';
import { Restorer } from '../face/restore.js';
import { readNpy } from '../io/npy.js';
import { psnrFloat } from '../metrics/quality.js';
import type { TimingStats } from '../metrics/stats.js';
import { median, timingStats } from '../metrics/stats.js';
import type { Precision } from '../model/gpen-graph.js';
import { GraphBuilder, TensorType } from '../model/onnx-builder.js';
import type { ModelSpec } from '../model/registry.js';
import { prepareModel } from '../model/registry.js';
import type { Provider } from '../runtime/providers.js';
import { CapiSession } from '../runtime/capi.js';
import { ModelSession, runtimeVersion } from '../runtime/session.js';

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
  e2eRuns?: number;
  /** The peer's seeded input and output (.npy), for the agreement on the same weights. */
  compare?: { input: string; output: string };
  onProgress?: (line: string) => void;
  /** Also time CUDA through ONNX Runtime's C API (src/runtime/capi.ts) with these CUDA provider options. */
  capiCuda?: Record<string, string>;
}

export interface BenchRow {
  provider: Provider;
  precision: Precision;
  batch: number;
  stats: TimingStats;
  msPerFace: number;
  gpuProcessPeakMiB: number | null;
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
  e2e: { photo: string; faces: number; stats: TimingStats; stagesMedianMs: Record<string, number> } | null;
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
  const sampler = startGpuSampler({ intervalMs: 20, pids: () => [process.pid] });
  await new Promise((r) => setTimeout(r, 100));
  const g2 = summarizeGpu(sampler.stop());
  await s.release();
  return g2.processPeakMiB;
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
        }
        if (o.compare) {
          const xin = await readNpy(o.compare.input);
          const want = await readNpy(o.compare.output);
          const got = await session.run(xin.data as Float32Array, xin.dims);
          v.agreement.vsPeerPsnr = psnrFloat(got.data, want.data as Float32Array, 2);
          let m = 0;
          for (let i = 0; i < got.data.length; i++) m = Math.max(m, Math.abs(got.data[i] - (want.data as Float32Array)[i]));
          v.agreement.vsPeerMaxAbs = m;
        }
        await session.release();
        session = null;
        if (o.photo) {
          const r = await Restorer.create({ model: o.model, precision, provider, batch: Math.max(...o.batches), outDir: '/tmp', write: false });
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
          await r.release();
          v.e2e = { photo: o.photo, faces, stats: timingStats(totals), stagesMedianMs: Object.fromEntries(Object.entries(stages).map(([k, xs]) => [k, median(xs)])) };
          log(`${provider} ${precision} end to end: ${median(totals).toFixed(0)} ms for ${faces} faces`);
        }
        v.ok = true;
      } catch (e) {
        v.error = (e as Error).message;
        log(`${provider} ${precision}: ${v.error}`);
        await session?.release();
      }
    }
  }
  if (o.capiCuda) {
    for (const precision of o.precisions) variants.push(await capiVariant(o, precision, log));
  }
  return { schema: BENCH_SCHEMA, date: new Date().toISOString(), runtime: runtimeVersion(), gpu: { name: gpus.devices[0]?.name ?? null, driver: gpus.driverVersion, cuda: gpus.cudaDriverVersion }, model: label, variants };
}

/** One row of torch_gpen.py's output. */
interface PeerRow { dtype: string; batch: number; median_ms: number; ms_per_face: number; peak_gb: number }
export interface PeerReport { fused_ops: boolean; gpu?: string; rows: PeerRow[] }

export interface Target { value: number | null; peer_native: number | null; peer_fused: number | null; peer: number | null; ratio: number | null }

/** P1-P5 of the GPU-speed issue from a bench report, the peer's two variants and a cold-start figure. */
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
  const fp16 = gpu.find((v) => v.provider === 'cuda' && v.precision === 'fp16');
  const mem = fp16 && fp16.batch1ProcessMiB !== null && fp16.contextMiB !== null ? (fp16.batch1ProcessMiB - fp16.contextMiB) / 1024 : null;
  return {
    P1: t(minOf(gpu.flatMap((v) => v.rows.filter((r) => r.batch === 1).map((r) => r.stats.median))), peerB1(native), peerB1(fused)),
    P2: t(minOf(gpu.flatMap((v) => v.rows.map((r) => r.msPerFace))), peerBest(native), peerBest(fused)),
    P3: t(coldMs, null, null),
    P4: t(minOf(gpu.map((v) => v.e2e?.stats.median)), null, null),
    P5: t(mem, peerMem(native), peerMem(fused)),
  };
}

/** CUDA through the C API: session creation, first run and the batch sizes (runs are synchronous: no GPU sampling). */
async function capiVariant(o: BenchOptions, precision: Precision, log: (l: string) => void): Promise<BenchVariant> {
  const v: BenchVariant = { provider: 'cuda', route: 'capi', capiOptions: o.capiCuda!, precision, ok: false, error: null, ran: null, prepareMs: 0, sessionMs: 0, firstRunMs: 0, contextMiB: null, batch1ProcessMiB: null, rows: [], agreement: { vsFp32Psnr: null, vsPeerPsnr: null, vsPeerMaxAbs: null }, e2e: null };
  let s: CapiSession | null = null;
  try {
    let t = performance.now();
    const prepared = await prepareModel(o.model, precision);
    v.prepareMs = performance.now() - t;
    const S = prepared.info.size;
    t = performance.now();
    s = CapiSession.create(prepared.model, { provider: 'cuda', cuda: o.capiCuda! });
    v.sessionMs = performance.now() - t;
    const per = 3 * S * S;
    t = performance.now();
    s.run(seededInput(1, S), [1, 3, S, S], per);
    v.firstRunMs = performance.now() - t;
    v.ran = ['cuda'];
    log(`cuda (C API ${JSON.stringify(o.capiCuda)}) ${precision}: session ${(v.sessionMs / 1000).toFixed(2)} s, first run ${(v.firstRunMs / 1000).toFixed(2)} s`);
    for (const b of o.batches) {
      const x = seededInput(b, S);
      for (let i = 0; i < o.warmup; i++) s.run(x, [b, 3, S, S], b * per);
      const times: number[] = [];
      const runs = b === 1 ? o.runs : Math.max(5, Math.ceil(o.runs / 3));
      for (let i = 0; i < runs; i++) {
        const t1 = performance.now();
        s.run(x, [b, 3, S, S], b * per);
        times.push(performance.now() - t1);
      }
      const stats = timingStats(times);
      v.rows.push({ provider: 'cuda', precision, batch: b, stats, msPerFace: stats.median / b, gpuProcessPeakMiB: null });
      log(`cuda (C API) ${precision} batch ${b}: ${stats.median.toFixed(2)} ms (${(stats.median / b).toFixed(2)} ms/face)`);
    }
    v.ok = true;
  } catch (e) {
    v.error = (e as Error).message;
    log(`cuda (C API) ${precision}: ${v.error}`);
  } finally {
    s?.release();
  }
  return v;
}
