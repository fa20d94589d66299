// Device probe (session 13): how long a spawned node takes to reach its own clock (performance.timeOrigin), from a
// fresh process and from one holding a CUDA context with a GPEN session (as gpen-lab bench is when it starts its cold
// runs): fork cost grows with the parent's mappings. Reads $DIST (default dist/).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const dist = pathToFileURL(path.resolve(process.env.DIST ?? 'dist')).href;
async function spawns(tag) {
  const xs = [];
  for (let i = 0; i < 6; i++) {
    const t0 = performance.timeOrigin + performance.now();
    xs.push(await new Promise((res) => {
      const c = spawn(process.execPath, ['-e', 'process.stdout.write(JSON.stringify([performance.timeOrigin, performance.now()])+"\\n")'], { stdio: ['ignore', 'pipe', 'pipe'] });
      c.stdout.on('data', (d) => { const [o, n] = JSON.parse(d.toString()); res([o - t0, n, performance.timeOrigin + performance.now() - t0]); });
    }));
  }
  console.log(tag, 'before origin / child clock at print / parent total:', xs.map((x) => x.map((v) => v.toFixed(1)).join('/')).join('  '));
}
await spawns('fresh parent');
const { warmCuda } = await import(`${dist}/runtime/cuda-warm.js`);
await warmCuda();
await spawns('parent with a CUDA context');
const { Restorer } = await import(`${dist}/face/restore.js`);
const r = await Restorer.create({ model: { type: 'synthetic', size: 512 }, precision: 'fp16', provider: 'cuda', detectorProvider: 'cuda', batch: 32, outDir: '/tmp', write: false, session: { cudaOptions: { enable_cuda_graph: '1' } } });
await r.restoreFile('assets/Solvay_conference_1927.png');
await spawns('parent with a CUDA session that ran a photo');
await r.release();
