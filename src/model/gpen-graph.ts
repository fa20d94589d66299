// Builds GPEN's FullGenerator as an ONNX graph from a state dict. The modulated convolution is written in its
// input-modulated form: conv(x * s, W) * demod(s) equals the official grouped conv with per-sample weights, keeps one
// weight per layer, and lets the batch be dynamic. Equalised-lr scales are folded into the stored weights. Rewrites
// for speed, each exact: FusedLeakyReLU's sqrt(2) folded into the consumers, the 3-channel 1x1 input convolution as
// a MatMul, the fp16 graph's blurs as grouped convolutions, the demodulation and the noise weights carried to the
// consumers' styles, ToRGB at the two largest resolutions as a batched MatMul with a per-sample weight (docs/gpu.md
// says why).
import type { GpenArch } from './arch.js';
import { countParams } from './arch.js';
import { GraphBuilder, TensorType } from '../onnx/builder.js';
import type { HostTensor } from '../io/tensor.js';
import { GpenGraph } from './gpen-graph-base.js';
import { buildEncoder } from './gpen-encoder.js';
import { buildLatent, buildStyles } from './gpen-style.js';
import { buildGenerator } from './gpen-decoder.js';

import type { Precision } from '../onnx/precision.js';

export type { Precision } from '../onnx/precision.js';
export { PRECISIONS } from '../onnx/precision.js';

export interface BuildOptions {
  precision: Precision;
  /** Extra metadata_props (gpen-lab.* keys describe the model to every later reader). */
  metadata?: Record<string, string>;
  /**
   * For sessions that run ONNX Runtime's NHWC layout (CUDA prefer_nhwc=1): the MatMuls (the input's 1x1 convolution,
   * ToRGB at the large sizes) written over NHWC views between explicit Transposes, which ONNX Runtime's layout pass
   * cancels against its own, so that nothing between two convolutions is converted back to NCHW.
   */
  nhwc?: boolean;
  /**
   * With `nhwc`: each styled convolution's tail (the feature concatenation, the per-sample bias, the leaky ReLU, and
   * where the next convolution is the only consumer, its modulation) and the encoder's bias and leaky ReLU as one
   * gpen_lab FusedAct node over NHWC (runtime/gpen-ops.ts): only C API sessions with gpen-lab's operators run it.
   */
  fusedAct?: boolean;
}

export const OPSET = 17;

export function gpenMetadata(
  arch: GpenArch,
  precision: Precision,
  extra: Record<string, string>,
): Record<string, string> {
  return {
    'gpen-lab.kind': 'gpen',
    'gpen-lab.size': String(arch.size),
    'gpen-lab.channel_multiplier': String(arch.channelMultiplier),
    'gpen-lab.narrow': String(arch.narrow),
    'gpen-lab.style_dim': String(arch.styleDim),
    'gpen-lab.n_mlp': String(arch.nMlp),
    'gpen-lab.precision': precision,
    'gpen-lab.params': String(countParams(arch)),
    'gpen-lab.synthetic': 'false',
    ...extra,
  };
}

export function buildGpenOnnx(arch: GpenArch, tensors: Map<string, HostTensor>, opts: BuildOptions): Uint8Array {
  const nhwc = opts.nhwc === true;
  const c = new GpenGraph(arch, tensors, opts.precision === 'fp16', nhwc, nhwc && opts.fusedAct === true);
  const feats = buildEncoder(c);
  const styles = buildStyles(c, buildLatent(c, feats[feats.length - 1]));
  c.g.rename(buildGenerator(c, styles, feats), 'output');
  const S = arch.size;
  return c.g.encode({
    name: `gpen_${S}`,
    opset: OPSET,
    inputs: [{ name: 'input', elemType: TensorType.FLOAT, dims: ['batch', 3, S, S] }],
    outputs: [{ name: 'output', elemType: TensorType.FLOAT, dims: ['batch', 3, S, S] }],
    metadata: gpenMetadata(arch, opts.precision, opts.metadata ?? {}),
    docString: `GPEN FullGenerator ${S}x${S}, built by gpen-lab; input and output NCHW float32 in [-1, 1]`,
  });
}

/** The identity model: input returned as output, for measuring the pipeline's own geometric loss. */
export function buildIdentityOnnx(size: number, metadata: Record<string, string> = {}): Uint8Array {
  const g = new GraphBuilder();
  g.node('Identity', ['input'], {}, 1, 'id');
  g.rename(g.nodes[0].output![0], 'output');
  return g.encode({
    name: `identity_${size}`,
    opset: OPSET,
    inputs: [{ name: 'input', elemType: TensorType.FLOAT, dims: ['batch', 3, size, size] }],
    outputs: [{ name: 'output', elemType: TensorType.FLOAT, dims: ['batch', 3, size, size] }],
    metadata: {
      'gpen-lab.kind': 'identity',
      'gpen-lab.size': String(size),
      'gpen-lab.precision': 'fp32',
      'gpen-lab.params': '0',
      'gpen-lab.synthetic': 'false',
      ...metadata,
    },
    docString: `Identity ${size}x${size}: output = input, to measure the pipeline without a network`,
  });
}
