// Device probe (session 9): where the Solvay photo's warm time goes on the C API route (a CPU profile of the
// JavaScript thread over 10 warm photos, written to $OUT/main.cpuprofile, with each photo's stages), and what runs of
// changing batch size cost a stock-binding CUDA session (10, 9, ... and 4, 1, ...), the same through the C API's lean
// set (switch-capi), and the photo as the CLI restores it by default on CUDA (cli4: the stock binding, batch 4).
// Reads $DIST (default dist/, npm run build).
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const dist = pathToFileURL(path.resolve(process.env.DIST ?? 'dist')).href;
const { Restorer } = await import(`${dist}/face/restore.js`);
const { prepareModel } = await import(`${dist}/model/registry.js`);
const { ModelSession } = await import(`${dist}/runtime/session.js`);
const { openSession } = await import(`${dist}/runtime/capi-model.js`);

const OUT = process.env.OUT ?? '/tmp';
const PHOTO = 'assets/Solvay_conference_1927.png';
const part = process.argv[2] ?? 'all';

if (part === 'all' || part === 'profile') {
  // PROBE_CUDA_OPTIONS=k=v,... (session 12): the C API route's options (default enable_cuda_graph=1)
  const cudaOptions = Object.fromEntries((process.env.PROBE_CUDA_OPTIONS ?? 'enable_cuda_graph=1').split(',').map((kv) => kv.split('=')));
  const r = await Restorer.create({ model: { type: 'synthetic', size: 512 }, precision: 'fp16', provider: 'cuda', detectorProvider: 'cuda', batch: 32, outDir: '/tmp', write: false, session: { cudaOptions } });
  for (let i = 0; i < 3; i++) await r.restoreFile(PHOTO);
  const s = new Session();
  s.connect();
  await s.post('Profiler.enable');
  await s.post('Profiler.setSamplingInterval', { interval: 100 });
  await s.post('Profiler.start');
  for (let i = 0; i < 10; i++) {
    const t = performance.now();
    const res = await r.restoreFile(PHOTO);
    console.log(`photo ${(performance.now() - t).toFixed(0)} ms`, Object.entries(res.stages_ms).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', '));
  }
  const { profile } = await s.post('Profiler.stop');
  writeFileSync(`${OUT}/main.cpuprofile`, JSON.stringify(profile));
  s.disconnect();
  await r.release();
}

if (part === 'all' || part === 'switch' || part === 'switch-capi') {
  const prepared = await prepareModel({ type: 'synthetic', size: 512 }, 'fp16');
  const lean = { cudnn_conv_algo_search: 'HEURISTIC', arena_extend_strategy: 'kSameAsRequested', cudnn_conv_use_max_workspace: '0', mem_pattern: '0' };
  const m = part === 'switch-capi' ? await openSession(prepared.model, { provider: 'cuda', label: 'probe', cudaOptions: lean }) : await ModelSession.create(prepared.model, { provider: 'cuda', label: 'probe' });
  const x = new Float32Array(32 * 3 * 512 * 512).fill(0.1);
  const run = async (b) => {
    const t = performance.now();
    await m.run(x.subarray(0, b * 3 * 512 * 512), [b, 3, 512, 512]);
    return performance.now() - t;
  };
  for (const seq of [[32, 32, 32], [10, 10, 10], [10, 9, 10, 9, 10, 9], [4, 4, 4], [4, 1, 4, 1, 4, 1], [29, 29], [10, 10, 9, 10, 10, 9]]) {
    const ms = [];
    for (const b of seq) ms.push(await run(b));
    console.log(`${part === 'switch-capi' ? 'C API lean' : 'stock'} fp16 runs ${seq.join(',')}: ${ms.map((v) => v.toFixed(0)).join(', ')} ms`);
  }
  await m.release();
}

if (part === 'cli4') {
  // the CLI's defaults on CUDA: the stock binding, batch 4, the detector on the CPU (restore's default), 4 photos
  const r = await Restorer.create({ model: { type: 'synthetic', size: 512 }, precision: 'fp16', provider: 'cuda', batch: 4, outDir: '/tmp', write: false });
  for (let i = 0; i < 4; i++) {
    const t = performance.now();
    const res = await r.restoreFile(PHOTO);
    console.log(`${process.env.DIST ?? 'dist'} cli4 photo ${i} ${(performance.now() - t).toFixed(0)} ms`, Object.entries(res.stages_ms).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', '));
  }
  await r.release();
}

if (part === 'threads') {
  // the face workers' count (default: the cores but one, at most 8) on the C API route with CUDA graphs
  for (const faceThreads of [8, 12, 15, 8]) {
    const r = await Restorer.create({ model: { type: 'synthetic', size: 512 }, precision: 'fp16', provider: 'cuda', detectorProvider: 'cuda', batch: 32, faceThreads, outDir: '/tmp', write: false, session: { cudaOptions: { enable_cuda_graph: '1' } } });
    for (let i = 0; i < 2; i++) await r.restoreFile(PHOTO);
    const totals = [];
    const stages = {};
    for (let i = 0; i < 7; i++) {
      const t = performance.now();
      const res = await r.restoreFile(PHOTO);
      totals.push(performance.now() - t);
      for (const [k, v] of Object.entries(res.stages_ms)) (stages[k] ??= []).push(v);
    }
    await r.release();
    const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    console.log(`faceThreads ${faceThreads}: ${med(totals).toFixed(0)} ms (${Object.entries(stages).map(([k, xs]) => `${k} ${med(xs).toFixed(0)}`).join(', ')})`);
  }
}
