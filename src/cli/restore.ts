// `gpen-lab restore` and `gpen-lab detect`: the job users come for, on files and folders.
import { Command, Option } from 'commander';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { GpenLabError } from '../errors.js';
import { parseCudaOptions } from '../runtime/capi-model.js';
import type { WarmReport } from '../runtime/cuda-warm.js';
import { cudaWarmup } from '../runtime/cuda-warm.js';
import type { RestoreResult } from '../face/restore.js';
import { Restorer, SYNTHETIC_NOTE } from '../face/restore.js';
import { createBlazeFace } from '../face/blazeface.js';
import { decodeImage } from '../io/image.js';
import { isRestoreOutput } from '../io/output-names.js';
import type { OutputExt } from '../io/image.js';
import type { ModelSpec } from '../model/registry.js';
import { PROVIDERS, parseProvider } from '../runtime/providers.js';
import { PRECISIONS, PROVIDER_CHOICES, ROUTES, describeChoice, parseChoice } from '../runtime/routes.js';
import { marks } from '../runtime/marks.js';
import { parseIntArg } from './model.js';
import { Steps, info, printJson, warn } from './output.js';

export const IMAGE_EXTS = ['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff', '.gif'];

/**
 * Files as given; folders expand to their image files (sorted, not recursive), leaving out restore's own outputs
 * (NAME_GPEN, NAME_COMP, NAME_faceNN: never read back as inputs), which are counted in `skipped`.
 */
export async function expandInputs(inputs: string[]): Promise<{ files: string[]; skipped: number }> {
  const files: string[] = [];
  let skipped = 0;
  for (const i of inputs) {
    const st = await fs.stat(i).catch(() => null);
    if (st?.isDirectory()) {
      const names = (await fs.readdir(i)).filter((n) => IMAGE_EXTS.includes(path.extname(n).toLowerCase())).sort();
      const own = names.filter(isRestoreOutput);
      skipped += own.length;
      files.push(...names.filter((n) => !isRestoreOutput(n)).map((n) => path.join(i, n)));
    } else {
      files.push(i); // missing files become a coded error for that file
    }
  }
  return { files, skipped };
}

function parseAlpha(v: string): number {
  const n = Number(v);
  if (!(n >= 0 && n <= 1)) throw new GpenLabError('E_ARGUMENT', `Expected a number between 0 and 1 for --alpha but received ${JSON.stringify(v)}`, 'Pass --alpha between 0 (original) and 1 (restored).', { input: '--alpha' });
  return n;
}

export function restoreCommand(): Command {
  return new Command('restore')
    .description('restore the faces in photos: detect, align, GPEN, paste back; writes NAME_GPEN and NAME_COMP')
    .argument('<input...>', 'image files or folders')
    .requiredOption('-o, --out <dir>', 'output folder')
    .option('--model <file>', 'GPEN weights: the official .pth or an .onnx')
    .option('--synthetic <size>', 'seeded synthetic GPEN of this size (for measuring only: the faces become noise)', parseIntArg('--synthetic'))
    .option('--seed <s>', 'seed of --synthetic weights', parseIntArg('--seed'), 0)
    .option('--key <name>', 'for a .pth: key the generator is nested under')
    .addOption(new Option('--provider <p>', 'execution provider (auto: CUDA, else a hardware WebGPU adapter, else the CPU)').choices([...PROVIDER_CHOICES]).default('auto'))
    .addOption(new Option('--route <r>', 'fast: the measured-best binding and options for the provider; stock: onnxruntime-node\'s binding (the baseline)').choices([...ROUTES]).default('fast'))
    .addOption(new Option('--precision <p>', 'for a .pth or --synthetic (default: fp16 on a GPU, fp32 on the CPU; an .onnx runs in its own)').choices([...PRECISIONS]))
    .option('--alpha <a>', 'blend of restored (1) and original (0) face', parseAlpha, 1)
    .option('--aligned', 'inputs are aligned faces: GAN only')
    .option('--save-face', 'also write NAME_faceNN (aligned crop and restored crop)')
    .addOption(new Option('--ext <ext>', 'output format').choices(['.png', '.jpg', '.webp']).default('.png'))
    .option('--batch <n>', 'faces per inference (default: 32 on the CUDA fast route, 8 through the stock binding and on WebGPU, 4 on the CPU)', parseIntArg('--batch'))
    .option('--max-pixels <n>', 'refuse images larger than this (decompression bombs)', parseIntArg('--max-pixels'))
    .addOption(new Option('--detector-provider <p>', 'where the face detector runs (default: CUDA beside the fast route for several images, else the CPU)').choices([...PROVIDERS]))
    .option('--cuda-options <k=v,...>', 'for experts: CUDA provider options by ONNX Runtime\'s names and gpen-lab\'s session keys, replacing the fast route\'s set (docs/routes.md)', (v: string) => parseCudaOptions(v))
    .option('--face-threads <n>', 'worker threads that warp and paste the faces of photos with 4 or more (default: the cores but one, 2 to 16; 0: none)', parseIntArg('--face-threads'))
    .option('--overwrite', 'replace output files that are already there (without it such an image fails with E_OUTPUT_EXISTS)')
    .option('--json', 'one RestoreResult per image, a JSON object per line')
    .action(async (inputs: string[], o: {
      out: string; model?: string; synthetic?: number; seed: number; key?: string; provider: string; route: string; precision?: string; alpha: number;
      aligned?: boolean; saveFace?: boolean; overwrite?: boolean; ext: OutputExt; batch?: number; maxPixels?: number; json?: boolean; cudaOptions?: Record<string, string>; detectorProvider?: string; faceThreads?: number;
    }) => {
      // time since the process started, to here: node's own start and the modules loaded (a cold start's first part)
      const startMs = performance.now();
      // the CUDA warm-up the CLI started first thing (src/cli/warm-start.ts), reported with the first result
      let warmup: WarmReport | { running: true } | null = cudaWarmup() ? { running: true } : null;
      void cudaWarmup()?.then((r) => { warmup = r; });
      if (o.model === undefined && o.synthetic === undefined) {
        throw new GpenLabError('E_ARGUMENT', 'restore needs GPEN weights and none were given',
          'Pass --model FILE (the official GPEN-BFR-512.pth or a GPEN .onnx) to restore faces, or --synthetic 512 to measure the pipeline with seeded random weights (its faces are noise).',
          { input: '--model' });
      }
      if (o.model !== undefined && o.synthetic !== undefined) {
        throw new GpenLabError('E_ARGUMENT', 'restore was given both --model and --synthetic', 'Pass one of them.', { input: '--model' });
      }
      const spec: ModelSpec = o.model !== undefined ? { type: 'file', file: o.model, ...(o.key ? { key: o.key } : {}) } : { type: 'synthetic', size: o.synthetic!, seed: o.seed };
      const { files, skipped } = await expandInputs(inputs);
      if (skipped > 0) info(`left out ${skipped} file(s) named like restore's outputs (NAME_GPEN, NAME_COMP, NAME_faceNN) in the input folder(s)`);
      if (files.length === 0) throw new GpenLabError('E_FILE_MISSING', `No image files in ${inputs.join(', ')}`, `Pass image files (${IMAGE_EXTS.join(', ')}) or folders holding them.`, { input: inputs.join(', ') });
      const restorer = await Restorer.create({
        model: spec, provider: parseChoice(PROVIDER_CHOICES, o.provider, '--provider'), route: parseChoice(ROUTES, o.route, '--route'),
        ...(o.precision !== undefined ? { precision: parseChoice(PRECISIONS, o.precision, '--precision') } : {}),
        // one image is a cold start; several take the set fastest per image
        workload: files.length === 1 ? 'single' : 'batch',
        alpha: o.alpha, aligned: !!o.aligned, saveFace: !!o.saveFace, overwrite: !!o.overwrite, ext: o.ext, outDir: o.out,
        ...(o.batch !== undefined ? { batch: o.batch } : {}), ...(o.maxPixels !== undefined ? { maxPixels: o.maxPixels } : {}),
        ...(o.cudaOptions ? { session: { cudaOptions: o.cudaOptions } } : {}),
        ...(o.detectorProvider !== undefined ? { detectorProvider: parseProvider(o.detectorProvider, '--detector-provider') } : {}),
        ...(o.faceThreads !== undefined ? { faceThreads: o.faceThreads } : {}),
      });
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
      const steps = new Steps(files.length, o.json);
      let results: RestoreResult[];
      try {
        results = await restorer.restoreFiles(files, (r) => {
          tell();
          steps.step(`${path.basename(r.input)}: ${r.error ? `failed (${r.error.code})` : `${r.faces.length} face(s)`}`);
          // the first result also says how the process got there: start and imports, model, session, detector
          const graphCache = restorer.runner?.graphCache ?? null;
          const runner = restorer.runner;
          const primer = runner && Number(runner.cudaOptions?.prime ?? 0) > 0 ? (runner.primerReport ?? { running: true }) : null;
          if (o.json) process.stdout.write(JSON.stringify(first ? { ...r, startup_ms: { time_origin: performance.timeOrigin, process: startMs, ...restorer.createMs, first_result_at: performance.now(), ...(warmup ? { warmup } : {}), ...(graphCache ? { graph_cache: graphCache } : {}), ...(primer ? { primer } : {}), ...(runner?.startedAt ? { session_started_at: runner.startedAt } : {}), marks: marks(), ...(runner?.placement?.sessionMs ? { session_profile: runner.placement.sessionMs } : {}) } } : r) + '\n');
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
          if (r.error) process.stdout.write(`${r.input}: error [${r.error.code}] ${r.error.message}\n  fix: ${r.error.fix}\n`);
          else process.stdout.write(`${r.input}: ${r.faces.length} face(s) -> ${r.outputs.gpen}  (${Object.entries(r.stages_ms).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')} ms)\n`);
        }
      }
      if (failed.length > 0) {
        process.stderr.write(`${failed.length} of ${results.length} image(s) failed: ${failed.map((r) => `${r.input} (${r.error!.code})`).join(', ')}\n`);
        process.exitCode = 2;
      }
    });
}

export function detectCommand(): Command {
  return new Command('detect')
    .description('find faces: box, score, named landmarks, the detector\'s raw points')
    .argument('<image>', 'image file')
    .option('--max-pixels <n>', 'refuse images larger than this', parseIntArg('--max-pixels'))
    .option('--json', 'machine-readable output')
    .action(async (file: string, o: { json?: boolean; maxPixels?: number }) => {
      const img = await decodeImage(file, o.maxPixels !== undefined ? { maxPixels: o.maxPixels } : undefined);
      const det = await createBlazeFace({ provider: 'cpu' });
      try {
        const faces = await det.detect({ width: img.width, height: img.height, data: img.rgb });
        if (o.json) printJson({ faces, warnings: faces.length === 0 ? [`no face found in ${file}`] : [] });
        else {
          process.stdout.write(`${file}: ${faces.length} face(s)\n`);
          faces.forEach((f, i) => process.stdout.write(`  ${String(i).padStart(2, '0')} score ${f.score.toFixed(3)} box [${f.box.map((v) => v.toFixed(0)).join(', ')}] eyes (${f.landmarks.left_eye.map((v) => v.toFixed(0))}) (${f.landmarks.right_eye.map((v) => v.toFixed(0))})\n`));
          if (faces.length === 0) warn(`no face found in ${file}`);
        }
      } finally {
        await det.release();
      }
    });
}
