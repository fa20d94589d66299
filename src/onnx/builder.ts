// A small ONNX graph builder over onnx-proto: nodes, initializers and the model envelope. It builds, never runs.
import type onnxProto from 'onnx-proto';
import { onFirstUse } from '../io/lazy-module.js';

const onnxProtoModule = onFirstUse<typeof onnxProto>('onnx-proto');
/**
 * onnx-proto's namespace, loaded on first use: protobufjs and the ONNX schema take 50-100 ms to load, which a restore
 * from an already described ONNX file and cached detector graphs never needs (a cold start's first part).
 */
export const onnx = new Proxy({} as typeof onnxProto.onnx, {
  get: (_t, key) => Reflect.get(onnxProtoModule().onnx, key),
});

export const TensorType = { FLOAT: 1, INT64: 7, FLOAT16: 10 } as const;
const AttrType = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7 } as const;

export type AttrValue = number | string | number[] | { float: number };

export interface ValueInfo {
  name: string;
  elemType: number;
  dims: (number | string)[];
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export class GraphBuilder {
  readonly nodes: onnxProto.onnx.INodeProto[] = [];
  readonly initializers: onnxProto.onnx.ITensorProto[] = [];
  private used = new Set<string>();
  private counter = 0;
  /** Operator domains beyond ONNX's own that the nodes use, with their opset version. */
  private readonly domains = new Map<string, number>();

  /** A fresh value name, unique in the graph. */
  fresh(hint: string): string {
    let name = `${hint}_${this.counter++}`;
    while (this.used.has(name)) name = `${hint}_${this.counter++}`;
    return name;
  }

  initializer(
    name: string,
    dims: number[],
    data: Float32Array | Uint16Array | BigInt64Array,
    elemType?: number,
  ): string {
    if (this.used.has(name)) throw new Error(`duplicate value name ${name}`);
    this.used.add(name);
    const type =
      elemType ??
      (data instanceof Float32Array
        ? TensorType.FLOAT
        : data instanceof Uint16Array
          ? TensorType.FLOAT16
          : TensorType.INT64);
    this.initializers.push({ name, dims, dataType: type, rawData: bytesOf(data) });
    return name;
  }

  constFloat(values: number[], dims: number[], hint = 'c'): string {
    return this.initializer(this.fresh(hint), dims, Float32Array.from(values));
  }

  constHalf(values: Uint16Array, dims: number[], hint = 'c'): string {
    return this.initializer(this.fresh(hint), dims, values, TensorType.FLOAT16);
  }

  constInt64(values: number[], hint = 'shape'): string {
    return this.initializer(this.fresh(hint), [values.length], BigInt64Array.from(values.map((v) => BigInt(v))));
  }

  /** Adds a node; returns its output names. */
  node(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, nOut = 1, hint?: string): string[] {
    const outputs = Array.from({ length: nOut }, () => {
      const o = this.fresh(hint ?? opType.toLowerCase());
      this.used.add(o);
      return o;
    });
    const attribute = Object.entries(attrs).map(([name, v]) => attr(name, v));
    this.nodes.push({ opType, input: inputs, output: outputs, attribute, name: outputs[0] });
    return outputs;
  }

  /** A single-output node of a custom operator domain (imported by the model at `version`). */
  customOp(domain: string, version: number, opType: string, inputs: string[], hint?: string): string {
    this.domains.set(domain, version);
    const out = this.op(opType, inputs, {}, hint);
    this.nodes[this.nodes.length - 1].domain = domain;
    return out;
  }

  /** Single-output node. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, hint?: string): string {
    return this.node(opType, inputs, attrs, 1, hint)[0];
  }

  /** Renames the output of the last node that produced `from` (used to give graph outputs their public name). */
  rename(from: string, to: string): void {
    for (const n of this.nodes) {
      n.output = n.output!.map((o) => (o === from ? to : o));
      n.input = n.input!.map((o) => (o === from ? to : o));
    }
    this.used.add(to);
  }

  encode(opts: {
    inputs: ValueInfo[];
    outputs: ValueInfo[];
    metadata: Record<string, string>;
    opset: number;
    name: string;
    docString?: string;
  }): Uint8Array {
    const vi = (v: ValueInfo): onnxProto.onnx.IValueInfoProto => ({
      name: v.name,
      type: {
        tensorType: {
          elemType: v.elemType,
          shape: { dim: v.dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
        },
      },
    });
    const model: onnxProto.onnx.IModelProto = {
      irVersion: 8,
      producerName: 'gpen-lab',
      producerVersion: '0.1.0',
      docString: opts.docString ?? '',
      opsetImport: [
        { domain: '', version: opts.opset },
        ...[...this.domains].map(([domain, version]) => ({ domain, version })),
      ],
      metadataProps: Object.entries(opts.metadata).map(([key, value]) => ({ key, value })),
      graph: {
        name: opts.name,
        node: this.nodes,
        initializer: this.initializers,
        input: opts.inputs.map(vi),
        output: opts.outputs.map(vi),
      },
    };
    return onnx.ModelProto.encode(model).finish();
  }
}

function attr(name: string, v: AttrValue): onnxProto.onnx.IAttributeProto {
  if (typeof v === 'string') return { name, type: AttrType.STRING, s: new TextEncoder().encode(v) };
  if (typeof v === 'number') return { name, type: AttrType.INT, i: v };
  if (Array.isArray(v)) return { name, type: AttrType.INTS, ints: v };
  return { name, type: AttrType.FLOAT, f: v.float };
}
