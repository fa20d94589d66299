// One benchmark task in a fresh process, so that its peak RSS is its own. Prints one JSON line.
import { performance } from 'node:perf_hooks';
import { convertPth, synthesizeGpen } from '../src/model/registry.js';
import { ModelSession } from '../src/runtime/session.js';
import { rng, fillNormal } from '../src/model/synth.js';

const [task, ...args] = process.argv.slice(2);
const maxRssMb = () => process.resourceUsage().maxRSS / 1024;

async function main(): Promise<unknown> {
  if (task === 'build-synthetic') {
    const [size, precision] = [Number(args[0]), args[1] as 'fp32' | 'fp16'];
    const t0 = performance.now();
    const { bytes } = synthesizeGpen(size, 0, precision);
    return { ms: performance.now() - t0, bytes: bytes.length, maxRssMb: maxRssMb() };
  }
  if (task === 'build-pth') {
    const [file, out, precision] = [args[0], args[1], args[2] as 'fp32' | 'fp16'];
    const t0 = performance.now();
    const info = await convertPth(file, out, { precision });
    return { ms: performance.now() - t0, params: info.params, maxRssMb: maxRssMb() };
  }
  if (task === 'cpu-run') {
    const [model, size, runs] = [args[0], Number(args[1]), Number(args[2])];
    const t0 = performance.now();
    const s = await ModelSession.create(model, { provider: 'cpu', recordPlacement: false });
    const createMs = performance.now() - t0;
    const x = fillNormal(new Float32Array(3 * size * size), rng(1), 0.5);
    const first = (await s.run(x, [1, 3, size, size])).ms;
    const times: number[] = [];
    for (let i = 0; i < runs; i++) times.push((await s.run(x, [1, 3, size, size])).ms);
    await s.release();
    return { createMs, firstRunMs: first, times, maxRssMb: maxRssMb() };
  }
  throw new Error(`unknown task ${task}`);
}

process.stdout.write(JSON.stringify(await main()) + '\n');
