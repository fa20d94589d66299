// The bench's C API variants: GPEN on CUDA through ONNX Runtime's C API with one set of provider options, timed on
// tensors already on the GPU, and (--profile-batch) ONNX Runtime's per-node profile of one run.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { GpenLabError } from '../errors.js';
import { readNpy } from '../io/npy.js';
import { median, timingStats } from '../metrics/stats.js';
import type { Precision } from '../model/gpen-graph.js';
import { formForCuda, prepareModel } from '../model/registry.js';
import type { DeviceBinding } from '../runtime/capi/device-io.js';
import { CapiSession } from '../runtime/capi/session.js';
import { splitCudaOptions } from '../runtime/capi/options.js';
import { readProfileNodes } from '../runtime/profile.js';
import { contextBaseline, processMiB, seededInput, vsPeer } from './bench-measure.js';
import type { BenchOptions, BenchVariant } from './bench-report.js';
import { unmeasured } from './bench-report.js';

/**
 * CUDA through the C API with one set of provider options: session creation, first run, then per batch size the
 * model alone on tensors already on the GPU (IO binding; with enable_cuda_graph=1 each batch size is its own
 * captured graph), like the peer's timing of the forward pass on a GPU tensor; the copies to and from the GPU are
 * timed beside it. GPU memory is read after the runs of each batch size (the arena keeps its peak).
 */
export async function capiVariant(
  o: BenchOptions,
  cudaOptions: Record<string, string>,
  precision: Precision,
  log: (l: string) => void,
): Promise<BenchVariant> {
  const v: BenchVariant = {
    provider: 'cuda',
    route: 'capi',
    capiOptions: cudaOptions,
    precision,
    ok: false,
    error: null,
    ...unmeasured(),
    copyMs: {},
  };
  const tag = `cuda (C API ${Object.entries(cudaOptions)
    .map(([k, x]) => `${k}=${x}`)
    .join(',')}) ${precision}`;
  let s: CapiSession | null = null;
  const graphs = cudaOptions.enable_cuda_graph === '1';
  try {
    v.contextMiB = await contextBaseline('cuda', o.runtime);
    let t = performance.now();
    // prefer_nhwc=1 takes the graph's NHWC form (BuildOptions.nhwc), fused_act=1 its FusedAct nodes
    const prepared = await prepareModel(o.model, precision, formForCuda(cudaOptions));
    v.prepareMs = performance.now() - t;
    const S = prepared.info.size;
    t = performance.now();
    const { graphCache, prime: usePrimer, ...split } = splitCudaOptions(cudaOptions);
    // the optimised-graph cache and the primer serve restore's sessions in a fresh process, made from a model file:
    // --cold-cuda-options measures them
    const coldKey = graphCache
      ? `graph_cache=${graphCache === 'ort' ? 'ort' : '1'}`
      : usePrimer
        ? `prime=${usePrimer}`
        : null;
    if (coldKey) {
      throw new GpenLabError(
        'E_ARGUMENT',
        `${coldKey} is not measured by --capi-cuda (it serves a cold start's session, made from a model file)`,
        `Pass ${coldKey} in --cold-cuda-options, where restore uses it.`,
        { input: '--capi-cuda' },
      );
    }
    s = CapiSession.create(prepared.model, {
      provider: 'cuda',
      ...split,
      gpenOps: split.fusedAct === true,
      ...(o.runtime ? { runtime: o.runtime } : {}),
    });
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
    const vsPeerText = v.agreement.vsPeerPsnr !== null ? `, vs peer ${v.agreement.vsPeerPsnr.toFixed(1)} dB` : '';
    const firstRun = `first run ${(v.firstRunMs / 1000).toFixed(2)} s`;
    log(`${tag}: session ${(v.sessionMs / 1000).toFixed(2)} s, ${firstRun}${vsPeerText}`);
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
        v.rows.push({
          provider: 'cuda',
          precision,
          batch: b,
          stats,
          msPerFace: stats.median / b,
          gpuProcessPeakMiB: mib,
        });
        let arena = '';
        if (b === 1) {
          v.batch1ProcessMiB = mib;
          try {
            const st = s.allocatorStats('cuda');
            if (st) {
              v.batch1Arena = {
                maxInUseMiB: st.MaxInUse / 2 ** 20,
                inUseMiB: st.InUse / 2 ** 20,
                reservedMiB: st.TotalAllocated / 2 ** 20,
              };
              const { maxInUseMiB, reservedMiB } = v.batch1Arena;
              arena = ` (arena: peak in use ${maxInUseMiB.toFixed(0)} MiB, reserved ${reservedMiB.toFixed(0)} MiB)`;
            } else {
              // a build whose C API lacks AllocatorGetStats: recorded as an omission, not a failure
              v.batch1Arena = null;
              v.batch1ArenaOmitted = s.allocatorStatsOmitted ?? 'AllocatorGetStats answered nothing';
              arena = ` (arena statistics: ${v.batch1ArenaOmitted})`;
            }
          } catch (err) {
            v.batch1Arena = null;
            arena = ` (arena statistics: ${(err as Error).message})`;
          }
        }
        const timing = `${stats.median.toFixed(2)} ms (${(stats.median / b).toFixed(2)} ms/face) on the GPU`;
        const memory = mib !== null ? `, ${mib.toFixed(0)} MiB` : '';
        log(`${tag} batch ${b}: ${timing}, copies ${v.copyMs![String(b)].toFixed(2)} ms${memory}${arena}`);
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
      const byOp = Object.entries(v.profile.byOp)
        .slice(0, 8)
        .map(([k, x]) => `${k} ${x.toFixed(2)}`)
        .join(', ');
      log(`${tag} profile at batch ${o.profileBatch}: ${byOp} ms`);
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
function profileNodes(
  model: string | Uint8Array,
  cudaOptions: Record<string, string>,
  batch: number,
  S: number,
): NonNullable<BenchVariant['profile']> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gpen-bench-prof-'));
  const split = splitCudaOptions(cudaOptions);
  const s = CapiSession.create(model, {
    provider: 'cuda',
    ...split,
    cuda: { ...split.cuda, enable_cuda_graph: '0' },
    profilePrefix: path.join(dir, 'p'),
  });
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
    const top = [...last.entries()]
      .sort((a, b) => b[1].ms - a[1].ms)
      .slice(0, 40)
      .map(([node, v]) => ({ node, ...v }));
    const launchBlocking = process.env.CUDA_LAUNCH_BLOCKING === '1';
    return { batch, launchBlocking, nodes: last.size, totalMs: total, byOp: sorted, top };
  } finally {
    s.release();
    rmSync(dir, { recursive: true, force: true });
  }
}
