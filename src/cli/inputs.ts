// The inputs of `gpen-lab restore` and `gpen-lab detect`: files as given, folders expanded to their image files.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { GpenLabError, errorMessage } from '../errors.js';
import { assertReadableFile } from '../io/files.js';
import { isRestoreOutput } from '../io/output-names.js';

const IMAGE_EXTS = ['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff', '.gif'];

const ACCEPTED = 'an image (JPEG, PNG, WebP, TIFF or GIF)';

/**
 * Files as given; folders expand to their image files (sorted, not recursive), leaving out restore's own outputs
 * (NAME_GPEN, NAME_COMP, NAME_faceNN: never read back as inputs), which are counted in `skipped`. Every input is checked
 * first, before any model work: a file that is missing or unreadable, or a folder without image files, is one coded
 * error naming them all.
 */
export async function expandInputs(inputs: string[]): Promise<{ files: string[]; skipped: number }> {
  const files: string[] = [];
  const problems: GpenLabError[] = [];
  let skipped = 0;
  for (const i of inputs) {
    const st = await fs.stat(i).catch(() => null);
    if (!st?.isDirectory()) {
      // a file that cannot be read stops the command here, not after the model is built
      await assertReadableFile(i, ACCEPTED).then(
        () => files.push(i),
        (e: GpenLabError) => problems.push(e),
      );
      continue;
    }
    let names: string[];
    try {
      names = (await fs.readdir(i)).filter((n) => IMAGE_EXTS.includes(path.extname(n).toLowerCase())).sort();
    } catch (e) {
      problems.push(
        new GpenLabError(
          'E_FILE_UNREADABLE',
          `Input folder cannot be read: ${i}: ${errorMessage(e)}`,
          "Check the folder's permissions.",
          { input: i },
        ),
      );
      continue;
    }
    const own = names.filter(isRestoreOutput);
    skipped += own.length;
    if (own.length === names.length) {
      problems.push(
        new GpenLabError(
          'E_FILE_MISSING',
          `No image files in the folder ${i}${own.length ? ` (only restore's own outputs, NAME_GPEN, NAME_COMP, NAME_faceNN)` : ''}`,
          `Pass image files (${IMAGE_EXTS.join(', ')}) or folders holding them.`,
          { input: i },
        ),
      );
    }
    files.push(...names.filter((n) => !isRestoreOutput(n)).map((n) => path.join(i, n)));
  }
  if (problems.length === 1) throw problems[0];
  if (problems.length > 1) {
    throw new GpenLabError(
      problems.some((e) => e.code === 'E_FILE_MISSING') ? 'E_FILE_MISSING' : 'E_FILE_UNREADABLE',
      `${problems.length} inputs cannot be read: ${problems.map((e) => e.message).join('; ')}`,
      'Check the paths (they are resolved from the current folder) and the permissions.',
      { input: problems.map((e) => e.details.input).join(', ') },
    );
  }
  return { files, skipped };
}
