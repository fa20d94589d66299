// Where gpen-lab keeps what it learned about model files, and how it knows a file unchanged. Kept apart from the
// model registry so that a cold start's early session (capi-model.ts, graph-cache.ts, primer.ts) reaches its cache
// without loading the model-conversion modules (~120 ms of imports).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Where gpen-lab keeps what it learned about model files: $XDG_CACHE_HOME/gpen-lab or ~/.cache/gpen-lab. */
export function cacheDir(): string {
  return (
    process.env.GPEN_LAB_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'gpen-lab')
  );
}

/**
 * A file as make and git's index judge it unchanged: real path, size and mtime ("path|size|mtime"). Synchronous (two
 * system calls): a cold start's early steps use it before the event loop is free.
 */
export function fileIdentity(file: string): string {
  const st = statSync(file);
  return `${realpathSync(file)}|${st.size}|${st.mtimeMs}`;
}

/** The sha256 of bytes, hex. */
function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * A cache entry written with its hash beside it (`file.sha256`, see hashFileFor): its bytes when both are there and
 * agree, else null, the damaged entry removed so that the caller rebuilds it (a truncated or altered entry would
 * otherwise fail every later run). For entries small enough to hash on every read (the detector's graphs).
 */
export function readChecked(file: string): Buffer | null {
  const mark = `${file}.sha256`;
  if (!existsSync(file) || !existsSync(mark)) return null;
  const bytes = readFileSync(file);
  if (sha256(bytes) === readFileSync(mark, 'utf8').trim()) return bytes;
  rmSync(file, { force: true });
  rmSync(mark, { force: true });
  return null;
}

/** The hash file readChecked compares with, for `bytes` written as `file` (write it after the entry itself). */
export function hashFileFor(file: string, bytes: Uint8Array): { file: string; text: string } {
  return { file: `${file}.sha256`, text: `${sha256(bytes)}\n` };
}
