// Inspects an .onnx that claims to be GPEN, without onnxruntime: decodes the protobuf, checks that it is a 3-channel
// image-to-image net of a GPEN size, and tells gpen-lab's own, published and upstream torch exports apart.
// Tensor bytes stay views into the one file buffer (protobufjs slices, never copies), so a 1 GB GPEN-2048 is read once.
import type { Precision } from '../onnx/precision.js';
import type onnxProto from 'onnx-proto';
import { onnx } from '../onnx/builder.js';
import { GpenLabError, errorMessage } from '../errors.js';
import { readInputFile } from '../io/files.js';
import { GPEN_SIZES } from './arch.js';

type Tensor = onnxProto.onnx.ITensorProto;
type ValueInfo = onnxProto.onnx.IValueInfoProto;
type Int = number | { toNumber(): number } | null | undefined;

export type OnnxGpenKind = 'gpen' | 'identity';
export type OnnxOrigin = 'gpen-lab' | 'published' | 'upstream-export' | 'unknown';

export interface OnnxModelInfo {
  file: string;
  format: 'onnx';
  origin: OnnxOrigin;
  kind: OnnxGpenKind;
  /** Side of the square input, one of GPEN's sizes. */
  size: number;
  inputName: string;
  outputName: string;
  /** A string is a symbolic dim. */
  inputDims: (number | string)[];
  outputDims: (number | string)[];
  /** The batch the input is fixed to (1 in published files), null when symbolic. */
  fixedBatch: number | null;
  precision: Precision;
  /** Elements of the float initializers and float Constant tensors. */
  params: number;
  opset: number;
  irVersion: number;
  producer: string;
  metadata: Record<string, string>;
  synthetic: boolean;
  channelMultiplier: number | null;
  narrow: number | null;
}

const FLOAT = 1;
const FLOAT16 = 10;
const FLOAT_TYPES = new Set([FLOAT, FLOAT16, 11 /* DOUBLE */, 16 /* BFLOAT16 */]);
/** Bytes per element by TensorProto.DataType (STRING has no raw form). */
const ELEM_BYTES: Record<number, number> = {
  1: 4,
  2: 1,
  3: 1,
  4: 2,
  5: 2,
  6: 4,
  7: 8,
  9: 1,
  10: 2,
  11: 8,
  12: 4,
  13: 8,
  14: 8,
  15: 16,
  16: 2,
};
const EXTERNAL = 1;
const GPEN_NAME = /^(generator\.|ecd\d+\.|final_linear\.)/;

const num = (v: Int): number => (v == null ? 0 : typeof v === 'number' ? v : v.toNumber());
const numel = (dims: Int[] | null | undefined): number => (dims ?? []).reduce<number>((a, d) => a * num(d), 1);

export async function inspectOnnx(file: string): Promise<OnnxModelInfo> {
  return inspectOnnxBuffer(await readInputFile(file, 'an ONNX model'), file);
}

export function inspectOnnxBuffer(buf: Uint8Array, file: string): OnnxModelInfo {
  const corrupt = (what: string, cause?: unknown): GpenLabError =>
    new GpenLabError(
      'E_ONNX_CORRUPT',
      `${file} is not a readable ONNX model: ${what} (expected a complete ONNX ModelProto)`,
      'Download or export the file again; it is truncated or not an .onnx at all.',
      { input: file },
      { cause },
    );
  const notGpen = (what: string): GpenLabError =>
    new GpenLabError(
      'E_NOT_GPEN',
      `${file} is an ONNX model of another network: ${what} (expected GPEN: one float input [N,3,S,S] and one output of the same shape)`,
      'Pass a GPEN face-restoration model, such as gpen_bfr_512.onnx or one gpen-lab built.',
      { input: file },
    );

  if (buf.length === 0) throw corrupt('the file is empty');
  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(buf);
  } catch (e) {
    throw corrupt(`protobuf decoding failed (${errorMessage(e)})`, e);
  }
  // A truncated or foreign file can decode partially, so require what every real model has.
  const g = model.graph as onnxProto.onnx.GraphProto | null;
  if (num(model.irVersion) <= 0) throw corrupt('no ir_version');
  if (!g || g.node.length === 0) throw corrupt('no graph, or a graph without nodes');
  if (g.input.length === 0 || g.output.length === 0) throw corrupt('the graph has no inputs or no outputs');
  const opsetEntry = model.opsetImport.find((o) => !o.domain || o.domain === 'ai.onnx');
  if (!opsetEntry) throw corrupt('no opset_import for the default domain');
  const constants = g.node
    .filter((n) => n.opType === 'Constant')
    .map((n) => (n.attribute ?? []).find((a) => a.name === 'value')?.t)
    .filter((t): t is Tensor => !!t);
  for (const t of [...g.initializer, ...constants]) {
    if (!tensorDataComplete(t))
      throw corrupt(
        `tensor ${t.name || '(constant)'} holds fewer or more bytes than its dims [${(t.dims ?? []).map(num).join(',')}] need`,
      );
  }

  const metadata: Record<string, string> = {};
  for (const p of model.metadataProps) metadata[p.key ?? ''] = p.value ?? '';

  // Older exporters list initializers among graph inputs as well: those are weights, not inputs.
  const inits = new Set(g.initializer.map((t) => t.name ?? ''));
  const inputs = g.input.filter((v) => !inits.has(v.name ?? ''));
  if (inputs.length !== 1) throw notGpen(`${inputs.length} graph inputs (${inputs.map((v) => v.name).join(', ')})`);
  if (g.output.length !== 1)
    throw notGpen(`${g.output.length} graph outputs (${g.output.map((v) => v.name).join(', ')})`);
  const [inp, out] = [inputs[0], g.output[0]];
  const inT = describe(inp);
  const outT = describe(out);
  if (!inT || !FLOAT_TYPES.has(inT.elemType)) throw notGpen(`input ${inp.name} is not a float tensor`);
  if (!outT || !FLOAT_TYPES.has(outT.elemType)) throw notGpen(`output ${out.name} is not a float tensor`);
  const iD = inT.dims;
  const oD = outT.dims;
  const shown = (d: (number | string)[] | null) => (d ? `[${d.join(',')}]` : 'of unknown shape');
  if (!iD || iD.length !== 4 || iD[1] !== 3) throw notGpen(`input ${inp.name} is ${shown(iD)}`);
  // The output may be symbolic (torch exports) but must not contradict the input where both are fixed.
  const clash = (a: number | string, b: number | string) => typeof a === 'number' && typeof b === 'number' && a !== b;
  if (oD && (oD.length !== 4 || oD.some((d, i) => clash(d, iD[i])))) {
    throw notGpen(`output ${out.name} is ${shown(oD)} for input ${shown(iD)}`);
  }

  const [, , h, w] = iD;
  if (typeof h !== 'number' || typeof w !== 'number' || h !== w || !(GPEN_SIZES as readonly number[]).includes(h)) {
    throw new GpenLabError(
      'E_SIZE_UNKNOWN',
      `${file} looks like GPEN but its input is ${shown(iD)}: expected a square S x S with S one of ${GPEN_SIZES.join(', ')}`,
      'Use a GPEN model of a standard size (the official ones are 256, 512, 1024 and 2048), exported with a fixed input size.',
      { input: file, inputDims: iD },
    );
  }
  const size = h;

  let origin: OnnxOrigin;
  let kind: OnnxGpenKind = 'gpen';
  const mdKind = metadata['gpen-lab.kind'];
  const producer = model.producerName;
  const fixed1 = (d: (number | string)[] | null) =>
    !!d && d.length === 4 && [1, 3, size, size].every((v, i) => d[i] === v);
  if (mdKind !== undefined) {
    if (mdKind !== 'gpen' && mdKind !== 'identity')
      throw notGpen(`metadata gpen-lab.kind is ${JSON.stringify(mdKind)}, not gpen or identity`);
    const mdSize = metadata['gpen-lab.size'];
    if (mdSize !== undefined && Number(mdSize) !== size) {
      throw new GpenLabError(
        'E_SHAPE_MISMATCH',
        `${file}: metadata gpen-lab.size is ${mdSize} but the input is ${shown(iD)}`,
        'Rebuild the model with gpen-lab; the file was edited after it was written.',
        { input: file },
      );
    }
    origin = 'gpen-lab';
    kind = mdKind;
  } else if (inp.name === 'input' && out.name === 'output' && inT.elemType === FLOAT && fixed1(iD) && fixed1(oD)) {
    origin = 'published';
  } else if (producer === 'pytorch' && g.initializer.some((t) => GPEN_NAME.test(t.name ?? ''))) {
    origin = 'upstream-export';
  } else {
    origin = 'unknown';
  }

  let params = 0;
  let half = 0;
  for (const t of [...g.initializer, ...constants]) {
    if (!FLOAT_TYPES.has(t.dataType ?? 0)) continue;
    const n = numel(t.dims);
    params += n;
    if (t.dataType === FLOAT16) half += n;
  }
  const mdPrecision = metadata['gpen-lab.precision'];
  const precision =
    origin === 'gpen-lab' && (mdPrecision === 'fp32' || mdPrecision === 'fp16')
      ? mdPrecision
      : inT.elemType === FLOAT16 || half * 2 > params
        ? 'fp16'
        : 'fp32';
  const mdNumber = (key: string): number | null => {
    const v = origin === 'gpen-lab' && metadata[key] !== undefined ? Number(metadata[key]) : NaN;
    return Number.isFinite(v) ? v : null;
  };

  return {
    file,
    format: 'onnx',
    origin,
    kind,
    size,
    inputName: inp.name ?? '',
    outputName: out.name ?? '',
    inputDims: iD,
    outputDims: oD ?? [],
    fixedBatch: typeof iD[0] === 'number' ? iD[0] : null,
    precision,
    params,
    opset: num(opsetEntry.version),
    irVersion: num(model.irVersion),
    producer,
    metadata,
    synthetic: metadata['gpen-lab.synthetic'] === 'true',
    channelMultiplier: mdNumber('gpen-lab.channel_multiplier'),
    narrow: mdNumber('gpen-lab.narrow'),
  };
}

/** Element type and dims of a tensor value; dims null when the shape is not given, '?' for an unnamed unknown dim. */
function describe(v: ValueInfo): { elemType: number; dims: (number | string)[] | null } | null {
  const tt = v.type?.tensorType;
  if (!tt) return null;
  const dims = tt.shape
    ? (tt.shape.dim ?? []).map((d) => (d.dimValue != null ? num(d.dimValue) : d.dimParam || '?'))
    : null;
  return { elemType: tt.elemType ?? 0, dims };
}

/** Whether a tensor's stored data matches its dims: catches a file cut at a field boundary. */
function tensorDataComplete(t: Tensor): boolean {
  if (t.dataLocation === EXTERNAL) return true;
  const n = numel(t.dims);
  const width = ELEM_BYTES[t.dataType ?? 0];
  if (t.rawData && t.rawData.length > 0) return width === undefined || t.rawData.length === n * width;
  const complex = t.dataType === 14 || t.dataType === 15 ? 2 : 1;
  const count =
    (t.floatData?.length ?? 0) +
    (t.int32Data?.length ?? 0) +
    (t.int64Data?.length ?? 0) +
    (t.doubleData?.length ?? 0) +
    (t.uint64Data?.length ?? 0) +
    (t.stringData?.length ?? 0);
  return count === n * complex;
}
