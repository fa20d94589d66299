// The checks of a Restorer's options, and the outputs they ask for. Errors name the options by their keys (alpha,
// batch, faceThreads, outputs); the CLI and the service spell them as their flags and query parameters.
import { GpenLabError, checkInteger, checkNumber } from '../../errors.js';
import { OUTPUT_KINDS, type OutputKind, type RestoreOptions } from './types.js';

/** The weight of the restored face, 0 (the original) to 1 (restored): one rule for the library, CLI and service. */
export function checkAlpha(v: unknown): number {
  return checkNumber('alpha', v, { min: 0, max: 1 }, 'Pass alpha between 0 (original) and 1 (restored).');
}

/** Refuses an alpha, batch or faceThreads out of range; alpha (default 1) and the outputs asked for. */
export function checkOptions(opts: RestoreOptions): { alpha: number; outputs: OutputKind[] } {
  const alpha = checkAlpha(opts.alpha ?? 1);
  if (opts.batch !== undefined) checkInteger('batch', opts.batch, 1, 256);
  if (opts.faceThreads !== undefined) {
    checkInteger(
      'faceThreads',
      opts.faceThreads,
      0,
      64,
      'Pass faceThreads between 0 (warp and paste on the main thread) and 64.',
    );
  }
  return { alpha, outputs: outputsOf(opts.outputs ?? ['gpen'], opts.saveFace) };
}

/** The outputs asked for, in OUTPUT_KINDS' order; the deprecated saveFace adds faces. */
export function outputsOf(kinds: readonly string[], saveFace?: boolean): OutputKind[] {
  if (
    !Array.isArray(kinds) ||
    kinds.length === 0 ||
    kinds.some((k) => !(OUTPUT_KINDS as readonly string[]).includes(k))
  ) {
    throw new GpenLabError(
      'E_ARGUMENT',
      `Expected a list of ${OUTPUT_KINDS.join(', ')} for outputs but received ${JSON.stringify(kinds)}`,
      `Pass outputs as a list of ${OUTPUT_KINDS.join(', ')}.`,
      { input: 'outputs', option: 'outputs', received: JSON.stringify(kinds) },
    );
  }
  return OUTPUT_KINDS.filter((k) => kinds.includes(k) || (k === 'faces' && saveFace === true));
}

/** An --aligned input that is not square: the model's crop is. */
export function notSquare(file: string, img: { width: number; height: number }): GpenLabError {
  return new GpenLabError(
    'E_ARGUMENT',
    `aligned takes square face crops, but ${file} is ${img.width}x${img.height}: ` +
      "it would be squashed onto the model's square",
    "Leave out aligned to find and align the faces in the photo, or crop the face to a square first (GPEN's " +
      'face crops are 512x512).',
    { input: file, option: 'aligned', width: img.width, height: img.height },
  );
}
