// A primer for CUDA cold starts: the model's own graph with its weights replaced by zeros made on the device
// (ConstantOfShape), created and run once on worker threads beside the real session's creation. In a fresh process
// the first run of a GPEN-512 session took 500-900 ms on the H200 against ~90 ms for the first run of a second
// session (bench/first-run.ts): most of it is paid once per process (cuDNN, cuBLAS and ONNX Runtime kernels loaded
// and set up on first use, per convolution shape), so a graph with the same operators and shapes pays it while the
// real session is still being created. The primer file holds no weights (a few hundred KB for GPEN-512) and is cached
// per model file, like the optimised graph.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type onnxProto from 'onnx-proto';
import { onnx } from '../model/onnx-builder.js';

type ITensor = onnxProto.onnx.ITensorProto;
type INode = onnxProto.onnx.INodeProto;
type IValueInfo = onnxProto.onnx.IValueInfoProto;
import { cacheDir, fileIdentity } from '../model/registry.js';
import { writeFileAtomicSafe } from '../io/files.js';
import { CapiSession } from './capi.js';
import { runtimeVersion } from './session.js';

/** Initializers with fewer elements stay as they are (scalars, epsilons): only weights become zeros. */
const MIN_ELEMENTS = 64;
const FLOAT = 1;
const FLOAT16 = 10;

export interface Primer {
  model: Uint8Array;
  input: { name: string; dims: number[] };
  output: { name: string; elements: number };
  /** How many initializers became ConstantOfShape nodes, and their bytes. */
  replaced: { count: number; bytes: number };
}

/** The primer of an ONNX model: float and half initializers of MIN_ELEMENTS or more made by ConstantOfShape (zeros). */
export function primerModel(bytes: Uint8Array): Primer {
  const m = onnx.ModelProto.decode(bytes);
  const g = m.graph!;
  const keep: ITensor[] = [];
  const made: INode[] = [];
  let count = 0;
  let replacedBytes = 0;
  for (const t of g.initializer ?? []) {
    const dims = (t.dims ?? []).map(Number);
    const n = dims.reduce((a, b) => a * b, 1);
    if ((t.dataType !== FLOAT && t.dataType !== FLOAT16) || n < MIN_ELEMENTS) {
      keep.push(t);
      continue;
    }
    const shape = `${t.name}__primer_shape`;
    keep.push({ name: shape, dims: [dims.length], dataType: 7, rawData: new Uint8Array(BigInt64Array.from(dims.map(BigInt)).buffer) });
    made.push({
      opType: 'ConstantOfShape', name: `${t.name}__primer`, input: [shape], output: [t.name!],
      attribute: [{ name: 'value', type: 4, t: { dims: [1], dataType: t.dataType, rawData: new Uint8Array(t.dataType === FLOAT ? 4 : 2) } }],
    });
    count++;
    replacedBytes += n * (t.dataType === FLOAT ? 4 : 2);
  }
  g.initializer = keep;
  g.node = [...made, ...(g.node ?? [])];
  const dimsOf = (v: IValueInfo): number[] => (v.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimValue !== undefined && d.dimValue !== null && Number(d.dimValue) > 0 ? Number(d.dimValue) : 1));
  const input = g.input!.find((v) => !keep.some((t) => t.name === v.name)) ?? g.input![0];
  const output = g.output![0];
  return {
    model: onnx.ModelProto.encode(m).finish(),
    input: { name: input.name!, dims: dimsOf(input) },
    output: { name: output.name!, elements: dimsOf(output).reduce((a, b) => a * b, 1) },
    replaced: { count, bytes: replacedBytes },
  };
}

/** The primer of a model file, cached by the file's identity and the runtime's version; made in memory for bytes. */
export async function primerFor(model: string | Uint8Array): Promise<Primer & { cache: 'hit' | 'written' | null }> {
  if (typeof model !== 'string') return { ...primerModel(model), cache: null };
  const key = JSON.stringify({ model: await fileIdentity(model), runtime: runtimeVersion(), primer: 1 });
  const dir = path.join(cacheDir(), 'primer');
  const file = path.join(dir, `${createHash('sha256').update(key).digest('hex').slice(0, 32)}.onnx`);
  if (existsSync(file)) {
    // the cached primer is re-read (small) for its input and output names
    return { ...primerModel(new Uint8Array(await readFile(file))), cache: 'hit' };
  }
  const p = primerModel(new Uint8Array(await readFile(model)));
  await mkdir(dir, { recursive: true });
  await writeFileAtomicSafe(file, Buffer.from(p.model.buffer, p.model.byteOffset, p.model.byteLength));
  return { ...p, cache: 'written' };
}

export interface PrimeReport { ms: number; ok: boolean; error?: string; cache?: 'hit' | 'written' | null; createMs?: number; runMs?: number }

/**
 * Creates the primer of `model` on CUDA with `cuda` (provider options; CUDA graphs left out) and runs it once, both
 * on worker threads; resolves with what it did (failures included: the primer is an optimisation, never an error).
 */
export async function prime(model: string | Uint8Array, cuda: Record<string, string>): Promise<PrimeReport> {
  const t0 = performance.now();
  try {
    const p = await primerFor(model);
    const { enable_cuda_graph: _g, ...opts } = cuda;
    const t1 = performance.now();
    const s = await CapiSession.createAsync(p.model, { provider: 'cuda', cuda: opts, graphOptimizationLevel: 0 });
    const t2 = performance.now();
    try {
      await s.runOnceAsync(new Float32Array(p.input.dims.reduce((a, b) => a * b, 1)), p.input.dims, { input: p.input.name, output: p.output.name });
    } finally {
      s.release();
    }
    return { ms: performance.now() - t0, ok: true, cache: p.cache, createMs: t2 - t1, runMs: performance.now() - t2 };
  } catch (e) {
    return { ms: performance.now() - t0, ok: false, error: (e as Error).message };
  }
}
