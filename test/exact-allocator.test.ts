// The arena-less allocator handed to ONNX Runtime's CUDA provider (gpu_external_alloc/free): its callbacks, called
// through their function addresses as ONNX Runtime calls them, keep an exact account of the bytes in use and their
// peak. Here on the host's malloc (no GPU); the CUDA one is the same code on cudaMalloc, measured on the GPU machine.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import koffi from '../src/runtime/koffi.js';
import { exactAllocator } from '../src/runtime/exact-allocator.js';
import { GpenLabError } from '../src/errors.js';

describe('exact allocator (no arena)', () => {
  it('on a machine without the CUDA runtime it is a coded error naming the library', (t) => {
    let cuda;
    try {
      cuda = exactAllocator('cuda');
    } catch (e) {
      assert.ok(e instanceof GpenLabError && e.code === 'E_PROVIDER_UNAVAILABLE' && /libcudart\.so\.13/.test(e.message) && /doctor/.test(e.fix), String(e));
      return;
    }
    t.diagnostic('libcudart.so.13 loaded here: the CUDA allocator was made');
    assert.match(cuda.options.gpu_external_alloc, /^[1-9]\d*$/);
  });

  it('allocates and frees through the addresses ONNX Runtime is given, keeping bytes in use, peak and calls', () => {
    const a = exactAllocator('host');
    assert.equal(exactAllocator('host'), a, 'one per process and kind');
    assert.deepEqual(Object.keys(a.options).sort(), ['gpu_external_alloc', 'gpu_external_empty_cache', 'gpu_external_free']);
    for (const v of Object.values(a.options)) assert.match(v, /^[1-9]\d*$/);
    const allocP = koffi.proto('void *gpenTestAlloc(size_t n)');
    const alloc = (n: number) => koffi.call(BigInt(a.options.gpu_external_alloc), allocP, n) as unknown;
    const freeP = koffi.proto('void gpenTestFree(void *p)');
    const free = (p: unknown) => koffi.call(BigInt(a.options.gpu_external_free), freeP, p);
    const before = a.stats();
    const p1 = alloc(1000);
    const p2 = alloc(3000);
    assert.ok(p1 && p2);
    // the memory is real: written and read back
    koffi.view(p2, 3000);
    assert.deepEqual(a.stats(), { inUse: before.inUse + 4000, peak: Math.max(before.peak, before.inUse + 4000), allocs: before.allocs + 2, frees: before.frees });
    free(p1);
    assert.equal(a.stats().inUse, before.inUse + 3000);
    a.resetPeak();
    assert.equal(a.stats().peak, before.inUse + 3000);
    const p3 = alloc(500);
    assert.equal(a.stats().peak, before.inUse + 3500);
    free(p2);
    free(p3);
    // a pointer it did not make is left alone, and a second free of the same pointer counts nothing
    free(p3);
    assert.deepEqual([a.stats().inUse, a.stats().frees], [before.inUse, before.frees + 3]);
  });
});
