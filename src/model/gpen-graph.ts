// Builds GPEN's FullGenerator as an ONNX graph from a state dict. The modulated convolution is written in its
// input-modulated form: conv(x * s, W) * demod(s) equals the official grouped conv with per-sample weights, keeps one
// weight per layer, and lets the batch be dynamic. Equalised-lr scales are folded into the stored weights. Rewrites
// for speed, each exact: FusedLeakyReLU's sqrt(2) folded into the consumers, the 3-channel 1x1 input convolution as
// a MatMul, the fp16 graph's blurs as grouped convolutions, the demodulation and the noise weights carried to the
// consumers' styles, ToRGB at the two largest resolutions as a batched MatMul with a per-sample weight (docs/gpu.md
// says why).
import type { GpenArch } from './arch.js';
import { channels, countParams, log2 } from './arch.js';
import { GraphBuilder, TensorType } from '../onnx/builder.js';
import type { HostTensor } from '../io/tensor.js';
import { float32ToHalfArray, toFloat32 } from '../io/tensor.js';
import { GPEN_OPS } from '../onnx/custom-ops.js';

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
export { GRAPH_VERSION, graphTag } from './converted.js';
const SQRT2 = Math.SQRT2;
const NEG_SLOPE = 0.2;
/** Channels per group of the blur's convolution (see blur()). */
const BLUR_GROUP = 32;

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
  const g = new GraphBuilder();
  const half = opts.precision === 'fp16';
  const nhwc = opts.nhwc === true;
  const fused = nhwc && opts.fusedAct === true;
  const ch = channels(arch);
  const f = arch.isConcat ? 2 : 1;
  const L = log2(arch.size);
  const get = (name: string): Float32Array => {
    const t = tensors.get(name);
    if (!t) throw new Error(`internal: tensor ${name} missing after validation`);
    return toFloat32(t);
  };
  const scaled = (a: Float32Array, s: number): Float32Array => {
    const o = new Float32Array(a.length);
    for (let i = 0; i < a.length; i++) o[i] = a[i] * s;
    return o;
  };
  /** An initializer in the compute precision. */
  const param = (name: string, dims: number[], data: Float32Array): string =>
    half ? g.initializer(name, dims, float32ToHalfArray(data)) : g.initializer(name, dims, data);
  const toCompute = (x: string) => (half ? g.op('Cast', [x], { to: TensorType.FLOAT16 }) : x);
  const toFloat = (x: string) => (half ? g.op('Cast', [x], { to: TensorType.FLOAT }) : x);

  const R4 = g.constInt64([0, -1, 1, 1], 'shape_nc11');
  const sqrt2F = g.constFloat([SQRT2], [], 'sqrt2');
  const epsF = g.constFloat([1e-8], [], 'eps');
  const zeroF = g.constFloat([0], [], 'zero');

  /** FusedLeakyReLU's activation on the small fp32 tensors of the style path: leaky_relu(x) * sqrt(2). */
  const lrelu = (x: string) => g.op('Mul', [g.op('LeakyRelu', [x], { alpha: { float: NEG_SLOPE } }), sqrt2F]);
  /**
   * FusedLeakyReLU over NCHW without its final * sqrt(2): leaky_relu(x + b). Every consumer of these activations is
   * linear (a convolution, a modulation, the noise-injection weight, the final linear layer), so the sqrt(2) is folded
   * into the consumer's weight or style instead of costing a pass over the activation.
   */
  const fusedLreluUnscaled = (x: string, biasName: string, c: number) =>
    fused
      ? fusedAct(x, null, g.initializer(biasName, [c], get(biasName)), leakySlope(c), null)
      : g.op('LeakyRelu', [g.op('Add', [x, param(biasName, [1, c, 1, 1], get(biasName))])], {
          alpha: { float: NEG_SLOPE },
        });
  /**
   * FusedAct (BuildOptions.fusedAct) on NCHW values: prelu(cat(x, f) + bias, slope) * scale, computed over NHWC views
   * between Transposes that ONNX Runtime's layout pass cancels against its own (as for the MatMuls below). bias [C] or
   * [N, C], slope [C], scale [N, C] or none, all float32.
   */
  const fusedAct = (x: string, f: string | null, bias: string, slope: string, scale: string | null) => {
    const v = (t: string) => g.op('Transpose', [t], { perm: [0, 2, 3, 1] });
    const y = g.customOp(
      GPEN_OPS.domain,
      GPEN_OPS.version,
      half ? GPEN_OPS.fusedAct.fp16 : GPEN_OPS.fusedAct.fp32,
      [v(x), f ? v(f) : '', bias, slope, scale ?? ''],
      'fused_act',
    );
    return g.op('Transpose', [y], { perm: [0, 3, 1, 2] });
  };
  const slopes = new Map<number, string>();
  const leakySlope = (c: number) => {
    let s = slopes.get(c);
    if (!s) slopes.set(c, (s = g.initializer(`leaky_slope_${c}`, [c], new Float32Array(c).fill(NEG_SLOPE))));
    return s;
  };

  /** upfirdn2d convolves with the flipped kernel; ONNX Conv correlates, so flip to stay exact for any kernel. */
  const flipped = (k: Float32Array, n: number) => {
    const o = new Float32Array(n * n);
    for (let i = 0; i < n * n; i++) o[i] = k[n * n - 1 - i];
    return o;
  };
  const depthwise = (k: Float32Array, c: number) => {
    const o = new Float32Array(c * k.length);
    for (let i = 0; i < c; i++) o.set(k, i * k.length);
    return o;
  };
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
  const diagonals = new Map<number, string>();
  const blur = (x: string, kernelName: string, c: number, pad0: number, pad1: number) => {
    const k = depthwise(flipped(get(kernelName), 4), c);
    const per = nhwc ? c : BLUR_GROUP;
    if (!nhwc && (!half || c % per !== 0))
      return g.op('Conv', [x, param(kernelName, [c, 1, 4, 4], k)], {
        group: c,
        pads: [pad0, pad0, pad1, pad1],
        kernel_shape: [4, 4],
      });
    // the grouped weight made in the graph (kernel x a 0/1 diagonal, one per channel count): stored, it would add 32
    // copies of every blur kernel to the file. In fp32, then cast: ONNX Runtime folds constants with CPU kernels, and
    // an fp16 Mul has none (a CUDA session warned for each blur and computed the weight at every run)
    let diag = diagonals.get(c);
    if (!diag) {
      const d = new Float32Array(c * per);
      for (let o = 0; o < c; o++) d[o * per + (o % per)] = 1;
      diag = g.initializer(`blur_diagonal_${c}`, [c, per, 1, 1], d);
      diagonals.set(c, diag);
    }
    const w = toCompute(g.op('Mul', [g.initializer(kernelName, [c, 1, 4, 4], k), diag]));
    return g.op('Conv', [x, w], { group: c / per, pads: [pad0, pad0, pad1, pad1], kernel_shape: [4, 4] });
  };

  // ---- input
  let x = toCompute('input');

  // ---- encoder: ecd0 (1x1 conv), then blur + stride-2 3x3 conv per stage; each stage output feeds the generator.
  // Every feature map here is leaky_relu(.) without FusedLeakyReLU's sqrt(2): its consumers carry it.
  const feats: string[] = [];
  const S = arch.size;
  {
    // the 1x1 conv from 3 channels as one MatMul over [N, 3, H*W]: cuDNN is slow for 3 input channels
    const w = get('ecd0.0.0.weight');
    const c = ch[S];
    if (nhwc) {
      // [N, H*W, 3] x [3, c] over an NHWC view, back to NCHW by a Transpose the layout pass cancels
      const wt = new Float32Array(3 * c);
      const ws = scaled(w, 1 / Math.sqrt(3));
      for (let o = 0; o < c; o++) for (let i = 0; i < 3; i++) wt[i * c + o] = ws[o * 3 + i];
      const flat = g.op('Reshape', [
        g.op('Transpose', [x], { perm: [0, 2, 3, 1] }),
        g.constInt64([0, -1, 3], 'shape_np3'),
      ]);
      const mm = g.op('MatMul', [flat, param('ecd0.0.0.weight', [3, c], wt)]);
      x = g.op('Transpose', [g.op('Reshape', [mm, g.constInt64([0, S, S, c], 'shape_ecd0_nhwc')])], {
        perm: [0, 3, 1, 2],
      });
    } else {
      const flat = g.op('Reshape', [x, g.constInt64([0, 3, -1], 'shape_n3p')]);
      const mm = g.op('MatMul', [param('ecd0.0.0.weight', [c, 3], scaled(w, 1 / Math.sqrt(3))), flat]);
      x = g.op('Reshape', [mm, g.constInt64([0, c, S, S], 'shape_ecd0')]);
    }
    x = fusedLreluUnscaled(x, 'ecd0.0.1.bias', c);
    feats.push(x);
  }
  let cin = ch[S];
  for (let i = L; i > 2; i--) {
    const j = L - i + 1;
    const cout = ch[2 ** (i - 1)];
    const blurred = blur(x, `ecd${j}.0.0.kernel`, cin, 2, 2);
    // the input's sqrt(2) folds into this (linear) convolution's weight
    const w = scaled(get(`ecd${j}.0.1.weight`), SQRT2 / Math.sqrt(cin * 9));
    x = g.op('Conv', [blurred, param(`ecd${j}.0.1.weight`, [cout, cin, 3, 3], w)], {
      kernel_shape: [3, 3],
      strides: [2, 2],
    });
    x = fusedLreluUnscaled(x, `ecd${j}.0.2.bias`, cout);
    feats.push(x);
    cin = cout;
  }
  // ---- final linear: the encoder's 4x4 features become the style code (their sqrt(2) folded into the weight)
  const c4 = ch[4];
  let w = toFloat(g.op('Flatten', [x], { axis: 1 }));
  {
    const fw = g.initializer(
      'final_linear.0.weight',
      [arch.styleDim, c4 * 16],
      scaled(get('final_linear.0.weight'), SQRT2 / Math.sqrt(c4 * 16)),
    );
    w = lrelu(
      g.op('Gemm', [w, fw, g.initializer('final_linear.0.bias', [arch.styleDim], get('final_linear.0.bias'))], {
        transB: 1,
      }),
    );
  }
  // ---- mapping network (fp32): PixelNorm, then n_mlp EqualLinear with lr_mul
  {
    const ms = g.op('ReduceMean', [g.op('Mul', [w, w])], { axes: [1], keepdims: 1 });
    w = g.op('Div', [w, g.op('Sqrt', [g.op('Add', [ms, epsF])])]);
    const S = arch.styleDim;
    for (let i = 1; i <= arch.nMlp; i++) {
      const mw = g.initializer(
        `generator.style.${i}.weight`,
        [S, S],
        scaled(get(`generator.style.${i}.weight`), arch.lrMlp / Math.sqrt(S)),
      );
      const mb = g.initializer(`generator.style.${i}.bias`, [S], scaled(get(`generator.style.${i}.bias`), arch.lrMlp));
      w = lrelu(g.op('Gemm', [w, mw, mb], { transB: 1 }));
    }
  }
  const latent = w;

  // ---- all style modulations in one Gemm (one latent for every layer), split per layer
  const modLayers: { prefix: string; cin: number }[] = [];
  modLayers.push({ prefix: 'generator.conv1.conv', cin: c4 }, { prefix: 'generator.to_rgb1.conv', cin: c4 * f });
  {
    let c = c4;
    for (let i = 3; i <= L; i++) {
      const cout = ch[2 ** i];
      const k = 2 * (i - 3);
      modLayers.push(
        { prefix: `generator.convs.${k}.conv`, cin: c * f },
        { prefix: `generator.convs.${k + 1}.conv`, cin: cout * f },
        { prefix: `generator.to_rgbs.${i - 3}.conv`, cin: cout * f },
      );
      c = cout;
    }
  }
  const styles = new Map<string, string>();
  {
    const S = arch.styleDim;
    const total = modLayers.reduce((a, l) => a + l.cin, 0);
    const mw = new Float32Array(total * S);
    const mb = new Float32Array(total);
    let row = 0;
    for (const l of modLayers) {
      mw.set(scaled(get(`${l.prefix}.modulation.weight`), 1 / Math.sqrt(S)), row * S);
      mb.set(get(`${l.prefix}.modulation.bias`), row);
      row += l.cin;
    }
    const all = g.op(
      'Gemm',
      [latent, g.initializer('modulation.weight', [total, S], mw), g.initializer('modulation.bias', [total], mb)],
      { transB: 1 },
    );
    // two levels of Split with at most 8 outputs each: WebGPU allows 16 storage buffers per shader, and one Split
    // into all 20+ styles needs more (WebGPU then fails with "Too many storage buffers in shader")
    const sizes = modLayers.map((l) => l.cin);
    const groups: number[][] = [];
    for (let i = 0; i < sizes.length; i += 8) groups.push(sizes.slice(i, i + 8));
    const outs: string[] = [];
    if (groups.length === 1)
      outs.push(...g.node('Split', [all, g.constInt64(sizes, 'split')], { axis: 1 }, sizes.length, 'style'));
    else {
      const parts = g.node(
        'Split',
        [
          all,
          g.constInt64(
            groups.map((x) => x.reduce((a, b) => a + b, 0)),
            'split',
          ),
        ],
        { axis: 1 },
        groups.length,
        'style_groups',
      );
      groups.forEach((x, j) =>
        outs.push(
          ...(x.length === 1
            ? [parts[j]]
            : g.node('Split', [parts[j], g.constInt64(x, `split_${j}`)], { axis: 1 }, x.length, `style_${j}`)),
        ),
      );
    }
    modLayers.forEach((l, i) => styles.set(l.prefix, outs[i]));
  }
  /**
   * x * s per sample and channel, where `scale` ([N, C] fp32, per sample) or a constant is what the input still owes:
   * the sqrt(2) of its activation, and the demodulation and noise weights its producer left to its consumers.
   */
  const modulate = (xin: string, prefix: string, scale: string | number) => {
    const st = styles.get(prefix)!;
    const s =
      scale === 1
        ? st
        : g.op('Mul', [
            st,
            typeof scale === 'number'
              ? g.constFloat([scale], [], `in_scale_${scale === SQRT2 ? 'sqrt2' : scale}`)
              : scale,
          ]);
    return g.op('Mul', [xin, toCompute(g.op('Reshape', [s, R4]))]);
  };

  /**
   * StyledConv: modulated 3x3 conv (optionally transposed x2 + blur), demodulation, feature injection, activation.
   * `inScale` and `owedIn` are what the input still owes (see modulate). Returns h = leaky_relu(.) without its
   * sqrt(2); with GPEN's concatenation, h' where h = h' * owed, `owed` ([N, 2co] fp32) being the per-sample factors
   * the consumers fold into their styles: leaky_relu is positively homogeneous,
   * so leaky_relu(conv * d + b) = d * leaky_relu(conv + b / d) for the demodulation d > 0, and the injected feature's
   * noise weight w > 0 leaves leaky_relu(feat * w + b) = w * leaky_relu(feat + b / w) (w < 0: see below). Two passes
   * over the activation fewer per layer (the demodulation's Mul and the feature's), the same sums. A feature whose
   * weight is zero (or whose bias / weight would strain fp16) keeps its Mul.
   */
  const styledConv = (
    xin: string,
    owedIn: string | null,
    p: string,
    ci: number,
    co: number,
    up: boolean,
    feat: string,
    inScale: number,
    io: { modulated?: boolean; modulateNext?: string } = {},
  ): { h: string; owed: string | null; modulated: boolean } => {
    const raw = scaled(get(`${p}.conv.weight`), 1 / Math.sqrt(ci * 9));
    // io.modulated: the producer's FusedAct applied this layer's modulation already
    const xs = io.modulated
      ? xin
      : modulate(
          xin,
          `${p}.conv`,
          owedIn
            ? g.op('Mul', [owedIn, inScale === SQRT2 ? sqrt2F : g.constFloat([inScale], [], 'owed_scale')])
            : inScale,
        );
    let out: string;
    let wName: string;
    if (up) {
      // ConvTranspose wants [cin, cout, k, k]: the official code transposes the same weight this way.
      const t = new Float32Array(raw.length);
      for (let o = 0; o < co; o++)
        for (let i = 0; i < ci; i++) for (let k = 0; k < 9; k++) t[(i * co + o) * 9 + k] = raw[(o * ci + i) * 9 + k];
      wName = param(`${p}.conv.weight`, [ci, co, 3, 3], t);
      out = g.op('ConvTranspose', [xs, wName], { kernel_shape: [3, 3], strides: [2, 2] });
    } else {
      wName = param(`${p}.conv.weight`, [co, ci, 3, 3], raw);
      out = g.op('Conv', [xs, wName], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
    }
    // demod[n, o] = rsqrt(sum_i s[n,i]^2 * sum_k W[o,i,k]^2 + 1e-8), in fp32; the weight sums fold at session creation
    const wsq = g.op('ReduceSumSquare', [toFloat(wName)], { axes: [2, 3], keepdims: 0 }); // [cin,cout] or [cout,cin]
    const s = styles.get(`${p}.conv`)!;
    const s2 = g.op('Mul', [s, s]);
    const nwRaw = get(`${p}.noise.weight`)[0] * SQRT2; // the encoder feature owes its sqrt(2): it folds in here
    const bias = get(`${p}.activate.bias`);
    if (!arch.isConcat) {
      const sum = g.op('Gemm', [s2, wsq], { transB: up ? 0 : 1 });
      const demod = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [sum, epsF])])]);
      out = g.op('Mul', [out, toCompute(g.op('Reshape', [demod, R4]))]);
      if (up) out = blur(out, `${p}.conv.blur.kernel`, co, 1, 1);
      const injected = g.op('Mul', [feat, param(`${p}.noise.weight`, [1], Float32Array.of(nwRaw))]);
      return {
        h: fusedLreluUnscaled(g.op('Add', [out, injected]), `${p}.activate.bias`, co),
        owed: null,
        modulated: false,
      };
    }
    if (up) out = blur(out, `${p}.conv.blur.kernel`, co, 1, 1);
    // r = 1 / d over the conv's channels, exactly 1 over the feature's: the weight sums extended with zeros (folded at
    // session creation, like the sums), epsilon 1 there
    const wsqExt = g.op('Concat', [wsq, g.op('Mul', [wsq, zeroF])], { axis: up ? 1 : 0 });
    const sum = g.op('Gemm', [s2, wsqExt], { transB: up ? 0 : 1 });
    const maxBias = bias.subarray(co).reduce((a, b) => Math.max(a, Math.abs(b)), 0);
    const foldNoise = nwRaw !== 0 && maxBias / Math.abs(nwRaw) < 1e4;
    const eps2 = new Float32Array(2 * co).fill(1e-8, 0, co).fill(1, co);
    const r = g.op('Sqrt', [g.op('Add', [sum, g.initializer(`${p}.demod_eps`, [2 * co], eps2)])]);
    const b2 = Float32Array.from(bias);
    const w2 = new Float32Array(2 * co).fill(1);
    if (foldNoise) {
      // w > 0: leaky_relu(feat * w + b) = w * leaky_relu(feat + b / w). w < 0: slope 0.2 of a negated input is -0.2
      // times slope 5 of the input, so leaky_relu(feat * w + b) = 0.2 * w * leaky_relu_5(feat + b / w) (a PRelu)
      for (let c = co; c < 2 * co; c++) b2[c] = bias[c] / nwRaw;
      w2.fill(nwRaw > 0 ? nwRaw : NEG_SLOPE * nwRaw, co);
    }
    const biasNc = g.op('Mul', [r, g.initializer(`${p}.activate.bias`, [2 * co], b2)]);
    const injected = foldNoise ? feat : g.op('Mul', [feat, param(`${p}.noise.weight`, [1], Float32Array.of(nwRaw))]);
    const owed = g.op('Mul', [g.op('Reciprocal', [r]), g.initializer(`${p}.owed`, [2 * co], w2)]);
    const prelu =
      foldNoise && nwRaw < 0 ? new Float32Array(2 * co).fill(NEG_SLOPE, 0, co).fill(1 / NEG_SLOPE, co) : null;
    if (fused) {
      const slope = prelu ? g.initializer(`${p}.activate.slope`, [2 * co], prelu) : leakySlope(2 * co);
      // the next convolution's modulation (its style times what this output owes, and the sqrt(2)) where it is the
      // only consumer: the output leaves already modulated
      const scale = io.modulateNext
        ? g.op('Mul', [g.op('Mul', [styles.get(`${io.modulateNext}.conv`)!, owed]), sqrt2F])
        : null;
      return { h: fusedAct(out, injected, biasNc, slope, scale), owed, modulated: scale !== null };
    }
    const pre = g.op('Add', [g.op('Concat', [out, injected], { axis: 1 }), toCompute(g.op('Reshape', [biasNc, R4]))]);
    const h = prelu
      ? g.op('PRelu', [pre, param(`${p}.activate.slope`, [2 * co, 1, 1], prelu)])
      : g.op('LeakyRelu', [pre], { alpha: { float: NEG_SLOPE } });
    return { h, owed, modulated: false };
  };

  /** ToRGB: modulated 1x1 conv without demodulation, bias, plus the upsampled skip (kept in fp32). */
  const toRgb = (xin: string, owed: string | null, p: string, ci: number, res: number, skip: string | null) => {
    const w = scaled(get(`${p}.conv.weight`), SQRT2 / Math.sqrt(ci));
    let out: string;
    // a batched MatMul at the two largest resolutions, where the modulated copy it saves is large (three quarters of
    // the gain at GPEN-512); below, cuDNN's 1x1 convolution: each MatMul shape is more first-use work at a cold start
    if (res < arch.size / 2) {
      out = toFloat(
        g.op('Conv', [modulate(xin, `${p}.conv`, owed ?? 1), param(`${p}.conv.weight`, [3, ci, 1, 1], w)], {
          kernel_shape: [1, 1],
        }),
      );
      return toRgbTail(out, p, skip);
    }
    // the modulation on the weight, per sample ([N, 3, ci]: tiny), and the 1x1 conv as one batched MatMul over
    // [N, ci, H*W]: no modulated copy of the activation to write and read again
    const st = styles.get(`${p}.conv`)!;
    if (nhwc) {
      // [N, H*W, ci] x [N, ci, 3] over an NHWC view; the 3-channel result back to NCHW
      const wt = new Float32Array(3 * ci);
      for (let o = 0; o < 3; o++) for (let i = 0; i < ci; i++) wt[i * 3 + o] = w[o * ci + i];
      const s = toCompute(
        g.op('Reshape', [owed ? g.op('Mul', [st, owed]) : st, g.constInt64([0, ci, 1], 'shape_nc1')]),
      );
      const wn = g.op('Mul', [param(`${p}.conv.weight`, [1, ci, 3], wt), s]);
      const flat = g.op('Reshape', [
        g.op('Transpose', [xin], { perm: [0, 2, 3, 1] }),
        g.constInt64([0, -1, ci], 'shape_n_hw_c'),
      ]);
      const mm = g.op('Reshape', [g.op('MatMul', [flat, wn]), g.constInt64([0, res, res, 3], 'shape_rgb_nhwc')]);
      out = toFloat(g.op('Transpose', [mm], { perm: [0, 3, 1, 2] }));
      return toRgbTail(out, p, skip);
    }
    const s = toCompute(g.op('Reshape', [owed ? g.op('Mul', [st, owed]) : st, g.constInt64([0, 1, ci], 'shape_n1c')]));
    const wn = g.op('Mul', [param(`${p}.conv.weight`, [1, 3, ci], w), s]);
    const flat = g.op('Reshape', [xin, g.constInt64([0, ci, -1], 'shape_nc_hw')]);
    out = toFloat(g.op('Reshape', [g.op('MatMul', [wn, flat]), g.constInt64([0, 3, res, res], 'shape_rgb')]));
    return toRgbTail(out, p, skip);
  };
  /** ToRGB's bias, plus the upsampled skip. */
  const toRgbTail = (rgb: string, p: string, skip: string | null) => {
    let out = g.op('Add', [rgb, g.initializer(`${p}.bias`, [1, 3, 1, 1], get(`${p}.bias`))]);
    if (skip) {
      // upfirdn2d(up=2, pad=(2,1)) with kernel k is a stride-2 transposed conv with k itself and pads 1
      const k = get(`${p}.upsample.kernel`);
      const uk = g.initializer(`${p}.upsample.kernel`, [3, 1, 4, 4], depthwise(k, 3));
      const up = g.op('ConvTranspose', [skip, uk], {
        group: 3,
        kernel_shape: [4, 4],
        strides: [2, 2],
        pads: [1, 1, 1, 1],
      });
      out = g.op('Add', [out, up]);
    }
    return out;
  };

  // ---- generator: constant 4x4 input, conv1 + to_rgb1, then two styled convs and a ToRGB per resolution
  const constIn = param('generator.input.input', [1, c4, 4, 4], get('generator.input.input'));
  let h = styledConv(constIn, null, 'generator.conv1', c4, c4, false, feats[L - 2], 1);
  let skip = toRgb(h.h, h.owed, 'generator.to_rgb1', c4 * f, 4, null);
  let c = c4;
  for (let i = 3; i <= L; i++) {
    const co = ch[2 ** i];
    const k = 2 * (i - 3);
    const feat = feats[L - i];
    // the first convolution of a resolution feeds only the second (the second feeds ToRGB too)
    h = styledConv(h.h, h.owed, `generator.convs.${k}`, c * f, co, true, feat, SQRT2, {
      modulateNext: `generator.convs.${k + 1}`,
    });
    h = styledConv(h.h, h.owed, `generator.convs.${k + 1}`, co * f, co, false, feat, SQRT2, { modulated: h.modulated });
    skip = toRgb(h.h, h.owed, `generator.to_rgbs.${i - 3}`, co * f, 2 ** i, skip);
    c = co;
  }
  g.rename(skip, 'output');

  return g.encode({
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
