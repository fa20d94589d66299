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
import { median, timingStats } from '../metrics/stats.js';
import type { Precision } from '../model/gpen-graph.js';
import { prepareModel } from '../model/registry.js';
import { DEFAULT_BUILD } from '../runtime/builds.js';
import { openSession } from '../runtime/capi-model.js';
import type { Provider } from '../runtime/providers.js';
import { runtimeVersion, type GpenRunner } from '../runtime/session.js';
import { capiVariant } from './bench-capi.js';
import { isolatedVariant } from './bench-isolate.js';
import { contextBaseline, seededInput, vsPeer } from './bench-measure.js';
import type { BenchOptions, BenchReport, BenchVariant, E2e } from './bench-report.js';
import { BENCH_SCHEMA, unmeasured } from './bench-report.js';

export type { BenchOptions, BenchReport, PeerReport } from './bench-report.js';
export { targets } from './bench-report.js';
export { isolatedResult } from './bench-isolate.js';

/** The end-to-end sets of one binding variant: the photo restored, warm, per detector provider and C API route. */
async function e2eSets(
  o: BenchOptions,
  v: BenchVariant,
  provider: Provider,
  precision: Precision,
  log: (l: string) => void,
): Promise<void> {
  const photo = o.photo!;
  const routes: (Record<string, string> | null)[] = [null, ...(provider === 'cuda' ? (o.e2eCudaOptions ?? []) : [])];
  const sets = (o.e2eDetectors ?? ['cpu']).flatMap((d) => routes.map((c) => [d, c] as const));
  for (const [detectorProvider, cudaOptions] of sets) {
    // batch 32 at most: the photo's 29 faces in one run, and under the CUDA kernels' limit
    // the stock binding's pipeline where the build has it, else the build's C API route
    const own = (o.runtime ?? DEFAULT_BUILD) === DEFAULT_BUILD;
    const r = await Restorer.create({
      model: o.model,
      precision,
      provider,
      route: cudaOptions || !own ? 'fast' : 'stock',
      ...(o.runtime ? { runtime: o.runtime } : {}),
      detectorProvider,
      batch: Math.min(Math.max(...o.batches), 32),
      outDir: '/tmp',
      write: false,
      ...(cudaOptions ? { session: { cudaOptions } } : {}),
    });
    await r.restoreFile(photo);
    const totals: number[] = [];
    const stages: Record<string, number[]> = {};
    let faces = 0;
    for (let i = 0; i < (o.e2eRuns ?? 5); i++) {
      const t1 = performance.now();
      const res = await r.restoreFile(photo);
      totals.push(performance.now() - t1);
      faces = res.faces.length;
      for (const [k, val] of Object.entries(res.stages_ms)) (stages[k] ??= []).push(val);
    }
    // the C API route's page-locked host buffers (what was locked, or why not)
    const pinned = r.runner?.pinnedStats?.() ?? null;
    await r.release();
    const e2e: E2e = {
      photo,
      detector: detectorProvider,
      cudaOptions,
      faces,
      stats: timingStats(totals),
      stagesMedianMs: Object.fromEntries(Object.entries(stages).map(([k, xs]) => [k, median(xs)])),
      ...(pinned ? { pinned } : {}),
    };
    (v.e2eAll ??= []).push(e2e);
    if (!v.e2e || e2e.stats.median < v.e2e.stats.median) v.e2e = e2e;
    const route = `detector on ${detectorProvider}${cudaOptions ? `, C API ${JSON.stringify(cudaOptions)}` : ''}`;
    const stageText = Object.entries(e2e.stagesMedianMs)
      .map(([k, x]) => `${k} ${x.toFixed(0)}`)
      .join(', ');
    const total = `${median(totals).toFixed(0)} ms for ${faces} faces`;
    log(`${provider} ${precision} end to end (${route}): ${total} (${stageText})`);
  }
}

export async function runBench(o: BenchOptions): Promise<BenchReport> {
  const log = o.onProgress ?? (() => undefined);
  const gpus = await readGpus();
  const variants: BenchVariant[] = [];
  const fp32Out = new Map<Provider, Float32Array>();
  let label = '';
  for (const provider of o.providers) {
    for (const precision of o.precisions) {
      const v: BenchVariant = {
        provider,
        precision,
        ok: false,
        error: null,
        ...unmeasured(),
      };
      variants.push(v);
      let session: GpenRunner | null = null;
      try {
        v.contextMiB = await contextBaseline(provider, o.runtime);
        let t = performance.now();
        const prepared = await prepareModel(o.model, precision);
        label = prepared.label;
        v.prepareMs = performance.now() - t;
        t = performance.now();
        // the stock binding on onnxruntime-node's build, the C API route on another
        session = await openSession(prepared.model, {
          provider,
          label: prepared.label,
          ...(o.runtime ? { runtime: o.runtime } : {}),
        });
        v.sessionMs = performance.now() - t;
        const S = prepared.info.size;
        const one = seededInput(1, S);
        t = performance.now();
        const first = await session.run(one, [1, 3, S, S]);
        v.firstRunMs = performance.now() - t;
        await session.placementSettled?.();
        v.ran = session.placement?.ran ?? null;
        const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
        const ran = `ran ${v.ran?.join('+')}`;
        log(`${provider} ${precision}: session ${seconds(v.sessionMs)}, first run ${seconds(v.firstRunMs)}, ${ran}`);
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
            v.rows.push({
              provider,
              precision,
              batch: b,
              stats,
              msPerFace: stats.median / b,
              gpuProcessPeakMiB: g.processPeakMiB,
            });
            if (b === 1) v.batch1ProcessMiB = g.processPeakMiB;
            const memory = g.processPeakMiB !== null ? `, ${g.processPeakMiB.toFixed(0)} MiB` : '';
            const timing = `${stats.median.toFixed(2)} ms (${(stats.median / b).toFixed(2)} ms/face)`;
            log(`${provider} ${precision} batch ${b}: ${timing}${memory}`);
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
        if (o.photo) await e2eSets(o, v, provider, precision, log);
        v.ok = true;
      } catch (e) {
        v.error = (e as Error).message;
        log(`${provider} ${precision}: ${v.error}`);
        await session?.release();
      }
    }
  }
  for (const cudaOptions of o.capiCuda ?? []) {
    for (const precision of o.precisions) {
      variants.push(await (o.isolate ? isolatedVariant : capiVariant)(o, cudaOptions, precision, log));
    }
  }
  const gpu = { name: gpus.devices[0]?.name ?? null, driver: gpus.driverVersion, cuda: gpus.cudaDriverVersion };
  const date = new Date().toISOString();
  const build = o.runtime ?? DEFAULT_BUILD;
  return { schema: BENCH_SCHEMA, date, runtime: runtimeVersion(), build, gpu, model: label, variants };
}
