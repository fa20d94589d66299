// Runs of one batch size. Through the stock binding, ONNX Runtime's CUDA session pays ~1 s on every run whose batch
// size differs from the run before (measured on an H200, GPEN-512 fp16), and a model exported with a fixed batch
// accepts nothing else. So runs are padded (zeros, their outputs dropped) up to one size, which only grows: the
// largest run seen so far, at most `most`; runs beyond `most` go in pieces of `most`.
import type { GpenRunner, RunResult } from './session.js';

export interface PaddedRunner extends GpenRunner {
  /** The batch size every run has now (0 before the first). */
  readonly paddedTo: number;
}

/**
 * `inner` with every run at one batch size: `fixed` (a model's fixed batch) or the largest run so far, up to `most`.
 * The result is the same as unpadded runs (each output depends on its own input only).
 */
export function paddedRunner(inner: GpenRunner, o: { most: number; fixed?: boolean }): PaddedRunner {
  let size = o.fixed ? o.most : 0;
  let scratch: Float32Array | null = null;
  let scratchOut: Float32Array | null = null;
  async function run(data: Float32Array, dims: number[], into?: Float32Array): Promise<RunResult> {
    const n = dims[0];
    const per = data.length / n;
    const rest = dims.slice(1);
    if (!o.fixed) size = Math.min(o.most, Math.max(size, n));
    if (n === size) return inner.run(data, dims, into);
    const out = into ?? new Float32Array(n * per);
    let ms = 0;
    let outRest = rest;
    for (let s = 0; s < n; s += size) {
      const k = Math.min(size, n - s);
      const target = out.subarray(s * per, (s + k) * per);
      let r: RunResult;
      // a whole piece runs in place, and so does a short last one whose arrays have room after them (the restore
      // pipeline takes its crops so): the padding is whatever lies there, its outputs written there and dropped
      const room = (a: Float32Array) => a.byteOffset / 4 + (s + size) * per <= a.buffer.byteLength / 4;
      if (k === size || (room(data) && room(out))) {
        const y = new Float32Array(out.buffer, out.byteOffset + s * per * 4, size * per);
        r = await inner.run(
          new Float32Array(data.buffer, data.byteOffset + s * per * 4, size * per),
          [size, ...rest],
          y,
        );
        if (r.data !== y) target.set(r.data.subarray(0, k * per));
      } else {
        // one scratch buffer each way, taken while a run uses them (a concurrent caller makes its own): reused, they
        // stay page-locked on the C API route (HostPins), where a fresh output would be locked anew on every run
        const mine = scratch && scratch.length === size * per ? scratch : new Float32Array(size * per);
        const mineOut = scratchOut && scratchOut.length === size * per ? scratchOut : new Float32Array(size * per);
        scratch = null;
        scratchOut = null;
        mine.set(data.subarray(s * per, (s + k) * per));
        mine.fill(0, k * per);
        try {
          r = await inner.run(mine, [size, ...rest], mineOut);
          target.set(r.data.subarray(0, k * per));
        } finally {
          scratch = mine;
          scratchOut = mineOut;
        }
      }
      ms += r.ms;
      outRest = r.dims.slice(1);
    }
    return { data: out, dims: [n, ...outRest], ms };
  }
  return new Proxy(inner, {
    get(target, prop) {
      if (prop === 'run') return run;
      if (prop === 'paddedTo') return size;
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }) as PaddedRunner;
}
