// `gpen-lab demo`: a real GPEN run on the embedded default — synthetic GPEN-512 on a face cut from the Solvay 1927
// photo (public domain), with every stage timed. The README's first command runs it.
import { Command, Option } from 'commander';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { readRgb, rgbToTensor, tensorToRgb, writeRgb } from '../io/image.js';
import type { RgbImage } from '../io/image.js';
import { prepareModel } from '../model/registry.js';
import { PROVIDERS, parseProvider } from '../runtime/providers.js';
import { ModelSession } from '../runtime/session.js';
import { SYNTHETIC_WARNING, Steps, printJson, warn } from './output.js';
import { parseIntArg } from './model.js';

export const DEMO_FACE = fileURLToPath(new URL('../../assets/demo-face.png', import.meta.url));

function sideBySide(a: RgbImage, b: RgbImage): RgbImage {
  const w = a.width + b.width;
  const data = new Uint8Array(w * a.height * 3);
  for (let y = 0; y < a.height; y++) {
    data.set(a.data.subarray(y * a.width * 3, (y + 1) * a.width * 3), y * w * 3);
    data.set(b.data.subarray(y * b.width * 3, (y + 1) * b.width * 3), (y * w + a.width) * 3);
  }
  return { width: w, height: a.height, data };
}

export function demoCommand(): Command {
  return new Command('demo')
    .description('run GPEN (synthetic weights, nothing downloaded) on the embedded demo face and time each stage')
    .option('-o, --out <dir>', 'output folder', 'gpen-lab-demo')
    .option('--size <n>', 'GPEN size', parseIntArg('--size'), 512)
    .option('--seed <s>', 'seed of the synthetic weights', parseIntArg('--seed'), 0)
    .addOption(new Option('--provider <p>', 'execution provider').choices([...PROVIDERS]).default('cpu'))
    .option('--fp16', 'fp16 variant')
    .option('--json', 'machine-readable output')
    .action(async (o: { out: string; size: number; seed: number; provider: string; fp16?: boolean; json?: boolean }) => {
      const provider = parseProvider(o.provider);
      const steps = new Steps(4, o.json);
      const ms: Record<string, number> = {};
      let t = performance.now();
      const lap = (k: string) => { const n = performance.now(); ms[k] = n - t; t = n; };
      steps.step(`building synthetic GPEN-${o.size}`);
      const prepared = await prepareModel({ type: 'synthetic', size: o.size, seed: o.seed }, o.fp16 ? 'fp16' : 'fp32');
      lap('buildGraph');
      steps.step(`creating the ${provider} session`);
      const session = await ModelSession.create(prepared.model, { provider, label: prepared.label });
      lap('sessionCreate');
      steps.step('restoring the demo face');
      const face = await readRgb(DEMO_FACE, o.size);
      lap('decode');
      const r = await session.run(rgbToTensor(face), [1, 3, o.size, o.size]);
      lap('infer');
      steps.step(`writing ${o.out}`);
      const restored = tensorToRgb(r.data, o.size, o.size);
      const tag = `gpen-lab demo: ${prepared.label}; ${SYNTHETIC_WARNING}`;
      const outFile = path.join(o.out, 'demo-face_GPEN.png');
      const compFile = path.join(o.out, 'demo-face_COMP.png');
      await writeRgb(outFile, restored, tag);
      await writeRgb(compFile, sideBySide(face, restored), tag);
      lap('write');
      steps.done();
      const placement = session.placement;
      await session.release();
      warn(SYNTHETIC_WARNING);
      const result = { model: prepared.info, provider: { asked: provider, ran: placement?.ran ?? null, nodesByProvider: placement?.nodesByProvider ?? null }, outputs: [outFile, compFile], ms, synthetic: true };
      if (o.json) printJson(result);
      else {
        process.stdout.write(`GPEN-${o.size} (${prepared.info.params.toLocaleString('en-US')} params, synthetic) on ${provider}; nodes ran on ${placement?.ran.join(', ') ?? '?'}\n`);
        for (const [k, v] of Object.entries(ms)) process.stdout.write(`  ${k.padEnd(14)} ${v.toFixed(0).padStart(6)} ms\n`);
        process.stdout.write(`wrote ${outFile} and ${compFile}\n`);
      }
    });
}
