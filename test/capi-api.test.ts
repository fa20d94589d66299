// The OrtApi entries the C API route calls (src/runtime/capi/api.ts): each index and the C API version that added it
// agree with ONNX Runtime's append-only table, and entriesBeyond names what an older build's table lacks.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { IX, TABLE, entriesBeyond, type ApiName } from '../src/runtime/capi/api.js';

/** The last OrtApi index of each C API version 1..23 (the sizes onnxruntime_c_api.cc asserts; 19 and 21 add none). */
const LAST = [
  101, 118, 124, 126, 149, 157, 161, 169, 191, 203, 209, 218, 224, 238, 254, 265, 275, 279, 279, 284, 284, 317, 389,
];

const names = Object.keys(IX) as ApiName[];

describe('the OrtApi entries by C API version', () => {
  it('each index lies in the range of the version that added it', () => {
    for (const n of names) {
      const [i, v] = IX[n];
      assert.ok(v >= 1 && v <= LAST.length, `${n}: version ${v}`);
      assert.ok(i <= LAST[v - 1] && (v === 1 || i > LAST[v - 2]), `${n}: index ${i} is not one of version ${v}'s`);
    }
  });

  it('indices are distinct and the table read covers the highest one', () => {
    const indices = names.map((n) => IX[n][0]);
    assert.equal(new Set(indices).size, indices.length);
    assert.equal(TABLE, Math.max(...indices) + 1);
  });

  it('entriesBeyond lists the entries an older version lacks, in table order', () => {
    assert.deepEqual(entriesBeyond(23), []);
    assert.deepEqual(entriesBeyond(19), ['GetKeyValuePairs', 'ReleaseKeyValuePairs', 'AllocatorGetStats']);
    assert.deepEqual(entriesBeyond(21), entriesBeyond(19));
    assert.deepEqual(entriesBeyond(14), [
      'CreateAndRegisterAllocatorV2',
      'GetKeyValuePairs',
      'ReleaseKeyValuePairs',
      'AllocatorGetStats',
    ]);
    const all = entriesBeyond(0);
    assert.equal(all.length, names.length);
    assert.deepEqual(
      all.map((n) => IX[n][0]),
      names.map((n) => IX[n][0]).sort((x, y) => x - y),
    );
    assert.ok(!entriesBeyond(1).includes('CreateSession'));
    assert.ok(entriesBeyond(10).includes('SessionOptionsAppendExecutionProvider_CUDA_V2'));
  });
});
