// GPEN's FullGenerator architecture: the parameter table of a configuration, and its inference from a state dict.
// Everything is derived from tensor names and shapes, so the user never states size, channel_multiplier or narrow.
import { GpenLabError } from '../errors.js';
import type { HostTensor } from '../io/tensor.js';
import { numel, sameDims } from '../io/tensor.js';

/** Output sizes GPEN's channel table defines (official: 256..2048; the small ones serve tests). */
export const GPEN_SIZES = [16, 32, 64, 128, 256, 512, 1024, 2048] as const;
export const OFFICIAL_SIZES = [256, 512, 1024, 2048] as const;

export interface GpenArch {
  size: number;
  styleDim: number;
  nMlp: number;
  channelMultiplier: number;
  narrow: number;
  /** Noise injection concatenates the encoder feature (GPEN) rather than adding noise (StyleGAN2). */
  isConcat: boolean;
  /** Learning-rate multiplier of the mapping network: not stored in a checkpoint, 0.01 in every GPEN. */
  lrMlp: number;
}

/** Published configurations of the official GPEN-BFR models. */
export const OFFICIAL_ARCH: Record<number, Pick<GpenArch, 'channelMultiplier' | 'narrow'>> = {
  256: { channelMultiplier: 1, narrow: 0.5 },
  512: { channelMultiplier: 2, narrow: 1 },
  1024: { channelMultiplier: 2, narrow: 1 },
  2048: { channelMultiplier: 2, narrow: 1 },
};

export function defaultArch(size: number, over: Partial<GpenArch> = {}): GpenArch {
  checkSize(size, 'size');
  const off = OFFICIAL_ARCH[size] ?? { channelMultiplier: 2, narrow: 1 };
  return { size, styleDim: 512, nMlp: 8, isConcat: true, lrMlp: 0.01, ...off, ...over };
}

/** `input` names the option (a key such as size) or, with `option` false, the file the size was read from. */
export function checkSize(size: number, input: string, option = true): void {
  if (!(GPEN_SIZES as readonly number[]).includes(size)) {
    throw new GpenLabError(
      'E_SIZE_UNKNOWN',
      `${input}: GPEN has no configuration for ${size} px`,
      `Use one of ${GPEN_SIZES.join(', ')} (the official models are ${OFFICIAL_SIZES.join(', ')}).`,
      { input, ...(option ? { option: input } : {}), size },
    );
  }
}

/** The channel table of the official code: int(base * multiplier * narrow), as Python's int() truncates. */
export function channels(arch: Pick<GpenArch, 'channelMultiplier' | 'narrow'>): Record<number, number> {
  const { channelMultiplier: cm, narrow } = arch;
  const c = (v: number) => Math.trunc(v * narrow + 1e-9);
  return {
    4: c(512),
    8: c(512),
    16: c(512),
    32: c(512),
    64: c(256 * cm),
    128: c(128 * cm),
    256: c(64 * cm),
    512: c(32 * cm),
    1024: c(16 * cm),
    2048: c(8 * cm),
  };
}

export const log2 = (n: number) => Math.round(Math.log2(n));

/** Every tensor of the official FullGenerator state dict with its shape, in the official order. */
export function expectedShapes(arch: GpenArch): Map<string, number[]> {
  const ch = channels(arch);
  const f = arch.isConcat ? 2 : 1;
  const L = log2(arch.size);
  const S = arch.styleDim;
  const m = new Map<string, number[]>();
  for (let i = 1; i <= arch.nMlp; i++) {
    m.set(`generator.style.${i}.weight`, [S, S]);
    m.set(`generator.style.${i}.bias`, [S]);
  }
  m.set('generator.input.input', [1, ch[4], 4, 4]);
  const styled = (p: string, cin: number, cout: number, up: boolean) => {
    m.set(`${p}.conv.weight`, [1, cout, cin, 3, 3]);
    if (up) m.set(`${p}.conv.blur.kernel`, [4, 4]);
    m.set(`${p}.conv.modulation.weight`, [cin, S]);
    m.set(`${p}.conv.modulation.bias`, [cin]);
    m.set(`${p}.noise.weight`, [1]);
    m.set(`${p}.activate.bias`, [cout * f]);
  };
  const toRgb = (p: string, cin: number, up: boolean) => {
    m.set(`${p}.bias`, [1, 3, 1, 1]);
    if (up) m.set(`${p}.upsample.kernel`, [4, 4]);
    m.set(`${p}.conv.weight`, [1, 3, cin, 1, 1]);
    m.set(`${p}.conv.modulation.weight`, [cin, S]);
    m.set(`${p}.conv.modulation.bias`, [cin]);
  };
  styled('generator.conv1', ch[4], ch[4], false);
  toRgb('generator.to_rgb1', ch[4] * f, false);
  let cin = ch[4];
  for (let i = 3; i <= L; i++) {
    const cout = ch[2 ** i];
    const k = 2 * (i - 3);
    styled(`generator.convs.${k}`, cin * f, cout, true);
    styled(`generator.convs.${k + 1}`, cout * f, cout, false);
    toRgb(`generator.to_rgbs.${i - 3}`, cout * f, true);
    cin = cout;
  }
  m.set('ecd0.0.0.weight', [ch[arch.size], 3, 1, 1]);
  m.set('ecd0.0.1.bias', [ch[arch.size]]);
  cin = ch[arch.size];
  for (let i = L; i > 2; i--) {
    const j = L - i + 1;
    const cout = ch[2 ** (i - 1)];
    m.set(`ecd${j}.0.0.kernel`, [4, 4]);
    m.set(`ecd${j}.0.1.weight`, [cout, cin, 3, 3]);
    m.set(`ecd${j}.0.2.bias`, [cout]);
    cin = cout;
  }
  m.set('final_linear.0.weight', [S, ch[4] * 16]);
  m.set('final_linear.0.bias', [S]);
  return m;
}

/** Parameters of the network (the blur kernels are fixed buffers, not parameters). */
export function countParams(arch: GpenArch): number {
  let n = 0;
  for (const [name, dims] of expectedShapes(arch)) if (!name.endsWith('kernel')) n += numel(dims);
  return n;
}

function notGpen(input: string, why: string, names: string[]): GpenLabError {
  const sample = names.slice(0, 5).join(', ');
  return new GpenLabError(
    'E_NOT_GPEN',
    `${input} is not a GPEN FullGenerator checkpoint: ${why} (its first tensors: ${sample || 'none'})`,
    'Pass an official GPEN .pth (GPEN-BFR-256/512/1024/2048) or a training checkpoint that holds one under g_ema; use --key NAME if it is nested under another key.',
    { input },
  );
}

function indexCount(names: string[], re: RegExp): number {
  let max = -1;
  for (const n of names) {
    const m = re.exec(n);
    if (m) max = Math.max(max, Number(m[1]));
  }
  return max + 1;
}

/**
 * Infers the architecture from a state dict and checks every tensor against it. A missing core tensor means
 * another network (E_NOT_GPEN); counts that disagree or a shape off the table is E_SHAPE_MISMATCH.
 */
export function inferArch(tensors: Map<string, HostTensor>, input: string): GpenArch {
  const names = [...tensors.keys()];
  const core = [
    'generator.input.input',
    'generator.conv1.conv.weight',
    'final_linear.0.weight',
    'ecd0.0.0.weight',
    'generator.style.1.weight',
  ];
  const missing = core.filter((n) => !tensors.has(n));
  if (missing.length === core.length) throw notGpen(input, 'none of the GPEN tensors is present', names);
  if (missing.length > 0) throw notGpen(input, `tensor ${missing[0]} is missing`, names);

  const nConvs = indexCount(names, /^generator\.convs\.(\d+)\.conv\.weight$/);
  const nRgbs = indexCount(names, /^generator\.to_rgbs\.(\d+)\.conv\.weight$/);
  const nEcd = indexCount(names, /^ecd(\d+)\.0\.\d+\.weight$/);
  const nMlp = indexCount(names, /^generator\.style\.(\d+)\.weight$/) - 1;
  const fromConvs = nConvs / 2 + 2;
  const mismatch = (why: string) =>
    new GpenLabError(
      'E_SHAPE_MISMATCH',
      `${input}: ${why}`,
      'The checkpoint is damaged or edited; use the original file from the GPEN release.',
      { input },
    );
  if (nConvs % 2 !== 0 || fromConvs !== nRgbs + 2 || fromConvs !== nEcd + 1) {
    throw mismatch(
      `the layer counts disagree: ${nConvs} styled convs, ${nRgbs} ToRGB layers and ${nEcd} encoder stages do not describe one GPEN size`,
    );
  }
  const size = 2 ** fromConvs;
  checkSize(size, input, false);

  const dims = (n: string) => tensors.get(n)!.dims;
  const styleDim = dims('generator.style.1.weight')[1];
  const ch4 = dims('generator.input.input')[1];
  const narrow = ch4 / 512;
  // The first resolution whose width depends on the multiplier fixes it; below 64 px it is undetermined (no effect).
  let channelMultiplier = 2;
  if (size >= 64) {
    const conv = size === 64 ? 'ecd0.0.0.weight' : `ecd${log2(size) - 6}.0.1.weight`;
    const c64 = dims(conv)[0];
    channelMultiplier = c64 / (256 * narrow);
  }
  const actOut = dims('generator.conv1.activate.bias')[0];
  const isConcat = actOut === 2 * ch4;
  const arch: GpenArch = { size, styleDim, nMlp, channelMultiplier, narrow, isConcat, lrMlp: 0.01 };
  if (!Number.isFinite(channelMultiplier) || channelMultiplier <= 0)
    throw mismatch(`channel widths imply no valid channel_multiplier`);

  const expected = expectedShapes(arch);
  for (const [name, shape] of expected) {
    const t = tensors.get(name);
    if (!t)
      throw mismatch(
        `tensor ${name} is missing (expected shape [${shape.join(', ')}] for GPEN-${size}, channel_multiplier ${channelMultiplier}, narrow ${narrow})`,
      );
    if (!sameDims(t.dims, shape)) {
      throw mismatch(
        `tensor ${name} has shape [${t.dims.join(', ')}] but GPEN-${size} with channel_multiplier ${channelMultiplier} and narrow ${narrow} (implied by the other tensors) needs [${shape.join(', ')}]`,
      );
    }
  }
  const extra = names.filter((n) => !expected.has(n));
  if (extra.length > 0)
    throw mismatch(
      `unexpected tensor ${extra[0]} for GPEN-${size} (the FullGenerator has no such parameter; an SR or other variant is not supported)`,
    );
  return arch;
}

/** Elements of GPEN's largest activation for one face: the last level's feature map (concatenated with the encoder's). */
export function largestActivation(arch: GpenArch): number {
  return (arch.isConcat ? 2 : 1) * channels(arch)[arch.size] * arch.size * arch.size;
}

/**
 * The largest batch whose activations stay under 2^31 elements: ONNX Runtime 1.29's CUDA Concat indexes with 32-bit
 * integers and fails with cudaErrorInvalidValue beyond (GPEN-512 at batch 64 is past it).
 */
export function maxCudaBatch(arch: GpenArch): number {
  return Math.max(1, Math.floor((2 ** 31 - 1) / largestActivation(arch)));
}
