// The argument checkers every entry point shares, and how the CLI spells an option the library names by its key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GpenLabError, checkInteger, checkList, checkNumber, checkOneOf, flagOf, renameOption } from '../src/errors.js';
import { asCliError } from '../src/cli/output.js';

function refused(fn: () => unknown, message: string, option: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof GpenLabError);
    assert.equal(e.code, 'E_ARGUMENT');
    assert.equal(e.message, message);
    assert.equal(e.details.option, option);
    return true;
  });
}

test("checkInteger takes integers in range, and a flag's string holding one", () => {
  assert.equal(checkInteger('batch', 8, 1, 256), 8);
  assert.equal(checkInteger('batch', '256', 1, 256), 256);
  refused(
    () => checkInteger('batch', 257, 1, 256),
    'Expected an integer between 1 and 256 for batch but received 257 of type number',
    'batch',
  );
  refused(
    () => checkInteger('batch', '2.5', 1, 256),
    'Expected an integer between 1 and 256 for batch but received "2.5" of type string',
    'batch',
  );
  refused(
    () => checkInteger('batch', '', 1, 256),
    'Expected an integer between 1 and 256 for batch but received "" of type string',
    'batch',
  );
});

test('checkNumber takes finite numbers in range, excluding the minimum with above', () => {
  assert.equal(checkNumber('alpha', 0, { min: 0, max: 1 }), 0);
  assert.equal(checkNumber('alpha', '0.25', { min: 0, max: 1 }), 0.25);
  refused(
    () => checkNumber('alpha', 1.5, { min: 0, max: 1 }),
    'Expected a number between 0 and 1 for alpha but received 1.5 of type number',
    'alpha',
  );
  refused(
    () => checkNumber('alpha', NaN, { min: 0, max: 1 }),
    'Expected a number between 0 and 1 for alpha but received NaN of type number',
    'alpha',
  );
  refused(
    () => checkNumber('timeout', 0, { min: 0, above: true }),
    'Expected a number above 0 for timeout but received 0 of type number',
    'timeout',
  );
  assert.equal(checkNumber('timeout', 0.5, { min: 0, above: true }), 0.5);
});

test('checkOneOf and checkList take members of a closed set and name the set when refusing', () => {
  assert.equal(checkOneOf('route', 'fast', ['fast', 'stock'] as const), 'fast');
  refused(
    () => checkOneOf('route', 'slow', ['fast', 'stock'] as const),
    'Expected one of fast, stock for route but received "slow" of type string',
    'route',
  );
  assert.deepEqual(checkList('outputs', 'comp, gpen,comp,', ['gpen', 'comp', 'faces'] as const), ['comp', 'gpen']);
  refused(
    () => checkList('outputs', ',', ['gpen', 'comp'] as const),
    'Expected a comma-separated list of gpen, comp for outputs but received "," of type string',
    'outputs',
  );
  refused(
    () => checkList('outputs', 'gpen,x', ['gpen', 'comp'] as const),
    'Expected a comma-separated list of gpen, comp for outputs but received "gpen,x" of type string',
    'outputs',
  );
});

function thrown(fn: () => unknown): GpenLabError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof GpenLabError);
    return e;
  }
  assert.fail('expected a GpenLabError');
}

test('the CLI names an option by its flag, in the message and the fix, and leaves other words alone', () => {
  assert.equal(flagOf('faceThreads'), '--face-threads');
  assert.equal(flagOf('alpha'), '--alpha');
  assert.equal(flagOf('--outputs'), '--outputs');
  const e = asCliError(
    thrown(() => checkInteger('faceThreads', 99, 0, 64, 'Pass faceThreads between 0 and 64 (faceThreads=0: none).')),
  );
  assert.equal(e.message, 'Expected an integer between 0 and 64 for --face-threads but received 99 of type number');
  assert.equal(e.fix, 'Pass --face-threads between 0 and 64 (faceThreads=0: none).');
  assert.equal(e.details.input, '--face-threads');
  const q = renameOption(
    thrown(() => checkOneOf('ext', 'bmp', ['.png'] as const)),
    (k) => (k === 'ext' ? 'format' : k),
  );
  assert.match(q.message, /for format but received "bmp"/);
  const plain = new GpenLabError('E_FILE_MISSING', 'Input file not found: alpha.png', 'Check the path.', {
    input: 'alpha.png',
  });
  assert.equal(asCliError(plain), plain);
});
