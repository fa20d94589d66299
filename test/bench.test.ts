// gpen-lab bench: a real run on the identity model (every field filled, fp16 agreement measured), and the P1-P5
// targets computed from a bench report and the peer's two JSONs as the GPU-speed issue defines them.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BenchReport, PeerReport } from '../src/lab/bench.js';
import { isolatedResult, runBench, targets } from '../src/lab/bench.js';
import { timingStats } from '../src/metrics/stats.js';
import { fixture } from './fixtures.js';

describe('gpen-lab bench', () => {
  it('times sessions, first runs and each batch size, and the whole pipeline on a photo', async () => {
    const r = await runBench({
      model: { type: 'identity', size: 64 },
      providers: ['cpu'],
      precisions: ['fp32'],
      batches: [1, 3],
      runs: 5,
      warmup: 1,
      photo: 'assets/demo-face.png',
      e2eRuns: 2,
    });
    assert.equal(r.schema, 'gpen-lab.bench/1');
    const v = r.variants[0];
    assert.equal(v.ok, true, v.error ?? '');
    assert.deepEqual(v.ran, ['cpu']);
    assert.deepEqual(
      v.rows.map((x) => [x.batch, x.stats.runs]),
      [
        [1, 5],
        [3, 5],
      ],
    );
    assert.ok(v.rows.every((x) => x.msPerFace > 0 && Math.abs(x.msPerFace - x.stats.median / x.batch) < 1e-9));
    assert.ok(v.sessionMs > 0 && v.firstRunMs > 0);
    assert.equal(v.e2e?.faces, 1);
    assert.equal(v.e2e?.stats.runs, 2);
    assert.ok(v.e2e!.stagesMedianMs.detect > 0);
  });

  it('a batch size that fails is recorded with its error and the other sizes still run (a fixed-batch export at batch 2)', async () => {
    const r = await runBench({
      model: { type: 'file', file: fixture('gpen-tiny-64.upstream.onnx') },
      providers: ['cpu'],
      precisions: ['fp32'],
      batches: [2, 1],
      runs: 3,
      warmup: 1,
    });
    const v = r.variants[0];
    assert.equal(v.ok, true, v.error ?? '');
    assert.deepEqual(
      v.rows.map((x) => x.batch),
      [1],
    );
    assert.equal(v.failedBatches?.length, 1);
    assert.equal(v.failedBatches![0].batch, 2);
    assert.match(v.failedBatches![0].error, /E_INFERENCE|Inference failed|dimension|Got: 2/i);
  });

  it('--cold times the cold starts after a first one per route, which is reported apart (it writes the caches)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gpen-bench-cold-'));
    try {
      const out = path.join(dir, 'b.json');
      const code = await new Promise<number>((resolve) => {
        execFile(
          process.execPath,
          [
            '--import',
            'tsx',
            'src/cli/index.ts',
            'bench',
            '--model',
            fixture('gpen-tiny-64.upstream.onnx'),
            '--provider',
            'cpu',
            '--precision',
            'fp32',
            '--batch',
            '1',
            '--runs',
            '2',
            '--warmup',
            '0',
            '--cold',
            '2',
            '--out',
            out,
          ],
          { env: { ...process.env, TMPDIR: dir }, timeout: 120_000 },
          (err) => resolve(err ? Number(err.code ?? -1) : 0),
        );
      });
      assert.equal(code, 0);
      const r = JSON.parse(readFileSync(out, 'utf8')) as {
        cold: {
          firstRun: { ms: number } | null;
          runs: { ms: number; beforeOriginMs: number; afterResultMs: number; startup: { first_result_at: number } }[];
          medianMs: number;
        }[];
        targets: { P3: { value: number } };
      };
      assert.equal(r.cold.length, 1);
      const c = r.cold[0];
      assert.ok(c.firstRun && c.firstRun.ms > 0);
      assert.equal(c.runs.length, 2);
      const ms = c.runs.map((x) => x.ms).sort((a, b) => a - b);
      assert.ok(Math.abs(c.medianMs - (ms[0] + ms[1]) / 2) < 1e-9);
      // each run split: before the child's clock, the child's own time to its result, the line on its way
      for (const x of c.runs) {
        assert.ok(
          x.beforeOriginMs > 0 && x.beforeOriginMs < x.ms,
          `before the child's clock: ${x.beforeOriginMs} of ${x.ms} ms`,
        );
        assert.ok(Math.abs(x.beforeOriginMs + x.startup.first_result_at + x.afterResultMs - x.ms) < 1e-6);
        assert.ok(x.afterResultMs > -5 && x.afterResultMs < 1000, `after the result: ${x.afterResultMs} ms`);
      }
      // P3 is a GPU figure: CPU cold starts do not set it
      assert.equal(r.targets.P3.value, null);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('computes P1-P5 against the faster peer variant', () => {
    const row = (batch: number, ms: number) => ({
      provider: 'cuda' as const,
      precision: 'fp16' as const,
      batch,
      stats: timingStats([ms, ms, ms]),
      msPerFace: ms / batch,
      gpuProcessPeakMiB: null,
    });
    const b: BenchReport = {
      schema: 'gpen-lab.bench/1',
      date: '',
      runtime: '1.29.0',
      gpu: { name: 'H200', driver: '580', cuda: '13.0' },
      model: 'synthetic',
      variants: [
        {
          provider: 'cuda',
          precision: 'fp16',
          ok: true,
          error: null,
          ran: ['cuda'],
          prepareMs: 0,
          sessionMs: 0,
          firstRunMs: 0,
          contextMiB: 500,
          batch1ProcessMiB: 500 + 476.837158203125,
          rows: [row(1, 8), row(16, 32)],
          agreement: { vsFp32Psnr: 50, vsPeerPsnr: null, vsPeerMaxAbs: null },
          e2e: { photo: 'x', faces: 29, stats: timingStats([140, 150, 160]), stagesMedianMs: {} },
        },
      ],
    };
    const peer = (b1: number, best: number, gb: number): PeerReport => ({
      fused_ops: false,
      rows: [
        { dtype: 'float16', batch: 1, median_ms: b1, ms_per_face: b1, peak_gb: gb },
        { dtype: 'float16', batch: 16, median_ms: best * 16, ms_per_face: best, peak_gb: 2 },
      ],
    });
    const t = targets(b, peer(18.3, 5.39, 0.99), { ...peer(16.1, 3.49, 0.45), fused_ops: true }, 900);
    assert.deepEqual([t.P1.value, t.P1.peer_native, t.P1.peer_fused, t.P1.peer], [8, 18.3, 16.1, 16.1]);
    assert.ok(Math.abs(t.P1.ratio! - 8 / 16.1) < 1e-12);
    assert.deepEqual([t.P2.value, t.P2.peer], [2, 3.49]);
    assert.deepEqual([t.P3.value, t.P3.peer, t.P3.ratio], [900, null, null]);
    assert.equal(t.P4.value, 150);
    // GB as the peer counts them (1e9 bytes): 476.837... MiB beyond the context are 0.5 GB
    assert.ok(Math.abs(t.P5.value! - 0.5) < 1e-12, String(t.P5.value));
    assert.equal(t.P5.peer, 0.45);
    // P5 is the leanest fp16 CUDA variant, whichever route; the best end to end of every detector set
    const lean = {
      ...b.variants[0],
      route: 'capi' as const,
      capiOptions: { mem_pattern: '0' },
      batch1ProcessMiB: 500 + 256,
      e2e: null,
    };
    const t2 = targets({ ...b, variants: [...b.variants, lean] }, null, null, null);
    assert.equal(t2.P5.value, (256 * 2 ** 20) / 1e9);
    assert.equal(t2.P4.value, 150);
  });

  it('--isolate measures each C API variant in a process of its own and passes its progress lines on', async () => {
    // on a machine without CUDA each child fails inside capiVariant: its error comes back from the child's file
    const lines: string[] = [];
    const r = await runBench({
      model: { type: 'identity', size: 64 },
      providers: [],
      precisions: ['fp32', 'fp16'],
      batches: [1],
      runs: 2,
      warmup: 0,
      capiCuda: [{ enable_cuda_graph: '1' }],
      isolate: true,
      onProgress: (l) => lines.push(l),
    });
    assert.deepEqual(
      r.variants.map((v) => [v.route, v.precision, v.isolated]),
      [
        ['capi', 'fp32', true],
        ['capi', 'fp16', true],
      ],
    );
    for (const v of r.variants) {
      assert.deepEqual(v.capiOptions, { enable_cuda_graph: '1' });
      if (v.ok) continue; // a machine with CUDA: the variant ran
      assert.match(v.error ?? '', /cuda/i);
      assert.doesNotMatch(v.error ?? '', /variant's process/);
    }
    assert.ok(
      lines.some((l) => l.startsWith('cuda (C API enable_cuda_graph=1) fp16')),
      lines.join('\n'),
    );
    // eslint-disable-next-line no-control-regex
    assert.ok(lines.every((l) => !/\x1b\[/.test(l)));
  });

  it('an isolated variant still running after its time limit is killed and recorded so', async () => {
    const r = await runBench({
      model: { type: 'identity', size: 64 },
      providers: [],
      precisions: ['fp32'],
      batches: [1],
      runs: 2,
      warmup: 0,
      capiCuda: [{ enable_cuda_graph: '1' }],
      isolate: true,
      isolateTimeoutMs: 50,
    });
    assert.equal(r.variants.length, 1);
    assert.equal(r.variants[0].ok, false);
    assert.match(r.variants[0].error ?? '', /was still running after 0\.05 s and was killed/);
  });

  it('an isolated variant whose process dies without a result is a failed variant saying how it ended', () => {
    const opts = { enable_cuda_graph: '1', 'arena.max_dead_bytes_per_chunk': '0' };
    const crashed = isolatedResult(null, opts, 'fp16', {
      code: null,
      signal: 'SIGSEGV',
      stderrTail: 'cuda (C API) fp16: session 0.4 s\n\x1b[1;31mW:onnxruntime noise\x1b[m\nSegmentation fault\n',
    });
    assert.equal(crashed.ok, false);
    assert.equal(crashed.isolated, true);
    assert.deepEqual(crashed.capiOptions, opts);
    assert.equal(crashed.precision, 'fp16');
    assert.match(
      crashed.error!,
      /was killed by SIGSEGV before writing its result \(last lines: cuda \(C API\) fp16: session 0\.4 s \| Segmentation fault\)/,
    );
    assert.equal(crashed.batch1ProcessMiB, null);
    assert.match(
      isolatedResult('{"provider":"cu', opts, 'fp32', { code: 0, signal: null, stderrTail: '' }).error!,
      /exited with code 0 and its result could not be read$/,
    );
    assert.match(
      isolatedResult(null, opts, 'fp32', {
        code: null,
        signal: null,
        stderrTail: '',
        spawnError: 'could not start (ENOENT)',
      }).error!,
      /process could not start \(ENOENT\)/,
    );
    assert.match(
      isolatedResult(null, opts, 'fp16', { code: null, signal: 'SIGKILL', stderrTail: '', timedOutMs: 1200000 }).error!,
      /was still running after 1200 s and was killed before writing its result$/,
    );
    const written = isolatedResult(
      JSON.stringify({
        provider: 'cuda',
        route: 'capi',
        precision: 'fp16',
        ok: true,
        batch1ProcessMiB: 1224,
        contextMiB: 668,
      }),
      opts,
      'fp16',
      { code: 0, signal: null, stderrTail: '' },
    );
    assert.equal(written.ok, true);
    assert.equal(written.isolated, true);
    assert.equal(written.batch1ProcessMiB, 1224);
  });
});
