// `gpen-lab detect`: the faces the detector finds in files and folders, without GPEN.
import { Command } from 'commander';
import { GpenLabError } from '../errors.js';
import { createBlazeFace } from '../face/blazeface.js';
import type { DetectedFace, Pt } from '../face/types.js';
import { decodeImage } from '../io/image.js';
import { expandInputs } from './inputs.js';
import { parseIntArg } from './model.js';
import { printJson, warn } from './output.js';

/** Image coordinates to 0.1 px, scores to 3 decimals: what a detector's precision supports. */
function rounded(f: DetectedFace): DetectedFace {
  const px = (v: number) => Math.round(v * 10) / 10;
  const pt = (p: Pt): Pt => [px(p[0]), px(p[1])];
  const landmarks = Object.fromEntries(
    Object.entries(f.landmarks).map(([k, p]) => [k, pt(p as Pt)]),
  ) as unknown as DetectedFace['landmarks'];
  return {
    box: f.box.map(px) as DetectedFace['box'],
    score: Math.round(f.score * 1000) / 1000,
    landmarks,
    raw: f.raw.map(pt),
  };
}

export function detectCommand(): Command {
  return new Command('detect')
    .description("find faces: box, score, named landmarks, the detector's raw points (image pixels, to 0.1 px)")
    .argument('<input...>', 'image files or folders')
    .option('--max-pixels <n>', 'refuse images larger than this', parseIntArg('--max-pixels'))
    .option(
      '--json',
      'one object per image, a JSON object per line: {input, width, height, faces, warnings} or {input, error}',
    )
    .action(async (inputs: string[], o: { json?: boolean; maxPixels?: number }) => {
      const { files } = await expandInputs(inputs);
      const det = await createBlazeFace({ provider: 'cpu' });
      let failed = 0;
      try {
        for (const file of files) {
          let out: { input: string; width: number; height: number; faces: DetectedFace[]; warnings: string[] };
          try {
            const img = await decodeImage(file, o.maxPixels !== undefined ? { maxPixels: o.maxPixels } : undefined);
            const faces = (await det.detect({ width: img.width, height: img.height, data: img.rgb })).map(rounded);
            out = {
              input: file,
              width: img.width,
              height: img.height,
              faces,
              warnings: faces.length === 0 ? [`no face found in ${file}`] : [],
            };
          } catch (e) {
            if (!(e instanceof GpenLabError)) throw e;
            failed++;
            if (o.json) printJson({ input: file, error: { code: e.code, message: e.message, fix: e.fix } });
            else process.stdout.write(`${file}: error [${e.code}] ${e.message}\n  fix: ${e.fix}\n`);
            continue;
          }
          if (o.json) {
            printJson(out);
            continue;
          }
          process.stdout.write(`${file} (${out.width}x${out.height}): ${out.faces.length} face(s)\n`);
          const xy = (p: Pt) => `(${p.map((v) => v.toFixed(1)).join(', ')})`;
          out.faces.forEach((f, i) =>
            process.stdout.write(
              `  ${String(i).padStart(2, '0')} score ${f.score.toFixed(3)} box [${f.box.map((v) => v.toFixed(1)).join(', ')}] eyes ${xy(f.landmarks.left_eye)} ${xy(f.landmarks.right_eye)}\n`,
            ),
          );
          for (const w of out.warnings) warn(w);
        }
      } finally {
        await det.release();
      }
      if (failed > 0) {
        process.stderr.write(`${failed} of ${files.length} image(s) failed\n`);
        process.exitCode = 2;
      }
    });
}
