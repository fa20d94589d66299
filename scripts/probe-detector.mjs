// Device probe (session 12): the Solvay photo end to end on the C API route (synthetic GPEN-512 fp16, the detector on
// CUDA) with the detector's batch (tiles and looks per run) given as argv[2]: 10 warm photos, the medians of the
// total and of each stage, and a digest of the faces found (the same at every batch). Reads $DIST (default dist/)
// and PROBE_CUDA_OPTIONS (default: CUDA graphs, NHWC, FusedAct).
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const dist = pathToFileURL(path.resolve(process.env.DIST ?? 'dist')).href;
const { Restorer } = await import(`${dist}/face/restore.js`);
const { createBlazeFace } = await import(`${dist}/face/blazeface.js`);
const batch = Number(process.argv[2] ?? 16);
if (process.argv[3] === 'runs') {
  // the detector's two models alone (their graphs as the detector caches them): ms per run at this batch for each CUDA
  // option set, and each set's largest output difference from the first
  const { capiDetectorSession } = await import(`${dist}/face/blazeface-capi.js`);
  const { readdirSync, readFileSync, statSync } = await import('node:fs');
  const { cacheDir } = await import(`${dist}/io/cache.js`);
  const dir = path.join(cacheDir(), 'detector');
  const sets = (process.env.PROBE_DETECTOR_SETS ?? 'cudnn_conv_algo_search=HEURISTIC;cudnn_conv_algo_search=EXHAUSTIVE;cudnn_conv_algo_search=HEURISTIC,prefer_nhwc=1;cudnn_conv_algo_search=EXHAUSTIVE,prefer_nhwc=1').split(';');
  for (const [model, size] of [['back', 256], ['front', 128]]) {
    // the newest of the model's cached graphs (the photo's runs before this one wrote it)
    const file = readdirSync(dir).filter((f) => f.includes(`_${model}_`)).sort((a, b) => statSync(path.join(dir, b)).mtimeMs - statSync(path.join(dir, a)).mtimeMs)[0];
    const bytes = readFileSync(path.join(dir, file));
    const x = new Uint8Array(batch * size * size * 3);
    for (let i = 0; i < x.length; i++) x[i] = (i * 2654435761) >>> 24;
    let first = null;
    for (const set of sets) {
      const cudaOptions = Object.fromEntries(set.split(',').map((kv) => kv.split('=')));
      const s = await capiDetectorSession(bytes, { provider: 'cuda', batch, label: model, cudaOptions });
      let out = null;
      for (let i = 0; i < 3; i++) out = (await s.runAll(x, [batch, size, size, 3])).outputs;
      const ts = [];
      for (let i = 0; i < 20; i++) { const t = performance.now(); const o = await s.runAll(x, [batch, size, size, 3]); ts.push(performance.now() - t); s.recycle(o.outputs); }
      const flat = Object.values(out).map((v) => Float32Array.from(v.data));
      let diff = 0;
      if (first) flat.forEach((a, j) => a.forEach((v, i) => { diff = Math.max(diff, Math.abs(v - first[j][i])); }));
      else first = flat;
      ts.sort((a, b) => a - b);
      console.log(`${model} batch ${batch} {${set}}: ${ts[10].toFixed(2)} ms a run (${ts[0].toFixed(2)}-${ts[19].toFixed(2)}), largest difference from the first set ${diff.toExponential(2)}`);
      await s.release();
    }
  }
  process.exit(0);
}
const cudaOptions = Object.fromEntries((process.env.PROBE_CUDA_OPTIONS ?? 'enable_cuda_graph=1,prefer_nhwc=1,fused_act=1').split(',').map((kv) => kv.split('=')));
const PHOTO = 'assets/Solvay_conference_1927.png';
let r = null;
// PROBE_DETECTOR_CUDA=k=v,...: the detector's CUDA options over its own
const detectorCuda = process.env.PROBE_DETECTOR_CUDA ? Object.fromEntries(process.env.PROBE_DETECTOR_CUDA.split(',').map((kv) => kv.split('='))) : undefined;
const detector = await createBlazeFace({ provider: 'cuda', capi: true, batch, inputWorkers: () => r?.workerPool() ?? null, ...(detectorCuda ? { cudaOptions: detectorCuda } : {}) });
r = await Restorer.create({ model: { type: 'synthetic', size: 512 }, precision: 'fp16', provider: 'cuda', detectorProvider: 'cuda', detector, batch: 32, outDir: '/tmp', write: false, session: { cudaOptions } });
for (let i = 0; i < 3; i++) await r.restoreFile(PHOTO);
const totals = [];
const stages = {};
let digest = '';
for (let i = 0; i < 10; i++) {
  const t = performance.now();
  const res = await r.restoreFile(PHOTO);
  totals.push(performance.now() - t);
  for (const [k, v] of Object.entries(res.stages_ms)) (stages[k] ??= []).push(v);
  digest = `${res.faces.length} faces, box sum ${res.faces.reduce((s, f) => s + f.box[0] + f.box[1] + f.box[2] + f.box[3], 0).toFixed(3)}`;
}
const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`${process.env.DIST ?? 'dist'} detector batch ${batch}${detectorCuda ? ` ${process.env.PROBE_DETECTOR_CUDA}` : ''}: photo ${med(totals).toFixed(0)} ms (${Math.min(...totals).toFixed(0)}-${Math.max(...totals).toFixed(0)}); ${Object.entries(stages).map(([k, v]) => `${k} ${med(v).toFixed(1)}`).join(', ')}; ${digest}`);
await r.release();
await detector.release();
process.exit(0);
