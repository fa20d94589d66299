// One run of a lab cell, in its own process: the runtime module loaded, the session created on the cell's provider and route,
// the inputs restored and written, the output decoded back, then (in the cell's last process) the warm runs. Each step
// prints one `@@lab {json}` line on stdout, so the parent knows the stage reached even when this process crashes,
// hangs or is killed. ONNX Runtime's own log goes to stderr, whose tail the parent keeps.
const readyAt = Date.now();
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { CellJob } from './types.js';
import { toGpenLabError } from '../errors.js';

const emit = (ev: Record<string, unknown>) => process.stdout.write(`@@lab ${JSON.stringify(ev)}\n`);
emit({ ev: 'ready', at: readyAt, pid: process.pid });

let stage = 'startup';
try {
  const job = JSON.parse(readFileSync(process.argv[2], 'utf8')) as CellJob;
  let t = performance.now();
  // the cell's build claimed first: with another than onnxruntime-node's, nothing may load the stock binding
  if (job.runtime) (await import('../runtime/process-build.js')).claimBuild(job.runtime);
  const { knownProviders, runtimeVersion } = await import('../runtime/session.js');
  const { Restorer } = await import('../face/restore.js');
  const { decodeImage } = await import('../io/image.js');
  emit({
    ev: 'module',
    ms: performance.now() - t,
    runtime: runtimeVersion(),
    providers: knownProviders().map((p) => p.provider),
  });

  stage = 'inference';
  t = performance.now();
  // the cell's own provider (never auto), its route, and the workload its inputs make: one image a cold start
  const create = (workload: 'single' | 'batch') =>
    Restorer.create({
      model: job.model,
      precision: job.precision,
      provider: job.provider,
      overwrite: true,
      route: job.route,
      ...(job.runtime ? { runtime: job.runtime } : {}),
      workload,
      batch: job.batch,
      outDir: job.outDir,
      session: job.session,
      ...(job.aligned ? { aligned: true } : {}),
      // lossless outputs whatever the input's format: the cells' outputs are compared by PSNR/SSIM
      ext: '.png',
    });
  const restorer = await create(job.inputs.length === 1 ? 'single' : 'batch');
  emit({ ev: 'session', ms: performance.now() - t, parts: restorer.createMs });

  t = performance.now();
  const results = await restorer.restoreFiles(job.inputs);
  emit({ ev: 'restore', ms: performance.now() - t, results });
  const failed = results.find((r) => r.error);
  if (failed?.error) {
    emit({ ev: 'error', stage, code: failed.error.code, message: failed.error.message, fix: failed.error.fix });
    process.exit(3);
  }

  stage = 'output';
  const files: { file: string; width: number; height: number }[] = [];
  for (const r of results) {
    if (!r.outputs.gpen) throw new Error(`${r.input}: no output was written`);
    const img = await decodeImage(r.outputs.gpen);
    files.push({ file: r.outputs.gpen, width: img.width, height: img.height });
  }
  emit({ ev: 'output', files });

  stage = 'warm';
  // the steady state is what restoring a folder gets: where that workload takes other options than this one (CUDA's
  // fast route: the warm set), a session of its own, its first run a warm-up that is not counted
  let warm = restorer;
  if (job.warmRuns > 0 && restorer.choice.set === 'cold') {
    await restorer.release();
    warm = await create('batch');
    const rs = await warm.restoreFiles(job.inputs);
    const err = rs.find((r) => r.error)?.error;
    if (err) throw new Error(`the warm set's first run: ${err.message}`);
    emit({ ev: 'warm-session', route: warm.choice });
  }
  for (let i = 0; i < job.warmRuns; i++) {
    t = performance.now();
    const rs = await warm.restoreFiles(job.inputs);
    const ms = performance.now() - t;
    const err = rs.find((r) => r.error)?.error;
    if (err) throw new Error(`warm run ${i + 1}: ${err.message}`);
    emit({ ev: 'warm', i, ms, stages: rs.map((r) => r.stages_ms) });
  }
  emit({ ev: 'done', maxRssMiB: process.resourceUsage().maxRSS / 1024 });
  process.exit(0);
} catch (e) {
  const x = toGpenLabError(e);
  emit({ ev: 'error', stage, code: x.code, message: x.message, fix: x.fix });
  process.exit(3);
}
