// The lab's verdict rules, shared by the runner and the report.
import type { CellResult } from './types.js';

/** Below this PSNR difference (dB) two environments are visually the same. */
export const LOSSLESS_DB = 0.3;
/** A passing cell this much slower than the best of its provider and precision is flagged. */
export const SLOW_RATIO = 1.2;

export function cellPassed(c: CellResult): boolean {
  return c.status === 'done' && !!c.stages.inference?.ok && !!c.stages.output?.ok;
}
