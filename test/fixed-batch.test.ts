// Runs of one batch size (src/runtime/fixed-batch.ts): fewer inputs are padded with zeros and their outputs dropped,
// more go in pieces; the size only grows (up to the most), or stays at a model's fixed batch; the outputs are those of
// unpadded runs; everything else of the runner is the runner's.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { paddedRunner } from '../src/runtime/fixed-batch.js';
import type { GpenRunner } from '../src/runtime/session.js';

/** A runner whose output is 2 x input (inputs are distinct: a misplaced one shows), recording sizes and inputs. */
function fakeRunner(sizes: number[], inputs: Float32Array[] = []): GpenRunner & { released: boolean } {
  const r = {
    asked: 'cuda' as const,
    createMs: 12,
    placement: null,
    cudaOptions: null,
    released: false,
    async run(data: Float32Array, dims: number[], into?: Float32Array) {
      sizes.push(dims[0]);
      inputs.push(Float32Array.from(data));
      const out = into ?? new Float32Array(data.length);
      for (let i = 0; i < data.length; i++) out[i] = 2 * data[i];
      return { data: out, dims, ms: 1 };
    },
    async release() {
      r.released = true;
    },
  };
  return r;
}

const input = (n: number, per: number) => Float32Array.from({ length: n * per }, (_, i) => i + 1);

describe('padded runner', () => {
  it('pads fewer inputs up to the largest run so far, splits more than the most, and gives the unpadded outputs', async () => {
    const sizes: number[] = [];
    const inputs: Float32Array[] = [];
    const r = paddedRunner(fakeRunner(sizes, inputs), { most: 4 });
    assert.equal(r.paddedTo, 0);
    const per = 5;
    for (const n of [3, 1, 3, 2, 6, 1, 4]) {
      const x = input(n, per);
      const into = n % 2 === 0 ? new Float32Array(n * per) : undefined;
      const got = await r.run(x, [n, 5], into);
      assert.deepEqual(
        Array.from(got.data),
        Array.from(x, (v) => 2 * v),
        `a run of ${n}`,
      );
      assert.deepEqual(got.dims, [n, 5]);
      if (into) assert.equal(got.data, into, 'the output in place');
    }
    // 3 as it came; 1, 3, 2 padded to 3; 6 -> the most, 4 + 2 padded to 4; then 1 padded, 4 as it came
    assert.deepEqual(sizes, [3, 3, 3, 3, 4, 4, 4, 4]);
    assert.equal(r.paddedTo, 4);
    // the padding is zeros: the run of 1 padded to 3 carried 5 values, then 10 zeros
    assert.deepEqual(Array.from(inputs[1]), [1, 2, 3, 4, 5, ...new Array(10).fill(0)]);
    // the second piece of the run of 6: its inputs 5 and 6, then two inputs of zeros
    assert.deepEqual(Array.from(inputs[5]), [
      ...Array.from({ length: 10 }, (_, i) => 21 + i),
      ...new Array(10).fill(0),
    ]);
  });

  it("runs a short piece in place where its arrays have room after them (no copy), the room's values its padding", async () => {
    const sizes: number[] = [];
    const seen: { buffer: ArrayBufferLike; offset: number; length: number }[] = [];
    const inner = fakeRunner(sizes);
    const run = inner.run.bind(inner);
    inner.run = async (data, dims, into) => {
      seen.push({ buffer: data.buffer, offset: data.byteOffset, length: data.length });
      return run(data, dims, into);
    };
    const r = paddedRunner(inner, { most: 4 });
    const per = 2;
    await r.run(input(4, per), [4, 2]);
    // 3 inputs in a buffer with room for 4, and an output with room for 4 too
    const xs = new Float32Array(4 * per).fill(-7);
    xs.set(input(3, per));
    const x = xs.subarray(0, 3 * per);
    const outs = new Float32Array(4 * per);
    const y = outs.subarray(0, 3 * per);
    const got = await r.run(x, [3, 2], y);
    assert.deepEqual(
      Array.from(got.data),
      Array.from(x, (v) => 2 * v),
    );
    assert.equal(got.data, y);
    assert.deepEqual(sizes, [4, 4]);
    assert.equal(seen[1].buffer, xs.buffer, "the input's own buffer");
    assert.deepEqual([seen[1].offset, seen[1].length], [0, 4 * per]);
    // the padding's output written in the room, the padding being what lay there
    assert.deepEqual(Array.from(outs.subarray(3 * per)), [-14, -14]);
    // without room in the output: padded through scratch buffers, the same result
    const got2 = await r.run(x, [3, 2], new Float32Array(3 * per));
    assert.deepEqual(
      Array.from(got2.data),
      Array.from(x, (v) => 2 * v),
    );
    assert.notEqual(seen[2].buffer, xs.buffer);
  });

  it('keeps a fixed batch from the first run, and passes the rest of the runner through', async () => {
    const sizes: number[] = [];
    const inner = fakeRunner(sizes);
    const r = paddedRunner(inner, { most: 4, fixed: true });
    assert.equal(r.paddedTo, 4);
    const got = await r.run(input(1, 3), [1, 3]);
    assert.deepEqual(Array.from(got.data), [2, 4, 6]);
    assert.deepEqual(sizes, [4]);
    assert.equal(r.createMs, 12);
    assert.equal(r.asked, 'cuda');
    await r.release();
    assert.equal(inner.released, true);
  });
});
