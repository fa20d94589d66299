// Where gpen-lab keeps what it learned about model files, and how it knows a file unchanged. Kept apart from the
// model registry so that a cold start's early session (capi-model.ts, graph-cache.ts, primer.ts) reaches its cache
// without loading the model-conversion modules (~120 ms of imports).
import { realpathSync, statSync } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** Where gpen-lab keeps what it learned about model files: $XDG_CACHE_HOME/gpen-lab or ~/.cache/gpen-lab. */
export function cacheDir(): string {
  return process.env.GPEN_LAB_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'gpen-lab');
}

/** A file as make and git's index judge it unchanged: real path, size and mtime ("path|size|mtime"). */
export async function fileIdentity(file: string): Promise<string> {
  const st = await stat(file);
  return `${await realpath(file)}|${st.size}|${st.mtimeMs}`;
}

/** fileIdentity without yielding (a cold start's first steps, before the event loop is free). */
export function fileIdentitySync(file: string): string {
  const st = statSync(file);
  return `${realpathSync(file)}|${st.size}|${st.mtimeMs}`;
}
