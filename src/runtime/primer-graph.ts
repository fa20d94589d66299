// The primer's graph (primer.ts runs it): the model's graph with its weights made by ConstantOfShape. Apart from
// primer.ts because it needs the ONNX protobuf modules, which a cold start whose primer is cached does not load.
import type onnxProto from 'onnx-proto';
import { onnx } from '../onnx/builder.js';

type ITensor = onnxProto.onnx.ITensorProto;
type INode = onnxProto.onnx.INodeProto;
type IValueInfo = onnxProto.onnx.IValueInfoProto;

/** Initializers with fewer elements stay as they are (scalars, epsilons): only weights become zeros. */
const MIN_ELEMENTS = 64;
const FLOAT = 1;
const FLOAT16 = 10;

/** A value's dims with every symbolic or unknown dim taken as 1 (batch 1). */
function fixedDims(v: IValueInfo | undefined): number[] {
  return (v?.type?.tensorType?.shape?.dim ?? []).map((d) =>
    d.dimValue !== undefined && d.dimValue !== null && Number(d.dimValue) > 0 ? Number(d.dimValue) : 1,
  );
}

/** `name` made as zeros of `dims` and ONNX type `type` on the device: its shape initializer and ConstantOfShape node. */
function zeros(name: string, dims: number[], type: number, suffix: string): { shape: ITensor; node: INode } {
  const shape = `${name}__${suffix}_shape`;
  return {
    shape: {
      name: shape,
      dims: [dims.length],
      dataType: 7,
      rawData: new Uint8Array(BigInt64Array.from(dims.map(BigInt)).buffer),
    },
    node: {
      opType: 'ConstantOfShape',
      name: `${name}__${suffix}`,
      input: [shape],
      output: [name],
      attribute: [
        {
          name: 'value',
          type: 4,
          t: { dims: [1], dataType: type, rawData: new Uint8Array(type === FLOAT16 ? 2 : type === 11 ? 8 : 4) },
        },
      ],
    },
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
