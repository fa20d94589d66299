// `gpen-lab demo`: the restoration pipeline (detect, align, GPEN, paste back) on the embedded default — a face cut
// from the Solvay 1927 photo (public domain) — with synthetic GPEN-512 and every stage timed. The README's first
// command runs it.
import { Command, Option } from 'commander';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Restorer } from '../face/restore.js';
import { PROVIDERS, parseProvider } from '../runtime/providers.js';
import { SYNTHETIC_WARNING, Steps, printJson, warn } from './output.js';
import { parseIntArg } from './model.js';

export const DEMO_FACE = fileURLToPath(new URL('../../assets/demo-face.png', import.meta.url));
export const DEMO_PHOTO = fileURLToPath(new URL('../../assets/Solvay_conference_1927.png', import.meta.url));

export function demoCommand(): Command {
  return new Command('demo')
    .description('restore the embedded demo face with synthetic GPEN (nothing downloaded) and time each stage')
    .option('-o, --out <dir>', 'output folder', 'gpen-lab-demo')
    .option('--size <n>', 'GPEN size', parseIntArg('--size'), 512)
    .option('--seed <s>', 'seed of the synthetic weights', parseIntArg('--seed'), 0)
    .option('--photo', 'the whole Solvay 1927 photo (29 faces) instead of one face: minutes on a CPU')
    .addOption(new Option('--provider <p>', 'execution provider').choices([...PROVIDERS]).default('cpu'))
    .option('--fp16', 'fp16 variant')
    .option('--json', 'machine-readable output: the RestoreResult plus model build and session times')
    .action(async (o: { out: string; size: number; seed: number; photo?: boolean; provider: string; fp16?: boolean; json?: boolean }) => {
      const provider = parseProvider(o.provider);
      const input = o.photo ? DEMO_PHOTO : DEMO_FACE;
      const steps = new Steps(2, o.json);
      steps.step(`building synthetic GPEN-${o.size} and the ${provider} session`);
      const t0 = performance.now();
      const restorer = await Restorer.create({ model: { type: 'synthetic', size: o.size, seed: o.seed }, precision: o.fp16 ? 'fp16' : 'fp32', provider, outDir: o.out });
      const setupMs = performance.now() - t0;
      steps.step(`restoring ${o.photo ? 'the Solvay photo' : 'the demo face'}`);
      let result;
      try {
        result = await restorer.restoreFile(input);
      } finally {
        steps.done();
        await restorer.release();
      }
      warn(SYNTHETIC_WARNING);
      if (o.json) {
        printJson({ ...result, setup_ms: setupMs });
      } else if (result.error) {
        process.stdout.write(`error [${result.error.code}] ${result.error.message}\n  fix: ${result.error.fix}\n`);
      } else {
        process.stdout.write(`GPEN-${o.size} (synthetic) on ${provider}; nodes ran on ${result.provider.ran?.join(', ') ?? '?'}; ${result.faces.length} face(s)\n`);
        process.stdout.write(`  ${'model+session'.padEnd(14)} ${setupMs.toFixed(0).padStart(6)} ms\n`);
        for (const [k, v] of Object.entries(result.stages_ms)) process.stdout.write(`  ${k.padEnd(14)} ${v.toFixed(0).padStart(6)} ms\n`);
        process.stdout.write(`wrote ${result.outputs.gpen} and ${result.outputs.comp}\n`);
      }
      if (result.error) process.exitCode = 3;
    });
}
