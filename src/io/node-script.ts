// The arguments for `node` to run a script that sits beside a module: the built .js, or the .ts source under tsx
// (then node needs `--import tsx`). The doctor's probe, the lab's cells and the bench's cold starts use it.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function nodeScriptArgs(moduleUrl: string, base: string): string[] {
  const js = fileURLToPath(new URL(`./${base}.js`, moduleUrl));
  if (existsSync(js)) return [js];
  return ['--import', 'tsx', fileURLToPath(new URL(`./${base}.ts`, moduleUrl))];
}
