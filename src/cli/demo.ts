// `gpen-lab demo`: the restoration pipeline (detect, align, GPEN, paste back) on the embedded default — a face cut
// from the Solvay 1927 photo (public domain) — with synthetic GPEN-512 and every stage timed. The README's first
// command runs it.
import { Command } from 'commander';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { exitStatus } from '../errors.js';
import { Restorer } from '../face/restore.js';
import { PRECISIONS, PROVIDER_CHOICES, ROUTES, describeChoice, parseChoice } from '../runtime/routes.js';
import { SYNTHETIC_WARNING, Steps, info, printJson, warn } from './output.js';
import { parseIntArg } from './model.js';
import { sessionOptions } from './runtime-option.js';

export const DEMO_FACE = fileURLToPath(new URL('../../assets/demo-face.png', import.meta.url));
export const DEMO_PHOTO = fileURLToPath(new URL('../../assets/Solvay_conference_1927.png', import.meta.url));

export function demoCommand(): Command {
  const cmd = new Command('demo')
    .description('restore the embedded demo face with synthetic GPEN (nothing downloaded) and time each stage')
    .option('-o, --out <dir>', 'output folder', 'gpen-lab-demo')
    .option('--size <n>', 'GPEN size', parseIntArg('--size'), 512)
    .option('--seed <s>', 'seed of the synthetic weights', parseIntArg('--seed'), 0)
    .option('--photo', 'the whole Solvay 1927 photo (29 faces) instead of one face: minutes on a CPU');
  sessionOptions(cmd, {
    route: "fast: the measured-best binding and options; stock: onnxruntime-node's binding",
    precision: 'default: fp16 on a GPU, fp32 on the CPU',
    runtime: false,
  });
  return cmd
    .option('--json', 'machine-readable output: the RestoreResult plus model build and session times')
    .action(
      async (o: {
        out: string;
        size: number;
        seed: number;
        photo?: boolean;
        provider: string;
        route: string;
        precision?: string;
        json?: boolean;
      }) => {
        const provider = parseChoice(PROVIDER_CHOICES, o.provider, '--provider');
        const input = o.photo ? DEMO_PHOTO : DEMO_FACE;
        const steps = new Steps(2, o.json);
        steps.step(`building synthetic GPEN-${o.size} and its session (provider ${provider})`);
        const t0 = performance.now();
        const restorer = await Restorer.create({
          model: { type: 'synthetic', size: o.size, seed: o.seed },
          provider,
          route: parseChoice(ROUTES, o.route, '--route'),
          ...(o.precision !== undefined ? { precision: parseChoice(PRECISIONS, o.precision, '--precision') } : {}),
          outDir: o.out,
          // the demo shows the restoration beside its input
          outputs: ['gpen', 'comp'],
          // the whole photo on a CPU takes minutes: each batch of its faces says so
          onProgress: (p) => {
            if (p.done > 0 && p.done < p.faces)
              steps.status(`${p.done}/${p.faces} faces restored`, { fraction: p.done / p.faces, plain: true });
          },
        });
        const setupMs = performance.now() - t0;
        info(describeChoice(restorer.choice));
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
          process.stdout.write(
            `GPEN-${o.size} (synthetic) on ${restorer.choice.provider} (${restorer.choice.route} route, ${restorer.choice.precision}); nodes ran on ${result.provider.ran?.join(', ') ?? '?'}; ${result.faces.length} face(s)\n`,
          );
          process.stdout.write(`  ${'model+session'.padEnd(14)} ${setupMs.toFixed(0).padStart(6)} ms\n`);
          for (const [k, v] of Object.entries(result.stages_ms))
            process.stdout.write(`  ${k.padEnd(14)} ${v.toFixed(0).padStart(6)} ms\n`);
          process.stdout.write(`wrote ${result.outputs.gpen} and ${result.outputs.comp}\n`);
        }
        if (result.error) process.exitCode = exitStatus(result.error.code);
      },
    );
}
