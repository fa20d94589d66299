// Synthetic GPEN weights: seeded and deterministic on every platform, with the real architecture and cost, so speed,
// memory and cross-runtime agreement can be measured with nothing downloaded. Outputs made with them say "synthetic".
import type { GpenArch } from './arch.js';
import { expectedShapes } from './arch.js';
import type { HostTensor } from '../io/tensor.js';
import { numel } from '../io/tensor.js';

/** mulberry32: tiny, fast, and the same stream in every JS engine. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fills with standard normal values (Box-Muller, both outputs used). */
export function fillNormal(out: Float32Array, next: () => number, std = 1, mean = 0): Float32Array {
  for (let i = 0; i < out.length; i += 2) {
    const u = 1 - next();
    const v = next();
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    out[i] = mean + r * Math.cos(2 * Math.PI * v);
    if (i + 1 < out.length) out[i + 1] = mean + r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

/** make_kernel([1,3,3,1]) of the official code, times factor^2 for the upsampling blurs. */
export function blurKernel(factor: number): Float32Array {
  const k1 = [1, 3, 3, 1];
  const o = new Float32Array(16);
  for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) o[i * 4 + j] = ((k1[i] * k1[j]) / 64) * factor * factor;
  return o;
}

/**
 * A state dict with the official names and shapes. Weights follow the official init (unit normal; the mapping
 * network's divided by lr_mul; modulation bias 1); biases and feature-injection weights are non-zero so that every
 * path of the network, the encoder's features included, shapes the output.
 */
export function synthStateDict(arch: GpenArch, seed: number): Map<string, HostTensor> {
  const next = rng(seed);
  const out = new Map<string, HostTensor>();
  for (const [name, dims] of expectedShapes(arch)) {
    const data = new Float32Array(numel(dims));
    if (name.endsWith('upsample.kernel') || name.endsWith('blur.kernel')) data.set(blurKernel(2));
    else if (name.endsWith('.kernel')) data.set(blurKernel(1));
    else if (name.endsWith('modulation.bias')) data.fill(1);
    else if (name.endsWith('noise.weight')) fillNormal(data, next, 0.1, 0.3);
    else if (name.endsWith('bias')) fillNormal(data, next, 0.1);
    else if (name.startsWith('generator.style.')) fillNormal(data, next, 1 / arch.lrMlp);
    else fillNormal(data, next);
    out.set(name, { dtype: 'float32', dims, data });
  }
  return out;
}
