// Device probe (session 11): gpen-lab's FusedAct operator on CUDA. Writes its PTX to $OUT/act.ptx (ptxas checks it
// where the CUDA toolkit is installed), then runs synthetic GPEN-512 (fp32 and fp16) in the NHWC form with and
// without FusedAct through C API CUDA sessions (prefer_nhwc=1, with and without CUDA graphs) on the same inputs at
// batch 1 and 3, and prints how far apart the outputs are (PSNR over [-1, 1], max abs). Reads $DIST (default dist/).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const dist = pathToFileURL(path.resolve(process.env.DIST ?? 'dist')).href;
const { actPtx } = await import(`${dist}/runtime/act-ptx.js`);
const { synthesizeGpen } = await import(`${dist}/model/registry.js`);
const { CapiSession } = await import(`${dist}/runtime/capi.js`);
const OUT = process.env.OUT ?? '/tmp';
writeFileSync(path.join(OUT, 'act.ptx'), actPtx());
const part = process.argv[2] ?? 'outputs';

if (part === 'photo') {
  // Restorers one after another in this process (argv[3]: a JSON array of CUDA option sets; argv[4] false:
  // RestoreOptions.pipeline off), the Solvay photo argv[5] times each: s11a/s11b's photo runs aborted (CUDA error 717
  // after a graph replay) in a bench process's third route
  const { Restorer } = await import(`${dist}/face/restore.js`);
  for (const cudaOptions of JSON.parse(process.argv[3])) {
    const r = await Restorer.create({ model: { type: 'synthetic', size: 512 }, precision: 'fp16', provider: 'cuda', detectorProvider: 'cuda', batch: 32, outDir: '/tmp', write: false,
      pipeline: process.argv[4] !== 'false', session: { cudaOptions } });
    const times = [];
    for (let i = 0; i < Number(process.argv[5] ?? 12); i++) {
      const t = performance.now();
      const res = await r.restoreFile('assets/Solvay_conference_1927.png');
      times.push(Math.round(performance.now() - t));
      if (res.error) console.log(`photo ${i}: ${res.error.message}`);
      if (i === 0) console.log(JSON.stringify(cudaOptions), `chunks ${res.chunks ?? 0}`, Object.entries(res.stages_ms).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(' '));
    }
    console.log('  ms', times.join(' '));
    await r.release();
  }
  process.exit(0);
}

const S = 512, per = 3 * S * S;
const psnr = (a, b) => {
  let se = 0, worst = 0;
  for (let i = 0; i < a.length; i++) { const d = a[i] - b[i]; se += d * d; worst = Math.max(worst, Math.abs(d)); }
  return { db: 10 * Math.log10(4 / (se / a.length)), worst, finite: a.every(Number.isFinite) };
};
// QUICK=1: fp16 with CUDA graphs at batch 3 only
const quick = process.env.QUICK === '1';
for (const precision of quick ? ['fp16'] : ['fp32', 'fp16']) {
  const plain = synthesizeGpen(S, 7, precision, true, false).bytes;
  const fused = synthesizeGpen(S, 7, precision, true, true).bytes;
  for (const graphs of quick ? [true] : [false, true]) {
    const cuda = { prefer_nhwc: '1', cudnn_conv_algo_search: 'HEURISTIC', ...(graphs ? { enable_cuda_graph: '1' } : {}) };
    for (const b of quick ? [3] : [1, 3]) {
      const x = Float32Array.from({ length: b * per }, (_, i) => Math.sin(i * 0.37 + b) * 0.8);
      const outs = [];
      for (const [name, model] of [['plain', plain], ['fused', fused]]) {
        const s = CapiSession.create(model, { provider: 'cuda', cuda, gpenOps: name === 'fused' });
        try {
          if (graphs) {
            const bind = s.bindDevice([b, 3, S, S]);
            bind.upload(x);
            for (let i = 0; i < 3; i++) bind.run();
            const y = new Float32Array(b * per);
            bind.download(y);
            outs.push(y);
            bind.release();
          } else {
            s.run(x, [b, 3, S, S], b * per);
            outs.push(s.run(x, [b, 3, S, S], b * per));
          }
        } catch (e) {
          console.log(`${precision} graphs=${graphs} b${b} ${name} FAILED: ${e.message}`);
          outs.push(null);
        } finally {
          s.release();
        }
      }
      if (outs[0] && outs[1]) {
        const r = psnr(outs[1], outs[0]);
        console.log(`${precision} graphs=${graphs} b${b}: fused vs plain PSNR ${r.db.toFixed(1)} dB, max abs ${r.worst.toExponential(2)}, finite ${r.finite}`);
      }
    }
  }
}
