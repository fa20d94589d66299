// GPEN's generator: the constant 4x4 input, then per resolution two styled convolutions (modulated conv,
// demodulation, the encoder feature injected, activation) and a ToRGB added to the upsampled skip.
import { NEG_SLOPE, SQRT2, depthwise, scaled, type GpenGraph } from './gpen-graph-base.js';

/** A styled convolution's output: h, where the activation is h * owed ([N, C] fp32) when `owed` is set. */
interface Styled {
  h: string;
  owed: string | null;
  /** The next convolution's modulation is applied already (FusedAct). */
  modulated: boolean;
}

/** The generator from the encoder's features (full resolution first) and the styles by layer: the RGB output. */
export function buildGenerator(c: GpenGraph, styles: Map<string, string>, feats: string[]): string {
  const d = new Decoder(c, styles);
  const { ch, L } = c;
  const c4 = ch[4];
  const constIn = c.param('generator.input.input', [1, c4, 4, 4], c.get('generator.input.input'));
  let h = d.styledConv(constIn, null, 'generator.conv1', c4, c4, false, feats[L - 2], 1);
  let skip = d.toRgb(h.h, h.owed, 'generator.to_rgb1', c4 * c.f, 4, null);
  let ci = c4;
  for (let i = 3; i <= L; i++) {
    const co = ch[2 ** i];
    const k = 2 * (i - 3);
    const feat = feats[L - i];
    // the first convolution of a resolution feeds only the second (the second feeds ToRGB too)
    h = d.styledConv(h.h, h.owed, `generator.convs.${k}`, ci * c.f, co, true, feat, SQRT2, {
      modulateNext: `generator.convs.${k + 1}`,
    });
    h = d.styledConv(h.h, h.owed, `generator.convs.${k + 1}`, co * c.f, co, false, feat, SQRT2, {
      modulated: h.modulated,
    });
    skip = d.toRgb(h.h, h.owed, `generator.to_rgbs.${i - 3}`, co * c.f, 2 ** i, skip);
    ci = co;
  }
  return skip;
}

class Decoder {
  constructor(
    private readonly c: GpenGraph,
    private readonly styles: Map<string, string>,
  ) {}

  private style(prefix: string): string {
    return this.styles.get(prefix)!;
  }

  /**
   * x * s per sample and channel, where `scale` ([N, C] fp32, per sample) or a constant is what the input still owes:
   * the sqrt(2) of its activation, and the demodulation and noise weights its producer left to its consumers.
   */
  private modulate(xin: string, prefix: string, scale: string | number): string {
    const { g } = this.c;
    const st = this.style(prefix);
    const s =
      scale === 1
        ? st
        : g.op('Mul', [
            st,
            typeof scale === 'number'
              ? g.constFloat([scale], [], `in_scale_${scale === SQRT2 ? 'sqrt2' : scale}`)
              : scale,
          ]);
    return g.op('Mul', [xin, this.c.toCompute(g.op('Reshape', [s, this.c.R4]))]);
  }

  /**
   * StyledConv: modulated 3x3 conv (optionally transposed x2 + blur), demodulation, feature injection, activation.
   * `inScale` and `owedIn` are what the input still owes (see modulate). Returns h = leaky_relu(.) without its
   * sqrt(2); with GPEN's concatenation, h' where h = h' * owed, `owed` ([N, 2co] fp32) being the per-sample factors
   * the consumers fold into their styles: leaky_relu is positively homogeneous,
   * so leaky_relu(conv * d + b) = d * leaky_relu(conv + b / d) for the demodulation d > 0, and the injected feature's
   * noise weight w > 0 leaves leaky_relu(feat * w + b) = w * leaky_relu(feat + b / w) (w < 0: see concatTail). Two
   * passes over the activation fewer per layer (the demodulation's Mul and the feature's), the same sums. A feature
   * whose weight is zero (or whose bias / weight would strain fp16) keeps its Mul.
   */
  styledConv(
    xin: string,
    owedIn: string | null,
    p: string,
    ci: number,
    co: number,
    up: boolean,
    feat: string,
    inScale: number,
    io: { modulated?: boolean; modulateNext?: string } = {},
  ): Styled {
    const { c } = this;
    const { g } = c;
    // io.modulated: the producer's FusedAct applied this layer's modulation already
    const xs = io.modulated
      ? xin
      : this.modulate(
          xin,
          `${p}.conv`,
          owedIn
            ? g.op('Mul', [owedIn, inScale === SQRT2 ? c.sqrt2F : g.constFloat([inScale], [], 'owed_scale')])
            : inScale,
        );
    const { out, wName } = this.conv(xs, p, ci, co, up);
    // demod[n, o] = rsqrt(sum_i s[n,i]^2 * sum_k W[o,i,k]^2 + 1e-8), in fp32; the weight sums fold at session creation
    const wsq = g.op('ReduceSumSquare', [c.toFloat(wName)], { axes: [2, 3], keepdims: 0 }); // [cin,cout] or [cout,cin]
    const s = this.style(`${p}.conv`);
    const s2 = g.op('Mul', [s, s]);
    if (!c.arch.isConcat) return this.addedTail(out, p, co, up, feat, wsq, s2);
    return this.concatTail(this.upBlur(up, out, p, co), p, co, up, feat, wsq, s2, io.modulateNext);
  }

  /** The 3x3 convolution of the modulated input; ConvTranspose x2 when `up`. Returns its output and weight. */
  private conv(xs: string, p: string, ci: number, co: number, up: boolean): { out: string; wName: string } {
    const { c } = this;
    const raw = scaled(c.get(`${p}.conv.weight`), 1 / Math.sqrt(ci * 9));
    if (!up) {
      const wName = c.param(`${p}.conv.weight`, [co, ci, 3, 3], raw);
      return { out: c.g.op('Conv', [xs, wName], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }), wName };
    }
    // ConvTranspose wants [cin, cout, k, k]: the official code transposes the same weight this way.
    const t = new Float32Array(raw.length);
    for (let o = 0; o < co; o++)
      for (let i = 0; i < ci; i++) for (let k = 0; k < 9; k++) t[(i * co + o) * 9 + k] = raw[(o * ci + i) * 9 + k];
    const wName = c.param(`${p}.conv.weight`, [ci, co, 3, 3], t);
    return { out: c.g.op('ConvTranspose', [xs, wName], { kernel_shape: [3, 3], strides: [2, 2] }), wName };
  }

  /** The blur after a transposed convolution. */
  private upBlur(up: boolean, out: string, p: string, co: number): string {
    return up ? this.c.blur(out, `${p}.conv.blur.kernel`, co, 1, 1) : out;
  }

  /** The noise weight, times the sqrt(2) the encoder feature owes. */
  private noiseWeight(p: string): number {
    return this.c.get(`${p}.noise.weight`)[0] * SQRT2;
  }

  /** StyleGAN2's injection (feature added, not concatenated): demodulate, add feat * w, activate. */
  private addedTail(out: string, p: string, co: number, up: boolean, feat: string, wsq: string, s2: string): Styled {
    const { c } = this;
    const { g } = c;
    const nwRaw = this.noiseWeight(p);
    const sum = g.op('Gemm', [s2, wsq], { transB: up ? 0 : 1 });
    const demod = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [sum, c.epsF])])]);
    out = g.op('Mul', [out, c.toCompute(g.op('Reshape', [demod, c.R4]))]);
    out = this.upBlur(up, out, p, co);
    const injected = g.op('Mul', [feat, c.param(`${p}.noise.weight`, [1], Float32Array.of(nwRaw))]);
    return {
      h: c.fusedLreluUnscaled(g.op('Add', [out, injected]), `${p}.activate.bias`, co),
      owed: null,
      modulated: false,
    };
  }

  /**
   * GPEN's injection (feature concatenated): the demodulation and the noise weight left to the consumers as `owed`.
   * `modulateNext` names the next convolution where it is this output's only consumer.
   */
  private concatTail(
    out: string,
    p: string,
    co: number,
    up: boolean,
    feat: string,
    wsq: string,
    s2: string,
    modulateNext: string | undefined,
  ): Styled {
    const { c } = this;
    const { g } = c;
    const nwRaw = this.noiseWeight(p);
    const bias = c.get(`${p}.activate.bias`);
    // r = 1 / d over the conv's channels, exactly 1 over the feature's: the weight sums extended with zeros (folded at
    // session creation, like the sums), epsilon 1 there
    const wsqExt = g.op('Concat', [wsq, g.op('Mul', [wsq, c.zeroF])], { axis: up ? 1 : 0 });
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
      for (let k = co; k < 2 * co; k++) b2[k] = bias[k] / nwRaw;
      w2.fill(nwRaw > 0 ? nwRaw : NEG_SLOPE * nwRaw, co);
    }
    const biasNc = g.op('Mul', [r, g.initializer(`${p}.activate.bias`, [2 * co], b2)]);
    const injected = foldNoise ? feat : g.op('Mul', [feat, c.param(`${p}.noise.weight`, [1], Float32Array.of(nwRaw))]);
    const owed = g.op('Mul', [g.op('Reciprocal', [r]), g.initializer(`${p}.owed`, [2 * co], w2)]);
    const prelu =
      foldNoise && nwRaw < 0 ? new Float32Array(2 * co).fill(NEG_SLOPE, 0, co).fill(1 / NEG_SLOPE, co) : null;
    if (c.fused) {
      const slope = prelu ? g.initializer(`${p}.activate.slope`, [2 * co], prelu) : c.leakySlope(2 * co);
      // the next convolution's modulation (its style times what this output owes, and the sqrt(2)): the output leaves
      // already modulated
      const scale = modulateNext
        ? g.op('Mul', [g.op('Mul', [this.style(`${modulateNext}.conv`), owed]), c.sqrt2F])
        : null;
      return { h: c.fusedAct(out, injected, biasNc, slope, scale), owed, modulated: scale !== null };
    }
    const pre = g.op('Add', [
      g.op('Concat', [out, injected], { axis: 1 }),
      c.toCompute(g.op('Reshape', [biasNc, c.R4])),
    ]);
    const h = prelu
      ? g.op('PRelu', [pre, c.param(`${p}.activate.slope`, [2 * co, 1, 1], prelu)])
      : g.op('LeakyRelu', [pre], { alpha: { float: NEG_SLOPE } });
    return { h, owed, modulated: false };
  }

  /** ToRGB: modulated 1x1 conv without demodulation, bias, plus the upsampled skip (kept in fp32). */
  toRgb(xin: string, owed: string | null, p: string, ci: number, res: number, skip: string | null): string {
    const { c } = this;
    const { g } = c;
    const w = scaled(c.get(`${p}.conv.weight`), SQRT2 / Math.sqrt(ci));
    // a batched MatMul at the two largest resolutions, where the modulated copy it saves is large (three quarters of
    // the gain at GPEN-512); below, cuDNN's 1x1 convolution: each MatMul shape is more first-use work at a cold start
    if (res < c.arch.size / 2) {
      const out = c.toFloat(
        g.op('Conv', [this.modulate(xin, `${p}.conv`, owed ?? 1), c.param(`${p}.conv.weight`, [3, ci, 1, 1], w)], {
          kernel_shape: [1, 1],
        }),
      );
      return this.toRgbTail(out, p, skip);
    }
    return this.toRgbTail(this.toRgbMatMul(xin, owed, p, ci, res, w), p, skip);
  }

  /**
   * ToRGB's 1x1 conv as one batched MatMul over [N, ci, H*W], the modulation on the weight per sample ([N, 3, ci]:
   * tiny): no modulated copy of the activation to write and read again.
   */
  private toRgbMatMul(xin: string, owed: string | null, p: string, ci: number, res: number, w: Float32Array): string {
    const { c } = this;
    const { g } = c;
    const st = this.style(`${p}.conv`);
    if (c.nhwc) {
      // [N, H*W, ci] x [N, ci, 3] over an NHWC view; the 3-channel result back to NCHW
      const wt = new Float32Array(3 * ci);
      for (let o = 0; o < 3; o++) for (let i = 0; i < ci; i++) wt[i * 3 + o] = w[o * ci + i];
      const s = c.toCompute(
        g.op('Reshape', [owed ? g.op('Mul', [st, owed]) : st, g.constInt64([0, ci, 1], 'shape_nc1')]),
      );
      const wn = g.op('Mul', [c.param(`${p}.conv.weight`, [1, ci, 3], wt), s]);
      const flat = g.op('Reshape', [
        g.op('Transpose', [xin], { perm: [0, 2, 3, 1] }),
        g.constInt64([0, -1, ci], 'shape_n_hw_c'),
      ]);
      const mm = g.op('Reshape', [g.op('MatMul', [flat, wn]), g.constInt64([0, res, res, 3], 'shape_rgb_nhwc')]);
      return c.toFloat(g.op('Transpose', [mm], { perm: [0, 3, 1, 2] }));
    }
    const s = c.toCompute(
      g.op('Reshape', [owed ? g.op('Mul', [st, owed]) : st, g.constInt64([0, 1, ci], 'shape_n1c')]),
    );
    const wn = g.op('Mul', [c.param(`${p}.conv.weight`, [1, 3, ci], w), s]);
    const flat = g.op('Reshape', [xin, g.constInt64([0, ci, -1], 'shape_nc_hw')]);
    return c.toFloat(g.op('Reshape', [g.op('MatMul', [wn, flat]), g.constInt64([0, 3, res, res], 'shape_rgb')]));
  }

  /** ToRGB's bias, plus the upsampled skip. */
  private toRgbTail(rgb: string, p: string, skip: string | null): string {
    const { c } = this;
    const { g } = c;
    const out = g.op('Add', [rgb, g.initializer(`${p}.bias`, [1, 3, 1, 1], c.get(`${p}.bias`))]);
    if (!skip) return out;
    // upfirdn2d(up=2, pad=(2,1)) with kernel k is a stride-2 transposed conv with k itself and pads 1
    const uk = g.initializer(`${p}.upsample.kernel`, [3, 1, 4, 4], depthwise(c.get(`${p}.upsample.kernel`), 3));
    const up = g.op('ConvTranspose', [skip, uk], {
      group: 3,
      kernel_shape: [4, 4],
      strides: [2, 2],
      pads: [1, 1, 1, 1],
    });
    return g.op('Add', [out, up]);
  }
}
