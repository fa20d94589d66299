// `gpen-lab restore`: the job users come for, on files and folders. `detect` (detect.ts) is exported here too: the
// command line loads both from this module.
import { Command, Option } from 'commander';
import path from 'node:path';
import { GpenLabError, checkList, exitStatus } from '../errors.js';
import { parseCudaOptions } from '../runtime/capi-model.js';
import type { WarmReport } from '../runtime/cuda-warm.js';
import { cudaWarmup } from '../runtime/cuda-warm.js';
import type { OutputKind, RestoreResult } from '../face/restore.js';
import { OUTPUT_KINDS, Restorer, SYNTHETIC_NOTE, checkAlpha } from '../face/restore.js';
import { OUTPUT_EXTS } from '../io/image.js';
import type { OutputExt } from '../io/image.js';
import { PROVIDERS, parseProvider } from '../runtime/providers.js';
import { PRECISIONS, PROVIDER_CHOICES, ROUTES, describeChoice, parseChoice } from '../runtime/routes.js';
import { marks } from '../runtime/marks.js';
import { expandInputs } from './inputs.js';
import type { SessionFlags } from './runtime-option.js';
import { sessionOptions } from './runtime-option.js';
import type { ModelSourceFlags } from './model-options.js';
import { modelSourceOptions, modelSpec } from './model-options.js';
import { parseIntArg } from './model.js';
import { Steps, asCliError, info, printJson, warn } from './output.js';

export { detectCommand } from './detect.js';

/** `--outputs gpen,comp,faces`: which files each image gets. */
export function parseOutputs(v: string): OutputKind[] {
  const kinds = checkList(
    '--outputs',
    v.toLowerCase(),
    OUTPUT_KINDS,
    "Pass --outputs gpen (the restored photo, the default), gpen,comp (and the side-by-side comparison) or gpen,comp,faces (and each face's crop pair).",
  );
  return OUTPUT_KINDS.filter((k) => kinds.includes(k));
}

/** How an image's faces read in a line: "1 aligned face" with --aligned (the input is the face), else the count found. */
function facesText(r: RestoreResult, aligned: boolean): string {
  if (aligned) return '1 aligned face';
  return `${r.faces.length} face${r.faces.length === 1 ? '' : 's'}`;
}

export function restoreCommand(): Command {
  const cmd = new Command('restore')
    .description(
      "restore the faces in photos: detect, align, GPEN, paste back; writes NAME_GPEN in the input's format (and, asked for, NAME_COMP, NAME_faceNN)",
    )
    .argument('<input...>', 'image files or folders')
    .requiredOption('-o, --out <dir>', 'output folder');
  modelSourceOptions(cmd, 'seeded synthetic GPEN of this size (for measuring only: the faces become noise)');
  sessionOptions(cmd, {
    route:
      "fast: the measured-best binding and options for the provider; stock: onnxruntime-node's binding (the baseline)",
    precision: 'for a .pth or --synthetic (default: fp16 on a GPU, fp32 on the CPU; an .onnx runs in its own)',
  });
  return (
    cmd
      .option('--alpha <a>', 'blend of restored (1) and original (0) face', (v: string) => checkAlpha(v), 1)
      .option('--aligned', 'inputs are square aligned faces: GAN only')
      .addOption(
        new Option(
          '--outputs <list>',
          'files per image, comma-separated: gpen (NAME_GPEN, the restored photo), comp (NAME_COMP, input and result side by side), faces (NAME_faceNN, each aligned crop and its restoration)',
        )
          .argParser(parseOutputs)
          .default(['gpen'], 'gpen'),
      )
      // removed, and refused with the fix (--outputs gpen,comp,faces writes what it wrote)
      .addOption(new Option('--save-face').hideHelp())
      .addOption(
        new Option(
          '--ext <ext>',
          "output format (default: the input's: JPEG at quality 92, PNG, WebP; others PNG)",
        ).choices([...OUTPUT_EXTS]),
      )
      .option(
        '--batch <n>',
        'faces per inference (default: 32 on the CUDA fast route, 8 through the stock binding and on WebGPU, 4 on the CPU)',
        parseIntArg('--batch'),
      )
      .option('--max-pixels <n>', 'refuse images larger than this (decompression bombs)', parseIntArg('--max-pixels'))
      .addOption(
        new Option(
          '--detector-provider <p>',
          'where the face detector runs (default: CUDA beside the fast route for several images, else the CPU)',
        ).choices([...PROVIDERS]),
      )
      .option(
        '--cuda-options <k=v,...>',
        "for experts: CUDA provider options by ONNX Runtime's names and gpen-lab's session keys, replacing the fast route's set (docs/routes.md)",
        (v: string) => parseCudaOptions(v),
      )
      .option(
        '--face-threads <n>',
        'worker threads that warp and paste the faces of photos with 4 or more (default: the cores but one, 2 to 16; 0: none)',
        parseIntArg('--face-threads'),
      )
      .option(
        '--overwrite',
        'replace output files that are already there (without it such an image fails with E_OUTPUT_EXISTS)',
      )
      .option(
        '--json',
        'one RestoreResult per image, a JSON object per line (progress stays on stderr, on a terminal only)',
      )
      .action(
        async (
          inputs: string[],
          o: ModelSourceFlags &
            SessionFlags & {
              out: string;
              alpha: number;
              aligned?: boolean;
              outputs: OutputKind[];
              saveFace?: boolean;
              overwrite?: boolean;
              ext?: OutputExt;
              batch?: number;
              maxPixels?: number;
              json?: boolean;
              cudaOptions?: Record<string, string>;
              detectorProvider?: string;
              faceThreads?: number;
            },
        ) => {
          // time since the process started, to here: node's own start and the modules loaded (a cold start's first part)
          const startMs = performance.now();
          // the CUDA warm-up the CLI started first thing (src/cli/warm-start.ts), reported with the first result
          let warmup: WarmReport | { running: true } | null = cudaWarmup() ? { running: true } : null;
          void cudaWarmup()?.then((r) => {
            warmup = r;
          });
          if (o.saveFace) {
            throw new GpenLabError(
              'E_ARGUMENT',
              '--save-face was removed: the outputs are chosen with --outputs',
              'Pass --outputs gpen,comp,faces for what restore --save-face wrote, or --outputs gpen,faces without the side-by-side NAME_COMP (no longer written by default).',
              { input: '--save-face' },
            );
          }
          if (o.model === undefined && o.synthetic === undefined) {
            throw new GpenLabError(
              'E_ARGUMENT',
              'restore needs GPEN weights and none were given',
              'Pass --model FILE (the official GPEN-BFR-512.pth or a GPEN .onnx) to restore faces, or --synthetic 512 to measure the pipeline with seeded random weights (its faces are noise).',
              { input: '--model' },
            );
          }
          if (o.model !== undefined && o.synthetic !== undefined) {
            throw new GpenLabError(
              'E_ARGUMENT',
              'restore was given both --model and --synthetic',
              'Pass one of them.',
              { input: '--model' },
            );
          }
          const spec = modelSpec(o);
          // the inputs first: a path that is wrong is said before the model is built
          const { files, skipped } = await expandInputs(inputs);
          if (skipped > 0)
            info(
              `left out ${skipped} file(s) named like restore's outputs (NAME_GPEN, NAME_COMP, NAME_faceNN) in the input folder(s)`,
            );
          const steps = new Steps(files.length, o.json);
          const name = (f: string) => path.basename(f);
          steps.status('preparing the model and its session');
          let restorer: Restorer;
          try {
            restorer = await Restorer.create({
              model: spec,
              provider: parseChoice(PROVIDER_CHOICES, o.provider, '--provider'),
              route: parseChoice(ROUTES, o.route, '--route'),
              ...(o.runtime !== undefined ? { runtime: o.runtime } : {}),
              ...(o.precision !== undefined ? { precision: parseChoice(PRECISIONS, o.precision, '--precision') } : {}),
              // one image is a cold start; several take the set fastest per image
              workload: files.length === 1 ? 'single' : 'batch',
              alpha: o.alpha,
              aligned: !!o.aligned,
              outputs: o.outputs,
              overwrite: !!o.overwrite,
              outDir: o.out,
              ...(o.ext !== undefined ? { ext: o.ext } : {}),
              ...(o.batch !== undefined ? { batch: o.batch } : {}),
              ...(o.maxPixels !== undefined ? { maxPixels: o.maxPixels } : {}),
              ...(o.cudaOptions ? { session: { cudaOptions: o.cudaOptions } } : {}),
              ...(o.detectorProvider !== undefined
                ? { detectorProvider: parseProvider(o.detectorProvider, '--detector-provider') }
                : {}),
              ...(o.faceThreads !== undefined ? { faceThreads: o.faceThreads } : {}),
              // inside an image: its faces found, then each batch of them restored (the Solvay photo on a CPU: a minute)
              onProgress: (p) => {
                if (p.faces === 0) return;
                if (p.done === 0)
                  steps.status(
                    `${name(p.input)}: ${o.aligned ? 'the aligned face' : `${p.faces} face${p.faces === 1 ? '' : 's'} found`}, restoring`,
                  );
                else if (p.done < p.faces)
                  steps.status(`${name(p.input)}: ${p.done}/${p.faces} faces restored`, {
                    fraction: p.done / p.faces,
                    plain: true,
                  });
              },
            });
          } catch (e) {
            steps.done();
            throw e;
          }
          // what was asked, what was chosen and why the others were skipped: once the session that runs is known
          let told = false;
          const tell = () => {
            if (told) return;
            told = true;
            info(describeChoice(restorer.choice));
          };
          void restorer.ready().then(tell, () => undefined);
          let first = true;
          if (restorer.info.synthetic) warn(`${SYNTHETIC_NOTE}; every output says so`);
          steps.mark();
          steps.status(`${name(files[0])}: ${o.aligned ? 'reading' : 'finding faces'}`);
          let results: RestoreResult[];
          try {
            results = await restorer.restoreFiles(files, (r, i) => {
              tell();
              steps.item(`${name(r.input)}: ${r.error ? `failed (${r.error.code})` : facesText(r, !!o.aligned)}`);
              if (i + 1 < files.length)
                steps.status(`${name(files[i + 1])}: ${o.aligned ? 'reading' : 'finding faces'}`);
              // the first result also says how the process got there: start and imports, model, session, detector
              const graphCache = restorer.runner?.graphCache ?? null;
              const runner = restorer.runner;
              const primer =
                runner && Number(runner.cudaOptions?.prime ?? 0) > 0
                  ? (runner.primerReport ?? { running: true })
                  : null;
              if (o.json)
                printJson(
                  first
                    ? {
                        ...r,
                        startup_ms: {
                          time_origin: performance.timeOrigin,
                          process: startMs,
                          ...restorer.createMs,
                          first_result_at: performance.now(),
                          ...(warmup ? { warmup } : {}),
                          ...(graphCache ? { graph_cache: graphCache } : {}),
                          ...(primer ? { primer } : {}),
                          ...(runner?.startedAt ? { session_started_at: runner.startedAt } : {}),
                          marks: marks(),
                          ...(runner?.placement?.sessionMs ? { session_profile: runner.placement.sessionMs } : {}),
                        },
                      }
                    : r,
                );
              first = false;
              for (const w of r.warnings) if (w !== SYNTHETIC_NOTE) warn(w);
            });
          } finally {
            steps.done();
            await restorer.release();
          }
          const failed = results.filter((r) => r.error);
          if (!o.json) {
            for (const r of results) {
              if (r.error) {
                const e = asCliError(
                  new GpenLabError(r.error.code, r.error.message, r.error.fix, { option: r.error.option }),
                );
                process.stdout.write(`${r.input}: error [${e.code}] ${e.message}\n  fix: ${e.fix}\n`);
                continue;
              }
              const written = [r.outputs.gpen, r.outputs.comp, ...r.outputs.faces].filter(
                (f): f is string => f !== null,
              );
              const shown =
                written.length <= 3
                  ? written.join(', ')
                  : `${written.slice(0, 2).join(', ')} and ${written.length - 2} more`;
              process.stdout.write(
                `${r.input}: ${facesText(r, !!o.aligned)} -> ${shown || 'nothing (no face for --outputs faces)'}  (${Object.entries(
                  r.stages_ms,
                )
                  .map(([k, v]) => `${k} ${v.toFixed(0)}`)
                  .join(', ')} ms)\n`,
              );
            }
          }
          if (failed.length > 0) {
            process.stderr.write(
              `${failed.length} of ${results.length} image(s) failed: ${failed.map((r) => `${r.input} (${r.error!.code})`).join(', ')}\n`,
            );
            process.exitCode = Math.max(...failed.map((r) => exitStatus(r.error!.code)));
          }
        },
      )
  );
}
