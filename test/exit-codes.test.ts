// The CLI's exit status per kind of failure (src/errors.ts FAILURE_KINDS): 2 bad input, 3 runtime or environment,
// 4 a bug; every code has a kind, and the README's exit table names the same statuses.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERROR_CODES, EXIT_CODES, FAILURE_KINDS, GpenLabError } from '../src/errors.js';
import { exitCodeFor } from '../src/cli/output.js';

describe('exit codes', () => {
  it('every error code has a kind, and nothing else does', () => {
    assert.deepEqual(Object.keys(FAILURE_KINDS).sort(), [...ERROR_CODES].sort());
  });

  it('bad input 2, the runtime or environment 3, a bug 4', () => {
    const e = (code: (typeof ERROR_CODES)[number]) => new GpenLabError(code, 'm', 'f');
    assert.deepEqual(
      ['E_ARGUMENT', 'E_PTH_CORRUPT', 'E_OUTPUT_EXISTS', 'E_CONFIG'].map((c) => exitCodeFor(e(c as never))),
      [2, 2, 2, 2],
    );
    assert.deepEqual(
      ['E_SESSION', 'E_INFERENCE', 'E_WRITE', 'E_TIMEOUT', 'E_NETWORK'].map((c) => exitCodeFor(e(c as never))),
      [3, 3, 3, 3, 3],
    );
    assert.equal(exitCodeFor(e('E_INTERNAL')), 4);
    assert.equal(exitCodeFor(new TypeError('x is undefined')), 4);
  });

  it('the README lists each status with its kind', () => {
    const readme = readFileSync('README.md', 'utf8');
    for (const [kind, status] of Object.entries(EXIT_CODES)) {
      assert.match(
        readme,
        new RegExp(
          `^\\| ${status} \\| ${kind === 'input' ? 'bad input' : kind === 'runtime' ? 'the runtime' : 'a bug'}`,
          'm',
        ),
        `${kind} -> ${status}`,
      );
    }
  });
});
