// What every bench variant measures the same way: its seeded inputs, the GPU memory of the process (NVML), a bare
// CUDA context's share of it, and the agreement with the peer's output.
import { startGpuSampler, summarizeGpu } from '../doctor/gpu-sampler.js';
import { psnrFloat } from '../metrics/quality.js';
import { GraphBuilder, TensorType } from '../onnx/builder.js';
import type { RuntimeBuild } from '../runtime/builds.js';
import { openSession } from '../runtime/capi-model.js';
import type { Provider } from '../runtime/providers.js';
import type { BenchVariant } from './bench-report.js';

/** `n` images of 3 x size x size in [-0.9, 0.9], the same for the same seed (an LCG). */
export function seededInput(n: number, size: number, seed = 1): Float32Array {
  let s = seed >>> 0;
  const x = new Float32Array(n * 3 * size * size);
  for (let i = 0; i < x.length; i++) {
    x[i] = (((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1) * 0.9;
  }
  return x;
}

/**
 * The process's GPU memory with a bare CUDA context (a 1x1 convolution session, of the process's runtime build);
 * null off CUDA and TensorRT.
 */
export async function contextBaseline(provider: Provider, runtime?: RuntimeBuild): Promise<number | null> {
  if (provider !== 'cuda' && provider !== 'tensorrt') return null;
  const g = new GraphBuilder();
  const w = g.initializer('w', [1, 1, 1, 1], Float32Array.from([1]));
  const [y] = g.node('Conv', ['input', w], {}, 1, 'conv');
  g.rename(y, 'output');
  const graph = g.encode({
    name: 'context_probe',
    opset: 17,
    inputs: [{ name: 'input', elemType: TensorType.FLOAT, dims: [1, 1, 4, 4] }],
    outputs: [{ name: 'output', elemType: TensorType.FLOAT, dims: [1, 1, 4, 4] }],
    metadata: {},
  });
  const s = await openSession(graph, { provider: 'cuda', recordPlacement: false, ...(runtime ? { runtime } : {}) });
  await s.run(new Float32Array(16), [1, 1, 4, 4]);
  const mib = await processMiB();
  await s.release();
  return mib;
}

/** The GPU memory this process holds now, by the driver (NVML), sampled for 120 ms. */
export async function processMiB(): Promise<number | null> {
  const sampler = startGpuSampler({ intervalMs: 20, pids: () => [process.pid] });
  await new Promise((r) => setTimeout(r, 120));
  return summarizeGpu(sampler.stop()).processPeakMiB;
}

/** Agreement of `got` with the peer's output on the same input and weights: PSNR over [-1, 1] and max abs. */
export function vsPeer(v: BenchVariant, got: Float32Array, want: Float32Array): void {
  v.agreement.vsPeerPsnr = psnrFloat(got, want, 2);
  let m = 0;
  for (let i = 0; i < got.length; i++) m = Math.max(m, Math.abs(got[i] - want[i]));
  v.agreement.vsPeerMaxAbs = m;
}
