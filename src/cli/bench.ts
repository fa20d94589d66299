// `gpen-lab bench`: GPEN model-only and end-to-end timings per provider, precision and batch size (JSON out), and,
// given the peer's JSON (torch_gpen.py), the GPU-speed targets P1-P5 as ratios to the official PyTorch GPEN.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { GpenLabError, checkInteger, checkList } from '../errors.js';
import { writeFileAtomicSafe } from '../io/files.js';
import { nodeScriptArgs } from '../io/node-script.js';
import type { LaunchJob, LaunchResult } from '../lab/cold-launcher.js';
import type { PeerReport } from '../lab/bench.js';
import { runBench, targets } from '../lab/bench.js';
import type { Precision } from '../model/gpen-graph.js';
import { PRECISIONS } from '../onnx/precision.js';
import type { ModelSpec } from '../model/registry.js';
import { prepareModel } from '../model/registry.js';
import { parseProvider } from '../runtime/providers.js';
import type { Provider } from '../runtime/providers.js';
import { DEMO_FACE } from './demo.js';
import { parseIntArg } from './model.js';
import { parseCudaOptions } from '../runtime/capi-model.js';
import { DEFAULT_BUILD, type RuntimeBuild } from '../runtime/builds.js';
import { chooseRuntime } from '../runtime/runtime-choice.js';
import { runtimeOption } from './runtime-option.js';
import { median } from '../metrics/stats.js';

const list = (s: string): string[] =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

/**
 * A new process to the first restored face written as PNG: spawn to the restore's JSON line (printed after the write),
 * timed by a launcher that holds no CUDA (src/lab/cold-launcher.ts). ms splits as beforeOriginMs (spawn to the child's
 * performance.timeOrigin: exec and node's own start before its clock), the child's first_result_at on its own clock,
 * and afterResultMs (the line on its way to the launcher).
 */
interface ColdRun {
  ms: number;
  beforeOriginMs: number | null;
  afterResultMs: number | null;
  stages: Record<string, number>;
  startup: Record<string, unknown> | null;
}
/** warmup: whether the CLI warmed CUDA up first thing (src/runtime/cuda-warm.ts; off through GPEN_LAB_CUDA_WARMUP=0). */
/** earlySession: the C API session started from the CLI's first module (restore with --cuda-options and an ONNX file). */
/**
 * firstRun: the route's first cold start with this model file, which writes what later processes read (the model's
 * description, the optimised graph, the primer): once per file and machine, reported apart; runs and medianMs: the
 * cold starts after it, each a new process (P3).
 */
interface ColdEntry {
  provider: Provider;
  precision: Precision;
  route: 'binding' | 'capi';
  cudaOptions: Record<string, string> | null;
  warmup: boolean;
  earlySession: boolean;
  firstRun: ColdRun | null;
  runs: ColdRun[];
  medianMs: number | null;
}

async function coldStart(
  model: string,
  provider: Provider,
  precisionArgs: string[],
  v: { warmup: boolean },
): Promise<ColdRun> {
  const out = path.join(os.tmpdir(), `gpen-cold-${process.pid}`);
  const job: LaunchJob = {
    command: process.execPath,
    args: [
      ...nodeScriptArgs(import.meta.url, 'index'),
      'restore',
      DEMO_FACE,
      '-o',
      out,
      '--model',
      model,
      '--provider',
      provider,
      '--batch',
      '1',
      '--json',
      '--overwrite',
      ...precisionArgs,
    ],
  };
  // timed by a launcher of its own (src/lab/cold-launcher.ts): this process holds CUDA, which slows a spawn from it
  const launcher = nodeScriptArgs(new URL('../lab/', import.meta.url).href, 'cold-launcher');
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [...launcher, JSON.stringify(job)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, GPEN_LAB_CUDA_WARMUP: v.warmup ? '1' : '0' },
    });
    let buf = '';
    let err = '';
    c.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    c.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
    });
    c.on('error', reject);
    // the launcher ends after its child, so that the next cold start does not overlap this one's exit
    c.on('close', (code) => {
      const nl = buf.indexOf('\n');
      if (nl < 0) return reject(new Error(`the cold-start launcher exited ${code}: ${err.slice(-2000)}`));
      try {
        const l = JSON.parse(buf.slice(0, nl)) as LaunchResult;
        if (l.line === null) return reject(new Error(`cold restore exited ${l.code}: ${l.stderrTail.slice(-2000)}`));
        const r = JSON.parse(l.line) as { stages_ms: Record<string, number>; startup_ms?: Record<string, unknown> };
        const origin = r.startup_ms?.time_origin;
        const result = r.startup_ms?.first_result_at;
        const beforeOriginMs = typeof origin === 'number' ? origin - l.spawnedAt : null;
        const afterResultMs =
          beforeOriginMs !== null && typeof result === 'number' ? l.ms - beforeOriginMs - result : null;
        resolve({ ms: l.ms, beforeOriginMs, afterResultMs, stages: r.stages_ms, startup: r.startup_ms ?? null });
      } catch (e) {
        reject(e);
      }
    });
  });
}

export function benchCommand(): Command {
  return new Command('bench')
    .description('GPEN speed: model only and end to end, per provider, precision and batch size; JSON out')
    .option('--model <file>', 'GPEN weights (.pth or .onnx)')
    .option('--synthetic <size>', 'seeded synthetic GPEN of this size', parseIntArg('--synthetic'))
    .option('--provider <list>', 'providers, comma-separated', 'cpu')
    .addOption(runtimeOption())
    .option('--precision <list>', 'fp32, fp16', 'fp32,fp16')
    .option('--batch <list>', 'batch sizes', '1,4')
    .option(
      '--runs <n>',
      'timed runs at batch 1 (a third of it, at least 5, for larger batches)',
      parseIntArg('--runs'),
      20,
    )
    .option('--warmup <n>', 'untimed runs before each batch size', parseIntArg('--warmup'), 3)
    .option('--photo <file>', 'also time the whole pipeline on this photo, warm')
    .option('--e2e-detector <list>', 'providers for the face detector in the end-to-end runs, one set each', 'cpu')
    .option('--e2e-runs <n>', 'end-to-end runs', parseIntArg('--e2e-runs'), 5)
    .option(
      '--cold <n>',
      'also time N cold starts: a new process to the demo face restored and written as PNG (after one first cold start per route, reported apart: it writes the caches later processes read)',
      parseIntArg('--cold'),
      0,
    )
    .option(
      '--compare <in,out>',
      "the peer's seeded input and output .npy (torch_gpen.py --save-pth), for the agreement",
    )
    .option('--peer-native <json>', "torch_gpen.py's JSON, official native ops")
    .option('--peer-fused <json>', "torch_gpen.py's JSON, official fused CUDA ops (--fused)")
    .option(
      '--capi-cuda <k=v,...>',
      "also time CUDA through ONNX Runtime's C API with these provider options (e.g. cudnn_conv_algo_search=HEURISTIC,prefer_nhwc=1); repeat for several sets",
      (v: string, acc: Record<string, string>[] = []) => [...acc, parseCudaOptions(v, '--capi-cuda')],
    )
    .option('--no-cold-binding', 'on CUDA, time cold starts through the C API routes only (--cold-cuda-options)')
    .option(
      '--cold-without-warmup',
      "on CUDA, also time each cold start with the CLI's CUDA warm-up off (GPEN_LAB_CUDA_WARMUP=0)",
    )
    .option(
      '--e2e-cuda-options <k=v,...>',
      'the photo end to end also through the C API with these CUDA provider options; repeat for several sets',
      (v: string, acc: Record<string, string>[] = []) => [...acc, parseCudaOptions(v, '--e2e-cuda-options')],
    )
    .option(
      '--cold-cuda-options <k=v,...>',
      'cold starts also through the C API with these CUDA provider options; repeat for several sets',
      (v: string, acc: Record<string, string>[] = []) => [...acc, parseCudaOptions(v, '--cold-cuda-options')],
    )
    .option(
      '--isolate',
      'with --capi-cuda: each variant (option set x precision) in a process of its own, so that its GPU memory counts alone (P5) and a crash is recorded, not fatal',
    )
    .option(
      '--profile-batch <n>',
      'with --capi-cuda: profile one run per variant at this batch (node times by operator; run under CUDA_LAUNCH_BLOCKING=1 for GPU times)',
      parseIntArg('--profile-batch'),
    )
    .option('--out <file>', 'write the JSON here')
    .option('--json', 'print the JSON')
    .action(
      async (o: {
        model?: string;
        synthetic?: number;
        provider: string;
        runtime?: RuntimeBuild;
        precision: string;
        batch: string;
        runs: number;
        warmup: number;
        photo?: string;
        e2eDetector: string;
        e2eRuns: number;
        cold: number;
        coldWithoutWarmup?: boolean;
        coldBinding: boolean;
        compare?: string;
        peerNative?: string;
        peerFused?: string;
        capiCuda?: Record<string, string>[];
        coldCudaOptions?: Record<string, string>[];
        e2eCudaOptions?: Record<string, string>[];
        profileBatch?: number;
        isolate?: boolean;
        out?: string;
        json?: boolean;
      }) => {
        if ((o.model === undefined) === (o.synthetic === undefined))
          throw new GpenLabError(
            'E_ARGUMENT',
            'bench needs one of --model and --synthetic',
            'Pass --model FILE or --synthetic 512.',
            { input: '--model' },
          );
        const cache = path.join(os.tmpdir(), 'gpen-lab-bench-cache');
        const model: ModelSpec =
          o.model !== undefined
            ? { type: 'file', file: o.model }
            : { type: 'synthetic', size: o.synthetic!, seed: 0, cacheDir: cache };
        const providers = list(o.provider).map((p) => parseProvider(p));
        const precisions: Precision[] = checkList(
          '--precision',
          o.precision,
          PRECISIONS,
          'Pass --precision fp32,fp16.',
        );
        const batches = list(o.batch).map((b) => checkInteger('--batch', b, 1, 256, 'Pass --batch 1,8,16.'));
        const cmp = o.compare ? list(o.compare) : null;
        const log = (l: string) => process.stderr.write(`${l}\n`);
        // one build for every variant (a process runs one): asked for, it must run each provider; else as restore
        // chooses it for the first GPU provider listed
        const gpu = providers.find((p) => p === 'cuda' || p === 'tensorrt');
        const runtime = (o.runtime ? providers : [gpu ?? providers[0] ?? 'cpu']).map((p) =>
          chooseRuntime({ runtime: o.runtime, provider: p, route: 'fast' }),
        )[0];
        const build = runtime.build;
        const own = build === DEFAULT_BUILD;
        log(`runtime ${runtime.asked === 'auto' ? `auto -> ${build}: ${runtime.reason}` : build}`);
        const report = await runBench({
          ...(own ? {} : { runtime: build }),
          ...(o.capiCuda ? { capiCuda: o.capiCuda } : {}),
          ...(o.profileBatch ? { profileBatch: o.profileBatch } : {}),
          ...(o.isolate ? { isolate: true } : {}),
          model,
          providers,
          precisions,
          batches,
          runs: o.runs,
          warmup: o.warmup,
          ...(o.photo ? { photo: o.photo, e2eDetectors: list(o.e2eDetector).map((p) => parseProvider(p)) } : {}),
          e2eRuns: o.e2eRuns,
          ...(o.e2eCudaOptions ? { e2eCudaOptions: o.e2eCudaOptions } : {}),
          ...(cmp ? { compare: { input: cmp[0], output: cmp[1] } } : {}),
          onProgress: log,
        });
        const cold: ColdEntry[] = [];
        if (o.cold > 0) {
          for (const provider of providers) {
            for (const precision of precisions) {
              const prepared = await prepareModel(model, precision);
              // a converted .pth: the cold runs load it as an ONNX file, like a user who converted once
              let file = prepared.model;
              if (typeof file !== 'string') {
                file = path.join(cache, `converted-${precision}.onnx`);
                await writeFileAtomicSafe(file, prepared.model as Uint8Array);
              }
              const capiRoutes = provider === 'cuda' ? (o.coldCudaOptions ?? []) : [];
              const routes: (Record<string, string> | null)[] = [
                ...(o.coldBinding || capiRoutes.length === 0 ? [null] : []),
                ...capiRoutes,
              ];
              // each route with the CLI's CUDA warm-up (and, for a C API route, its early session), and without where asked;
              // the variants take turns run by run, so that a drift of the machine touches them alike
              const variants: { warmup: boolean }[] = [{ warmup: true }];
              if (provider === 'cuda' && o.coldWithoutWarmup) variants.push({ warmup: false });
              for (const cudaOptions of routes) {
                const extra = [
                  '--precision',
                  precision,
                  ...(own ? [] : ['--runtime', build]),
                  ...(cudaOptions
                    ? [
                        '--cuda-options',
                        Object.entries(cudaOptions)
                          .map(([k, x]) => `${k}=${x}`)
                          .join(','),
                      ]
                    : own
                      ? ['--route', 'stock']
                      : []),
                ];
                const entries = variants.map((v) => ({
                  v,
                  tag: `cold ${provider} ${precision}${cudaOptions ? ` (C API ${JSON.stringify(cudaOptions)})` : ''}${v.warmup ? '' : ' without the CUDA warm-up'}`,
                  first: null as ColdRun | null,
                  runs: [] as ColdRun[],
                  failed: false,
                }));
                // one first cold start per route (it writes the caches later processes read), then the timed ones
                for (let i = -1; i < o.cold; i++) {
                  for (const e of entries) {
                    if (e.failed) continue;
                    try {
                      const r = await coldStart(file, provider, extra, e.v);
                      if (i < 0) e.first = r;
                      else e.runs.push(r);
                      log(
                        `${e.tag}${i < 0 ? ' first (writes the caches)' : ''}: ${r.ms.toFixed(0)} ms${r.beforeOriginMs !== null && r.afterResultMs !== null ? ` (${r.beforeOriginMs.toFixed(0)} before the child's clock, ${r.afterResultMs.toFixed(0)} after its result)` : ''}`,
                      );
                    } catch (err) {
                      log(`${e.tag}: ${(err as Error).message}`);
                      e.failed = true;
                    }
                  }
                }
                for (const e of entries) {
                  cold.push({
                    provider,
                    precision,
                    route: cudaOptions || !own ? 'capi' : 'binding',
                    cudaOptions,
                    warmup: e.v.warmup,
                    earlySession: e.v.warmup && cudaOptions !== null,
                    firstRun: e.first,
                    runs: e.runs,
                    medianMs: e.runs.length ? median(e.runs.map((r) => r.ms)) : null,
                  });
                }
              }
            }
          }
        }
        const readPeer = (f?: string): PeerReport | null =>
          f ? (JSON.parse(readFileSync(f, 'utf8')) as PeerReport) : null;
        const native = readPeer(o.peerNative);
        const fused = readPeer(o.peerFused);
        // P3: the fastest configuration's median cold start
        const gpuCold = cold.filter((c) => c.provider !== 'cpu' && c.medianMs !== null).map((c) => c.medianMs!);
        const full = {
          ...report,
          cold,
          peer: { native, fused },
          targets: targets(report, native, fused, gpuCold.length ? Math.min(...gpuCold) : null),
        };
        if (o.out) await writeFileAtomicSafe(o.out, `${JSON.stringify(full, null, 1)}\n`);
        if (o.json) process.stdout.write(`${JSON.stringify(full)}\n`);
        else {
          for (const v of report.variants)
            for (const r of v.rows)
              process.stdout.write(
                `${v.provider}${v.route === 'capi' ? ` capi ${JSON.stringify(v.capiOptions)}` : ''}\t${v.precision}\tb${r.batch}\t${r.stats.median.toFixed(2)} ms\t${r.msPerFace.toFixed(2)} ms/face\n`,
              );
          for (const [k, t] of Object.entries(full.targets))
            process.stdout.write(
              `${k}\tvalue ${t.value?.toFixed(3) ?? '—'}\tpeer ${t.peer?.toFixed(3) ?? '—'}\tratio ${t.ratio?.toFixed(2) ?? '—'}\n`,
            );
        }
      },
    );
}
