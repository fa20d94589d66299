// The product's text lint (scripts/check-text.mjs, part of `npm run lint`): development-run ids fail it, the product's
// own words pass. The ids are assembled here so that this file itself stays clean.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const SCRIPT = path.resolve('scripts/check-text.mjs');
const lint = (...args: string[]) => spawnSync(process.execPath, [SCRIPT, ...args], { encoding: 'utf8' });

describe('the product text lint', () => {
  it('fails on a planted file naming development runs, and names each hit by line', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gpen-lab-text-'));
    try {
      const ids = ['s1' + '2c', 'fin' + 'al19', 'sess' + 'ion 11'];
      writeFileSync(
        path.join(dir, 'planted.md'),
        `# notes\nmeasured in ${ids[0]}\nas ${ids[1]} showed\n\nsince ${ids[2]}\n`,
      );
      const r = lint(dir);
      assert.equal(r.status, 1);
      for (const [id, line] of [
        [ids[0], 2],
        [ids[1], 3],
        [ids[2], 5],
      ] as const) {
        assert.ok(r.stderr.includes(`planted.md:${line}: ${id}`), `${id} on line ${line} in:\n${r.stderr}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('passes the product words that look alike: session timings, upstream issues, fp16, sm_90', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gpen-lab-text-'));
    try {
      writeFileSync(
        path.join(dir, 'ok.ts'),
        '// cuda fp16: session 0.4 s, session 12 ms; upstream issue 43; sm_90; s3 bucket\n',
      );
      const r = lint(dir);
      assert.equal(r.status, 0, r.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
