import { prepareModel } from './src/model/registry.js';
import { CapiSession } from './src/runtime/capi.js';
import { readNpy } from './src/io/npy.js';
import { fixture, fixtureConfig, maxAbsDiff } from './test/fixtures.js';
import { psnrFloat } from './src/metrics/quality.js';
for (const name of ['gpen-tiny-64', 'gpen-128']) {
  const cfg = fixtureConfig(name);
  for (const precision of ['fp32', 'fp16'] as const) {
    const p = await prepareModel({ type: 'file', file: fixture(`${name}.pth`) }, precision, { nhwc: true, fusedAct: true });
    const t0 = performance.now();
    const s = CapiSession.create(p.model, { provider: 'cpu', gpenOps: true });
    const ins = await Promise.all(cfg.cases.map((c) => readNpy(fixture(c.input))));
    const refs = await Promise.all(cfg.cases.map((c) => readNpy(fixture(c.output))));
    const per = 3 * cfg.size * cfg.size;
    const x = new Float32Array(per * ins.length);
    ins.forEach((t, i) => x.set(t.data as Float32Array, i * per));
    const out = s.run(x, [ins.length, 3, cfg.size, cfg.size], x.length);
    refs.forEach((r, i) => console.log(name, precision, 'maxabs', maxAbsDiff(out.subarray(i * per, (i + 1) * per), r.data as Float32Array), 'psnr', psnrFloat(out.subarray(i * per, (i + 1) * per), r.data as Float32Array, 2).toFixed(1)));
    console.log('ms', (performance.now() - t0).toFixed(0));
    s.release();
  }
}
