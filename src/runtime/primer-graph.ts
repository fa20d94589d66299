// The primer's graphs (primer.ts runs them): the model's graph with its weights made by ConstantOfShape, and that
// graph cut into parts of about equal first-run time. Apart from primer.ts because it needs the ONNX protobuf
// modules, which a cold start whose primer is cached does not load.
import type onnxProto from 'onnx-proto';
import { onnx } from '../model/onnx-builder.js';
import type { ProfileNode } from './profile.js';

type ITensor = onnxProto.onnx.ITensorProto;
type INode = onnxProto.onnx.INodeProto;
type IValueInfo = onnxProto.onnx.IValueInfoProto;

/** Initializers with fewer elements stay as they are (scalars, epsilons): only weights become zeros. */
const MIN_ELEMENTS = 64;
const FLOAT = 1;
const FLOAT16 = 10;

/** A value's dims with every symbolic or unknown dim taken as 1 (batch 1). */
function fixedDims(v: IValueInfo | undefined): number[] {
  return (v?.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimValue !== undefined && d.dimValue !== null && Number(d.dimValue) > 0 ? Number(d.dimValue) : 1));
}

/** `name` made as zeros of `dims` and ONNX type `type` on the device: its shape initializer and ConstantOfShape node. */
function zeros(name: string, dims: number[], type: number, suffix: string): { shape: ITensor; node: INode } {
  const shape = `${name}__${suffix}_shape`;
  return {
    shape: { name: shape, dims: [dims.length], dataType: 7, rawData: new Uint8Array(BigInt64Array.from(dims.map(BigInt)).buffer) },
    node: { opType: 'ConstantOfShape', name: `${name}__${suffix}`, input: [shape], output: [name], attribute: [{ name: 'value', type: 4, t: { dims: [1], dataType: type, rawData: new Uint8Array(type === FLOAT16 ? 2 : type === 11 ? 8 : 4) } }] },
  };
}

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
    const z = zeros(t.name!, dims, t.dataType, 'primer');
    keep.push(z.shape);
    made.push(z.node);
    count++;
    replacedBytes += n * (t.dataType === FLOAT ? 4 : 2);
  }
  g.initializer = keep;
  g.node = [...made, ...(g.node ?? [])];
  const input = g.input!.find((v) => !keep.some((t) => t.name === v.name)) ?? g.input![0];
  const output = g.output![0];
  return {
    model: onnx.ModelProto.encode(m).finish(),
    input: { name: input.name!, dims: fixedDims(input) },
    output: { name: output.name!, elements: fixedDims(output).reduce((a, b) => a * b, 1) },
    replaced: { count, bytes: replacedBytes },
  };
}

/** ONNX element types of the tensors a part may receive as zeros (float types only: never a shape or an index). */
const FLOAT_TYPES: Record<string, number> = { float: FLOAT, float16: FLOAT16, MLFloat16: FLOAT16, double: 11 };

/**
 * The primer cut into up to `parts` graphs of about equal first-run time, in the order its first run executed (from
 * that run's profile: node times, output shapes and types). A cut goes only where every tensor crossing it is a float
 * tensor: each later part makes those as zeros (ConstantOfShape), so the parts run side by side on the same shapes.
 * Fewer parts come back when no such cut is near enough.
 */
export function splitPrimer(primer: Uint8Array, firstRun: ProfileNode[], parts: number): Uint8Array[] {
  const m = onnx.ModelProto.decode(primer);
  const g = m.graph!;
  const nodes = g.node ?? [];
  const byName = new Map(nodes.map((n) => [n.name!, n]));
  const seen = new Set<string>();
  const order: INode[] = [];
  const msOf = new Map<string, number>();
  const info = new Map<string, { dims: number[]; type: number | null }>();
  for (const r of firstRun) {
    const n = byName.get(r.node);
    if (!n || seen.has(r.node)) continue;
    seen.add(r.node);
    order.push(n);
    msOf.set(r.node, r.ms);
    (n.output ?? []).forEach((o, i) => info.set(o, { dims: r.outputShapes[i] ?? [], type: FLOAT_TYPES[r.outputTypes[i] ?? ''] ?? null }));
  }
  for (const n of nodes) if (!seen.has(n.name!)) order.push(n);
  const input = g.input![0];
  info.set(input.name!, { dims: fixedDims(input), type: input.type?.tensorType?.elemType ?? FLOAT });
  const inits = new Map((g.initializer ?? []).map((t) => [t.name!, t]));
  const producedAt = new Map<string, number>([[input.name!, -1]]);
  order.forEach((n, i) => (n.output ?? []).forEach((o) => producedAt.set(o, i)));
  const lastUse = new Map<string, number>();
  order.forEach((n, i) => (n.input ?? []).forEach((x) => { if (x && producedAt.has(x)) lastUse.set(x, i); }));
  // a cut before position c is allowed when every tensor made before c and used from c on is a float tensor
  const allowed = (c: number) => [...producedAt].every(([t, at]) => !(at < c && (lastUse.get(t) ?? -1) >= c) || (info.get(t)?.type ?? null) !== null);
  const cum: number[] = [0];
  order.forEach((n, i) => cum.push(cum[i] + (msOf.get(n.name!) ?? 0)));
  const total = cum[order.length];
  const cuts: number[] = [0];
  for (let k = 1; k < parts; k++) {
    const target = (total * k) / parts;
    let best = -1;
    for (let c = cuts[cuts.length - 1] + 1; c < order.length; c++) if (allowed(c) && (best < 0 || Math.abs(cum[c] - target) < Math.abs(cum[best] - target))) best = c;
    if (best > 0) cuts.push(best);
  }
  cuts.push(order.length);
  const out: Uint8Array[] = [];
  for (let k = 0; k + 1 < cuts.length; k++) {
    const part = order.slice(cuts[k], cuts[k + 1]);
    const made = new Set(part.flatMap((n) => n.output ?? []));
    const used = new Set(part.flatMap((n) => n.input ?? []).filter(Boolean));
    const keepInit: ITensor[] = [];
    const zeroNodes: INode[] = [];
    const inputs: IValueInfo[] = [];
    for (const t of used) {
      if (made.has(t)) continue;
      const init = inits.get(t);
      if (init) { keepInit.push(init); continue; }
      if (t === input.name && k === 0) { inputs.push(input); continue; }
      const ti = info.get(t);
      if (!ti || ti.type === null) throw new Error(`the primer's part ${k + 1} needs ${t}, whose shape and type its first run did not give`);
      const z = zeros(t, ti.dims, ti.type, 'part');
      keepInit.push(z.shape);
      zeroNodes.push(z.node);
    }
    // what the part makes and does not use itself is its output (shapes and types from the first run)
    const outputs: IValueInfo[] = [...made].filter((t) => !used.has(t) && info.get(t)?.type).map((t) => ({
      name: t, type: { tensorType: { elemType: info.get(t)!.type!, shape: { dim: info.get(t)!.dims.map((d) => ({ dimValue: d })) } } },
    }));
    if (outputs.length === 0) continue;
    out.push(onnx.ModelProto.encode({ ...m, graph: { ...g, node: [...zeroNodes, ...part], initializer: keepInit, input: inputs, output: outputs } }).finish());
  }
  return out;
}

/** A part's first output and its input (only the first part reads the model's input). */
export function partIo(bytes: Uint8Array): { input: { name: string; dims: number[] } | null; output: string } {
  const g = onnx.ModelProto.decode(bytes).graph!;
  const i = g.input?.[0];
  return { input: i ? { name: i.name!, dims: fixedDims(i) } : null, output: g.output![0].name! };
}


/**
 * The library primer of a gpen-lab GPEN graph: one node of each kind whose first use in a process is expensive on
 * CUDA (bench/first-use.ts: cuBLAS Lt's MatMul, cuBLAS's Gemm, the first elementwise kernels, cuDNN's first
 * convolutions, a transposed convolution), at the model's own first shapes and precision, every input made on the
 * device. A handful of nodes: it is created in a few ms and runs beside the whole primer's creation. Null for a
 * graph gpen-lab did not build (its first shapes are not known).
 */
/** The library primer's one output. */
export const LIBRARY_PRIMER_OUTPUT = 'library_primer_out';

export function libraryPrimerModel(bytes: Uint8Array): Uint8Array | null {
  const m = onnx.ModelProto.decode(bytes);
  const g = m.graph!;
  const dimsOf = (name: string) => g.initializer?.find((t) => t.name === name)?.dims?.map(Number) ?? null;
  const w0 = dimsOf('ecd0.0.0.weight');
  const k1 = dimsOf('ecd1.0.0.kernel');
  const w1 = dimsOf('ecd1.0.1.weight');
  const wt = dimsOf('generator.convs.0.conv.weight');
  const size = fixedDims(g.input?.[0]).at(-1) ?? 0;
  const P = g.initializer?.find((t) => t.name === 'ecd0.0.0.weight')?.dataType ?? FLOAT;
  if (!w0 || !k1 || !w1 || !wt || w0.length !== 2 || size < 8) return null;
  const C = w0[0];
  const shapes: ITensor[] = [];
  const nodes: INode[] = [];
  const z = (name: string, dims: number[], type = P) => {
    const made = zeros(name, dims, type, 'lib');
    shapes.push(made.shape);
    nodes.push(made.node);
    return name;
  };
  let n = 0;
  const op = (opType: string, input: string[], attribute: onnxProto.onnx.IAttributeProto[] = []) => {
    const out = `lib_${n++}`;
    nodes.push({ opType, name: out, input, output: [out], attribute });
    return out;
  };
  const ints = (name: string, v: number[]): onnxProto.onnx.IAttributeProto => ({ name, type: 7, ints: v });
  const int = (name: string, v: number): onnxProto.onnx.IAttributeProto => ({ name, type: 2, i: v });
  const shapeOf = (name: string, v: number[]) => {
    shapes.push({ name, dims: [v.length], dataType: 7, rawData: new Uint8Array(BigInt64Array.from(v.map(BigInt)).buffer) });
    return name;
  };
  const mm = op('MatMul', [z('lib_w0', w0), z('lib_x', [1, 3, size * size])]);
  const b = z('lib_b', [1, C, 1, 1]);
  const act = op('Mul', [op('LeakyRelu', [op('Add', [op('Reshape', [mm, shapeOf('lib_shape', [1, C, size, size])]), b])], [{ name: 'alpha', type: 1, f: 0.2 }]), b]);
  const dw = op('Conv', [act, z('lib_k1', k1)], [int('group', C), ints('pads', [2, 2, 2, 2]), ints('kernel_shape', [4, 4])]);
  const c1 = op('Conv', [dw, z('lib_w1', w1)], [ints('kernel_shape', [3, 3]), ints('strides', [2, 2])]);
  const gm = op('Gemm', [z('lib_z', [1, 512], FLOAT), z('lib_gw', [512, 512], FLOAT), z('lib_gb', [512], FLOAT)], [int('transB', 1)]);
  const ct = op('ConvTranspose', [z('lib_t', [1, wt[0], 4, 4]), z('lib_wt', wt)], [ints('kernel_shape', [3, 3]), ints('strides', [2, 2])]);
  const sum = (x: string) => op('ReduceSum', [P === FLOAT ? x : op('Cast', [x], [int('to', FLOAT)])], [int('keepdims', 0)]);
  const last = op('Add', [op('Add', [sum(c1), op('ReduceSum', [gm], [int('keepdims', 0)])]), sum(ct)]);
  const out = LIBRARY_PRIMER_OUTPUT;
  nodes[nodes.length - 1].output = [out];
  void last;
  return onnx.ModelProto.encode({
    irVersion: m.irVersion, opsetImport: m.opsetImport, producerName: 'gpen-lab',
    graph: { name: 'library_primer', node: nodes, initializer: shapes, input: [], output: [{ name: out, type: { tensorType: { elemType: FLOAT, shape: { dim: [] } } } }] },
  }).finish();
}
