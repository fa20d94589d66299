// GPEN's encoder: ecd0 (a 1x1 conv), then blur + stride-2 3x3 conv per stage; each stage's output feeds the
// generator. Every feature map here is leaky_relu(.) without FusedLeakyReLU's sqrt(2): its consumers carry it.
import { SQRT2, scaled, type GpenGraph } from './gpen-graph-base.js';

/** The encoder's feature maps, from the full resolution down to 4x4. */
export function buildEncoder(c: GpenGraph): string[] {
  const { g, ch } = c;
  let x = inputConv(c, c.toCompute('input'));
  const feats = [x];
  let cin = ch[c.arch.size];
  for (let i = c.L; i > 2; i--) {
    const j = c.L - i + 1;
    const cout = ch[2 ** (i - 1)];
    const blurred = c.blur(x, `ecd${j}.0.0.kernel`, cin, 2, 2);
    // the input's sqrt(2) folds into this (linear) convolution's weight
    const w = scaled(c.get(`ecd${j}.0.1.weight`), SQRT2 / Math.sqrt(cin * 9));
    x = g.op('Conv', [blurred, c.param(`ecd${j}.0.1.weight`, [cout, cin, 3, 3], w)], {
      kernel_shape: [3, 3],
      strides: [2, 2],
    });
    x = c.fusedLreluUnscaled(x, `ecd${j}.0.2.bias`, cout);
    feats.push(x);
    cin = cout;
  }
  return feats;
}

/** ecd0: the 1x1 conv from 3 channels as one MatMul over [N, 3, H*W] (cuDNN is slow for 3 input channels). */
function inputConv(c: GpenGraph, x: string): string {
  const { g } = c;
  const S = c.arch.size;
  const w = c.get('ecd0.0.0.weight');
  const co = c.ch[S];
  if (c.nhwc) {
    // [N, H*W, 3] x [3, c] over an NHWC view, back to NCHW by a Transpose the layout pass cancels
    const wt = new Float32Array(3 * co);
    const ws = scaled(w, 1 / Math.sqrt(3));
    for (let o = 0; o < co; o++) for (let i = 0; i < 3; i++) wt[i * co + o] = ws[o * 3 + i];
    const flat = g.op('Reshape', [
      g.op('Transpose', [x], { perm: [0, 2, 3, 1] }),
      g.constInt64([0, -1, 3], 'shape_np3'),
    ]);
    const mm = g.op('MatMul', [flat, c.param('ecd0.0.0.weight', [3, co], wt)]);
    x = g.op('Transpose', [g.op('Reshape', [mm, g.constInt64([0, S, S, co], 'shape_ecd0_nhwc')])], {
      perm: [0, 3, 1, 2],
    });
  } else {
    const flat = g.op('Reshape', [x, g.constInt64([0, 3, -1], 'shape_n3p')]);
    const mm = g.op('MatMul', [c.param('ecd0.0.0.weight', [co, 3], scaled(w, 1 / Math.sqrt(3))), flat]);
    x = g.op('Reshape', [mm, g.constInt64([0, co, S, S], 'shape_ecd0')]);
  }
  return c.fusedLreluUnscaled(x, 'ecd0.0.1.bias', co);
}
