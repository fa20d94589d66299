// The blur (upfirdn2d's 4x4 [1,3,3,1] kernel, one per channel) as ONNX Runtime runs it on CUDA: cuDNN's depthwise
// convolution was ~19% of a batch-16 fp16 run on the H200 at 18x the time its memory traffic needs. The same blur
// written as a grouped or dense convolution whose weight is zero off the channel's own diagonal (the same sums, so the
// same output) lets cuDNN use tensor-core kernels at 8-64x the arithmetic. Times each form at GPEN-512's two largest
// blurs (64 channels at 512 px, 128 at 256 px), fp16, batch 16, input and output bound on the device, against a graph
// that only casts (the baseline every form pays). Usage: npx tsx bench/blur.ts [batch=16] [runs=20]
import { CapiSession } from '../src/runtime/capi.js';
import { GraphBuilder, TensorType } from '../src/model/onnx-builder.js';
import { float32ToHalfArray } from '../src/model/tensor.js';
import { median } from '../src/metrics/stats.js';

const batch = Number(process.argv[2] ?? 16);
const runs = Number(process.argv[3] ?? 20);
const K = [1, 3, 3, 1];

function graph(c: number, h: number, group: number | null): Uint8Array {
  const g = new GraphBuilder();
  const x = g.op('Cast', ['input'], { to: TensorType.FLOAT16 });
  let y = x;
  if (group !== null) {
    const per = c / group;
    const w = new Float32Array(c * per * 16);
    for (let o = 0; o < c; o++) {
      const i = o % per; // the input channel of o's own group that is o itself
      for (let a = 0; a < 4; a++) for (let b = 0; b < 4; b++) w[((o * per + i) * 4 + a) * 4 + b] = (K[a] * K[b]) / 64;
    }
    // pads 1 before and 2 after keep the size (one shape for the bound input and output)
    y = g.op('Conv', [x, g.initializer('w', [c, per, 4, 4], float32ToHalfArray(w))], { group, pads: [1, 1, 2, 2], kernel_shape: [4, 4] });
  }
  g.rename(g.op('Cast', [y], { to: TensorType.FLOAT }), 'output');
  return g.encode({ name: 'blur', opset: 17, metadata: {}, inputs: [{ name: 'input', elemType: TensorType.FLOAT, dims: [batch, c, h, h] }], outputs: [{ name: 'output', elemType: TensorType.FLOAT, dims: [batch, c, h, h] }] });
}

const rows: Record<string, unknown>[] = [];
for (const [c, h] of [[64, 512], [128, 256]]) {
  const forms: [string, number | null][] = [['cast only', null], ['depthwise', c], [`groups of 8`, c / 8], [`groups of 16`, c / 16], [`groups of 32`, c / 32], ['dense', 1]];
  for (const [name, group] of forms) {
    const s = CapiSession.create(graph(c, h, group), { provider: 'cuda', cuda: { device_id: '0', cudnn_conv_algo_search: 'EXHAUSTIVE' }, graphOptimizationLevel: 0 });
    try {
      const dims = [batch, c, h, h];
      const b = s.bindDevice(dims);
      b.upload(new Float32Array(b.elements).fill(0.5));
      for (let i = 0; i < 3; i++) b.run();
      const ms: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t = performance.now();
        b.run();
        ms.push(performance.now() - t);
      }
      b.release();
      rows.push({ channels: c, size: h, form: name, group, medianMs: +median(ms).toFixed(3) });
    } catch (e) {
      rows.push({ channels: c, size: h, form: name, group, error: (e as Error).message.slice(0, 200) });
    } finally {
      s.release();
    }
  }
}
process.stdout.write(JSON.stringify({ batch, runs, rows }) + '\n');
