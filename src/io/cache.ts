// Where gpen-lab keeps what it learned about model files, and how it knows a file unchanged. Kept apart from the
// model registry so that a cold start's early session (capi-model.ts, graph-cache.ts, primer.ts) reaches its cache
// without loading the model-conversion modules (~120 ms of imports).
import { realpathSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Where gpen-lab keeps what it learned about model files: $XDG_CACHE_HOME/gpen-lab or ~/.cache/gpen-lab. */
export function cacheDir(): string {
  return process.env.GPEN_LAB_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'gpen-lab');
}

/**
 * A file as make and git's index judge it unchanged: real path, size and mtime ("path|size|mtime"). Synchronous (two
 * system calls): a cold start's early steps use it before the event loop is free.
 */
export function fileIdentity(file: string): string {
  const st = statSync(file);
  return `${realpathSync(file)}|${st.size}|${st.mtimeMs}`;
}
