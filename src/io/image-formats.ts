// The output formats, by extension: apart from the encoder so that metadata.ts can name them without an import cycle.
import { badArgument } from '../errors.js';

/** Output formats the writers support, by file extension. */
export const OUTPUT_EXTS = ['.png', '.jpg', '.webp'] as const;
export type OutputExt = (typeof OUTPUT_EXTS)[number];

export function parseOutputExt(ext: string): OutputExt {
  const e = (ext.startsWith('.') ? ext : `.${ext}`).toLowerCase();
  const norm = e === '.jpeg' ? '.jpg' : e;
  if (!(OUTPUT_EXTS as readonly string[]).includes(norm)) {
    throw badArgument('ext', `one of ${OUTPUT_EXTS.join(', ')}`, ext);
  }
  return norm as OutputExt;
}
