// GPEN's style path, all in fp32: the final linear layer that turns the encoder's 4x4 features into the style code,
// the mapping network, and every layer's modulation computed from the one latent.
import { SQRT2, scaled, type GpenGraph } from './gpen-graph-base.js';

/** The latent: the final linear layer over the 4x4 features, then the mapping network. */
export function buildLatent(c: GpenGraph, x4: string): string {
  const { g, arch } = c;
  const c4 = c.ch[4];
  // the 4x4 features' sqrt(2) folds into the weight
  let w = c.toFloat(g.op('Flatten', [x4], { axis: 1 }));
  const fw = g.initializer(
    'final_linear.0.weight',
    [arch.styleDim, c4 * 16],
    scaled(c.get('final_linear.0.weight'), SQRT2 / Math.sqrt(c4 * 16)),
  );
  w = c.lrelu(
    g.op('Gemm', [w, fw, g.initializer('final_linear.0.bias', [arch.styleDim], c.get('final_linear.0.bias'))], {
      transB: 1,
    }),
  );
  return mappingNetwork(c, w);
}

/** PixelNorm, then n_mlp EqualLinear with lr_mul. */
function mappingNetwork(c: GpenGraph, w: string): string {
  const { g, arch } = c;
  const ms = g.op('ReduceMean', [g.op('Mul', [w, w])], { axes: [1], keepdims: 1 });
  w = g.op('Div', [w, g.op('Sqrt', [g.op('Add', [ms, c.epsF])])]);
  const S = arch.styleDim;
  for (let i = 1; i <= arch.nMlp; i++) {
    const mw = g.initializer(
      `generator.style.${i}.weight`,
      [S, S],
      scaled(c.get(`generator.style.${i}.weight`), arch.lrMlp / Math.sqrt(S)),
    );
    const mb = g.initializer(`generator.style.${i}.bias`, [S], scaled(c.get(`generator.style.${i}.bias`), arch.lrMlp));
    w = c.lrelu(g.op('Gemm', [w, mw, mb], { transB: 1 }));
  }
  return w;
}

/** Every modulated layer in the generator's order, with its input channels. */
function modulatedLayers(c: GpenGraph): { prefix: string; cin: number }[] {
  const c4 = c.ch[4];
  const layers = [
    { prefix: 'generator.conv1.conv', cin: c4 },
    { prefix: 'generator.to_rgb1.conv', cin: c4 * c.f },
  ];
  let ci = c4;
  for (let i = 3; i <= c.L; i++) {
    const cout = c.ch[2 ** i];
    const k = 2 * (i - 3);
    layers.push(
      { prefix: `generator.convs.${k}.conv`, cin: ci * c.f },
      { prefix: `generator.convs.${k + 1}.conv`, cin: cout * c.f },
      { prefix: `generator.to_rgbs.${i - 3}.conv`, cin: cout * c.f },
    );
    ci = cout;
  }
  return layers;
}

/** All style modulations in one Gemm (one latent for every layer), split per layer: [N, cin] by layer prefix. */
export function buildStyles(c: GpenGraph, latent: string): Map<string, string> {
  const { g } = c;
  const layers = modulatedLayers(c);
  const S = c.arch.styleDim;
  const total = layers.reduce((a, l) => a + l.cin, 0);
  const mw = new Float32Array(total * S);
  const mb = new Float32Array(total);
  let row = 0;
  for (const l of layers) {
    mw.set(scaled(c.get(`${l.prefix}.modulation.weight`), 1 / Math.sqrt(S)), row * S);
    mb.set(c.get(`${l.prefix}.modulation.bias`), row);
    row += l.cin;
  }
  const all = g.op(
    'Gemm',
    [latent, g.initializer('modulation.weight', [total, S], mw), g.initializer('modulation.bias', [total], mb)],
    { transB: 1 },
  );
  const outs = splitStyles(
    c,
    all,
    layers.map((l) => l.cin),
  );
  return new Map(layers.map((l, i) => [l.prefix, outs[i]]));
}

/**
 * Two levels of Split with at most 8 outputs each: WebGPU allows 16 storage buffers per shader, and one Split into
 * all 20+ styles needs more (WebGPU then fails with "Too many storage buffers in shader").
 */
function splitStyles({ g }: GpenGraph, all: string, sizes: number[]): string[] {
  const groups: number[][] = [];
  for (let i = 0; i < sizes.length; i += 8) groups.push(sizes.slice(i, i + 8));
  if (groups.length === 1)
    return g.node('Split', [all, g.constInt64(sizes, 'split')], { axis: 1 }, sizes.length, 'style');
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
  const outs: string[] = [];
  groups.forEach((x, j) =>
    outs.push(
      ...(x.length === 1
        ? [parts[j]]
        : g.node('Split', [parts[j], g.constInt64(x, `split_${j}`)], { axis: 1 }, x.length, `style_${j}`)),
    ),
  );
  return outs;
}
