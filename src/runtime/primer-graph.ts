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

