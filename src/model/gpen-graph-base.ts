// What every stage of the GPEN graph shares: the builder, the state dict's tensors, the compute precision (fp32 or
// fp16, with the style path kept in fp32), the NHWC and FusedAct forms of the activations, and the blurs.
import type { GpenArch } from './arch.js';
import { channels, log2 } from './arch.js';
import { GraphBuilder, TensorType } from '../onnx/builder.js';
import type { HostTensor } from '../io/tensor.js';
import { float32ToHalfArray, toFloat32 } from '../io/tensor.js';
import { GPEN_OPS } from '../onnx/custom-ops.js';

export const SQRT2 = Math.SQRT2;
export const NEG_SLOPE = 0.2;
/** Channels per group of the blur's convolution (see GpenGraph.blur). */
const BLUR_GROUP = 32;

export function scaled(a: Float32Array, s: number): Float32Array {
  const o = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) o[i] = a[i] * s;
  return o;
}

/** upfirdn2d convolves with the flipped kernel; ONNX Conv correlates, so flip to stay exact for any kernel. */
function flipped(k: Float32Array, n: number): Float32Array {
  const o = new Float32Array(n * n);
  for (let i = 0; i < n * n; i++) o[i] = k[n * n - 1 - i];
  return o;
}

export function depthwise(k: Float32Array, c: number): Float32Array {
  const o = new Float32Array(c * k.length);
  for (let i = 0; i < c; i++) o.set(k, i * k.length);
  return o;
}

/**
 * One GPEN graph under construction. The stages add their nodes in the network's order, which fixes the fresh value
 * names, so the same inputs always encode to the same bytes.
 */
export class GpenGraph {
  readonly g = new GraphBuilder();
  readonly ch: Record<number, number>;
  /** Channels of a styled convolution's output per conv channel: 2 where GPEN concatenates the encoder feature. */
  readonly f: number;
  readonly L: number;
  /** Reshape target [N, C] -> [N, C, 1, 1]. */
  readonly R4: string;
  readonly sqrt2F: string;
  readonly epsF: string;
  readonly zeroF: string;
  private readonly slopes = new Map<number, string>();
  private readonly diagonals = new Map<number, string>();

  constructor(
    readonly arch: GpenArch,
    private readonly tensors: Map<string, HostTensor>,
    readonly half: boolean,
    readonly nhwc: boolean,
    /** BuildOptions.fusedAct, only with nhwc. */
    readonly fused: boolean,
  ) {
    this.ch = channels(arch);
    this.f = arch.isConcat ? 2 : 1;
    this.L = log2(arch.size);
    this.R4 = this.g.constInt64([0, -1, 1, 1], 'shape_nc11');
    this.sqrt2F = this.g.constFloat([SQRT2], [], 'sqrt2');
    this.epsF = this.g.constFloat([1e-8], [], 'eps');
    this.zeroF = this.g.constFloat([0], [], 'zero');
  }

  get(name: string): Float32Array {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`internal: tensor ${name} missing after validation`);
    return toFloat32(t);
  }

  /** An initializer in the compute precision. */
  param(name: string, dims: number[], data: Float32Array): string {
    return this.half ? this.g.initializer(name, dims, float32ToHalfArray(data)) : this.g.initializer(name, dims, data);
  }

  toCompute(x: string): string {
    return this.half ? this.g.op('Cast', [x], { to: TensorType.FLOAT16 }) : x;
  }

  toFloat(x: string): string {
    return this.half ? this.g.op('Cast', [x], { to: TensorType.FLOAT }) : x;
  }

  /** FusedLeakyReLU's activation on the small fp32 tensors of the style path: leaky_relu(x) * sqrt(2). */
  lrelu(x: string): string {
    return this.g.op('Mul', [this.g.op('LeakyRelu', [x], { alpha: { float: NEG_SLOPE } }), this.sqrt2F]);
  }

  /**
   * FusedLeakyReLU over NCHW without its final * sqrt(2): leaky_relu(x + b). Every consumer of these activations is
   * linear (a convolution, a modulation, the noise-injection weight, the final linear layer), so the sqrt(2) is folded
   * into the consumer's weight or style instead of costing a pass over the activation.
   */
  fusedLreluUnscaled(x: string, biasName: string, c: number): string {
    const { g } = this;
    return this.fused
      ? this.fusedAct(x, null, g.initializer(biasName, [c], this.get(biasName)), this.leakySlope(c), null)
      : g.op('LeakyRelu', [g.op('Add', [x, this.param(biasName, [1, c, 1, 1], this.get(biasName))])], {
          alpha: { float: NEG_SLOPE },
        });
  }

  /**
   * FusedAct (BuildOptions.fusedAct) on NCHW values: prelu(cat(x, f) + bias, slope) * scale, computed over NHWC views
   * between Transposes that ONNX Runtime's layout pass cancels against its own (as for the MatMuls). bias [C] or
   * [N, C], slope [C], scale [N, C] or none, all float32.
   */
  fusedAct(x: string, f: string | null, bias: string, slope: string, scale: string | null): string {
    const { g } = this;
    const v = (t: string) => g.op('Transpose', [t], { perm: [0, 2, 3, 1] });
    const y = g.customOp(
      GPEN_OPS.domain,
      GPEN_OPS.version,
      this.half ? GPEN_OPS.fusedAct.fp16 : GPEN_OPS.fusedAct.fp32,
      [v(x), f ? v(f) : '', bias, slope, scale ?? ''],
      'fused_act',
    );
    return g.op('Transpose', [y], { perm: [0, 3, 1, 2] });
  }

  /** The leaky ReLU's slope as FusedAct's per-channel input, one initializer per channel count. */
  leakySlope(c: number): string {
    let s = this.slopes.get(c);
    if (!s) this.slopes.set(c, (s = this.g.initializer(`leaky_slope_${c}`, [c], new Float32Array(c).fill(NEG_SLOPE))));
    return s;
  }

  /**
   * Blur (upfirdn2d with up = down = 1) as a grouped convolution of 32 channels per group whose weight is zero off
   * each channel's own kernel: the same sums as the depthwise convolution, which cuDNN runs at a sixth of its memory
   * speed, while the grouped form reaches its tensor-core kernels (twice as fast, measured on an
   * H200 at fp16 batch 32). In the fp16 graph only (a GPU precision): on the CPU the grouped form is 32 times the
   * arithmetic (GPEN-512 fp32 10-15% slower on 2 cores), and fewer than 32 channels, or a count 32 does not divide,
   * stay depthwise too. In the NHWC form (either precision) one dense convolution (zero off the diagonal): cuDNN's
   * NHWC grouped convolutions copy each group's channels out and back (nhwcSliceC kernels, ~7% of a batch-32 run),
   * and its NHWC depthwise one is 2.5 times slower again. The forms tried and not kept are in docs/gpu.md.
   */
  blur(x: string, kernelName: string, c: number, pad0: number, pad1: number): string {
    const { g } = this;
    const k = depthwise(flipped(this.get(kernelName), 4), c);
    const per = this.nhwc ? c : BLUR_GROUP;
    if (!this.nhwc && (!this.half || c % per !== 0))
      return g.op('Conv', [x, this.param(kernelName, [c, 1, 4, 4], k)], {
        group: c,
        pads: [pad0, pad0, pad1, pad1],
        kernel_shape: [4, 4],
      });
    // the grouped weight made in the graph (kernel x a 0/1 diagonal, one per channel count): stored, it would add 32
    // copies of every blur kernel to the file. In fp32, then cast: ONNX Runtime folds constants with CPU kernels, and
    // an fp16 Mul has none (a CUDA session warned for each blur and computed the weight at every run)
    let diag = this.diagonals.get(c);
    if (!diag) {
      const d = new Float32Array(c * per);
      for (let o = 0; o < c; o++) d[o * per + (o % per)] = 1;
      diag = g.initializer(`blur_diagonal_${c}`, [c, per, 1, 1], d);
      this.diagonals.set(c, diag);
    }
    const w = this.toCompute(g.op('Mul', [g.initializer(kernelName, [c, 1, 4, 4], k), diag]));
    return g.op('Conv', [x, w], { group: c / per, pads: [pad0, pad0, pad1, pad1], kernel_shape: [4, 4] });
  }
}
