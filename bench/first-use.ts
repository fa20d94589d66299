// What a fresh process pays the first time it runs each kind of operator on CUDA (bench/first-run.ts showed the first
// MatMul, Gemm, Add and convolution of a GPEN run costing 80-105 ms each, later ones 0.03-0.1 ms): one small session
// per operator, at GPEN-512's shapes, run in the order given; each line reports creation, first and second run. With
// `par` the sessions are created first and their first runs start together on worker threads (does first use run in
// parallel?). Usage: npx tsx bench/first-use.ts [order=cast,matmul,add,gemm,conv_dw,conv3,convt] [seq|par] [provider=cuda]
import { CapiSession } from '../src/runtime/capi.js';
import { GraphBuilder, TensorType } from '../src/model/onnx-builder.js';
import { float32ToHalfArray } from '../src/model/tensor.js';

const order = (process.argv[2] ?? 'cast,matmul,add,gemm,conv_dw,conv3,convt').split(',');
const mode = process.argv[3] ?? 'seq';
const provider = (process.argv[4] ?? 'cuda') as 'cpu' | 'cuda';

const rand = (n: number) => new Float32Array(n).fill(0.05);

/** One operator at a GPEN-512 shape: a float32 input, cast to fp16 where GPEN's fp16 graph runs it in fp16. */
function graph(kind: string): { model: Uint8Array; dims: number[]; outLength: number } {
  const g = new GraphBuilder();
  const h = (x: string) => g.op('Cast', [x], { to: TensorType.FLOAT16 });
  const f = (x: string) => g.op('Cast', [x], { to: TensorType.FLOAT });
  const half = (dims: number[], hint: string) => g.initializer(hint, dims, float32ToHalfArray(rand(dims.reduce((a, b) => a * b, 1))));
  let dims: number[];
  let out: string;
  let outDims: number[];
  switch (kind) {
    case 'cast': dims = [1, 3, 512, 512]; out = f(h('input')); outDims = dims; break;
    case 'matmul': dims = [1, 3, 262144]; out = f(g.op('MatMul', [half([64, 3], 'w'), h('input')])); outDims = [1, 64, 262144]; break;
    case 'add': dims = [1, 64, 512, 512]; out = f(g.op('Add', [h('input'), half([1, 64, 1, 1], 'b')])); outDims = dims; break;
    case 'mul': dims = [1, 64, 512, 512]; out = f(g.op('Mul', [h('input'), half([1, 64, 1, 1], 'b')])); outDims = dims; break;
    case 'lrelu': dims = [1, 64, 512, 512]; out = f(g.op('LeakyRelu', [h('input')], { alpha: { float: 0.2 } })); outDims = dims; break;
    case 'gemm': dims = [1, 512]; out = g.op('Gemm', ['input', g.initializer('w', [512, 512], rand(512 * 512)), g.initializer('b', [512], rand(512))], { transB: 1 }); outDims = [1, 512]; break;
    case 'gemm_nobias': dims = [1, 512]; out = g.op('Gemm', ['input', g.initializer('w', [256, 512], rand(256 * 512))], { transB: 1 }); outDims = [1, 256]; break;
    case 'reduce': dims = [512, 512, 3, 3]; out = g.op('ReduceSumSquare', ['input'], { axes: [2, 3], keepdims: 0 }); outDims = [512, 512]; break;
    case 'conv_dw': dims = [1, 64, 512, 512]; out = f(g.op('Conv', [h('input'), half([64, 1, 4, 4], 'k')], { group: 64, pads: [2, 2, 2, 2], kernel_shape: [4, 4] })); outDims = [1, 64, 513, 513]; break;
    case 'conv3': dims = [1, 128, 256, 256]; out = f(g.op('Conv', [h('input'), half([128, 128, 3, 3], 'w')], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] })); outDims = dims; break;
    case 'convt': dims = [1, 512, 8, 8]; out = f(g.op('ConvTranspose', [h('input'), half([512, 512, 3, 3], 'w')], { kernel_shape: [3, 3], strides: [2, 2] })); outDims = [1, 512, 17, 17]; break;
    default: throw new Error(`unknown operator ${kind}`);
  }
  g.rename(out, 'output');
  const model = g.encode({
    name: kind, opset: 17, metadata: {},
    inputs: [{ name: 'input', elemType: TensorType.FLOAT, dims }], outputs: [{ name: 'output', elemType: TensorType.FLOAT, dims: outDims }],
  });
  return { model, dims, outLength: outDims.reduce((a, b) => a * b, 1) };
}

const opts = { provider, graphOptimizationLevel: 0 as const, ...(provider === 'cuda' ? { cuda: { device_id: '0', cudnn_conv_algo_search: 'HEURISTIC' } } : {}) };
const t0 = performance.now();
const rows: Record<string, number | string>[] = [];
if (mode === 'par') {
  const made = order.map((k) => {
    const gr = graph(k);
    const t = performance.now();
    const s = CapiSession.create(gr.model, opts);
    return { k, gr, s, createMs: performance.now() - t };
  });
  const start = performance.now();
  await Promise.all(made.map(async ({ k, gr, s, createMs }) => {
    const x = rand(gr.dims.reduce((a, b) => a * b, 1));
    await s.runAsync(x, gr.dims, gr.outLength);
    rows.push({ op: k, createMs: +createMs.toFixed(1), firstEndMs: +(performance.now() - start).toFixed(1) });
  }));
  rows.push({ op: 'all', firstEndMs: +(performance.now() - start).toFixed(1) });
  for (const m of made) m.s.release();
} else {
  for (const k of order) {
    const gr = graph(k);
    let t = performance.now();
    const s = CapiSession.create(gr.model, opts);
    const createMs = performance.now() - t;
    const x = rand(gr.dims.reduce((a, b) => a * b, 1));
    t = performance.now();
    s.run(x, gr.dims, gr.outLength);
    const firstMs = performance.now() - t;
    t = performance.now();
    s.run(x, gr.dims, gr.outLength);
    rows.push({ op: k, createMs: +createMs.toFixed(1), firstMs: +firstMs.toFixed(1), secondMs: +(performance.now() - t).toFixed(2) });
    s.release();
  }
}
process.stdout.write(JSON.stringify({ order, mode, provider, totalMs: +(performance.now() - t0).toFixed(1), rows }) + '\n');
