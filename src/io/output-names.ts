// What restore's outputs are called: NAME_GPEN, NAME_COMP and NAME_faceNN beside each other in the output folder, NAME
// unique among the inputs of one call (never two inputs to one output), and which files in a folder are such outputs
// (never read back as inputs).
import path from 'node:path';

/** The suffixes restore gives its outputs, before the extension. */
export const OUTPUT_SUFFIX = /_(GPEN|COMP|face\d{2})$/;

/** Whether a file name is one of restore's outputs (NAME_GPEN.png, NAME_COMP.jpg, NAME_face03.webp). */
export function isRestoreOutput(file: string): boolean {
  return OUTPUT_SUFFIX.test(path.parse(file).name);
}

/**
 * The output NAME of each input, in order: its name without the extension; inputs sharing one take their extension
 * too (x.png -> x, x.webp -> x_webp), and those still sharing one a number by order (a/x.png -> x_png, b/x.png -> x_png_2).
 */
export function outputNames(files: readonly string[]): string[] {
  const stem = (f: string) => path.parse(f).name;
  const withExt = (f: string) => `${stem(f)}_${path.extname(f).slice(1).toLowerCase() || 'noext'}`;
  const count = (names: string[]) => names.reduce((m, n) => m.set(n, (m.get(n) ?? 0) + 1), new Map<string, number>());
  const stems = files.map(stem);
  const byStem = count(stems);
  const names = files.map((f, i) => (byStem.get(stems[i])! > 1 ? withExt(f) : stems[i]));
  const byName = count(names);
  const seen = new Map<string, number>();
  return names.map((n) => {
    if (byName.get(n)! === 1) return n;
    const k = (seen.get(n) ?? 0) + 1;
    seen.set(n, k);
    return k === 1 ? n : `${n}_${k}`;
  });
}
