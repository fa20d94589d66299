// A temporary gpen-lab cache for a test file ($GPEN_LAB_CACHE), restored and removed after its tests.
import { after } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Points GPEN_LAB_CACHE into a new temporary folder until the file's tests end; returns that folder's parent. */
export function useTempCache(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  const before = process.env.GPEN_LAB_CACHE;
  process.env.GPEN_LAB_CACHE = path.join(dir, 'cache');
  after(() => {
    if (before === undefined) delete process.env.GPEN_LAB_CACHE;
    else process.env.GPEN_LAB_CACHE = before;
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}
