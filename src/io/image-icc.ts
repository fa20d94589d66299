// An embedded ICC profile applied per distinct colour rather than per pixel: the decode without the profile, then
// each colour present converted once through sharp's own pipeline and mapped back (exactly sharp's pixels).
import { createHash } from 'node:crypto';
import os from 'node:os';
import sharp from 'sharp';
import type { OutputInfo } from 'sharp';
import { encodePngStriped } from './png.js';

/** Whether 32-bit words may be read over pixel bytes with R in the low byte. */
export const LITTLE_ENDIAN = os.endianness() === 'LE';

/** Bits set in a 32-bit word. */
function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

/** RGB pixels (width x height) converted to sRGB through an ICC profile, as sharp converts an image carrying it. */
async function convertThrough(rgb: Uint8Array, width: number, height: number, icc: Buffer): Promise<Buffer | null> {
  const png = await encodePngStriped([{ data: rgb, width, alpha: null }], height, { iccProfile: icc });
  const converted = await sharp(png, { failOn: 'error' })
    .rotate()
    .toColourspace('srgb')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (converted.info.channels !== 3 || converted.info.width !== width || converted.info.height !== height) return null;
  return converted.data;
}

/** Whether every pixel of interleaved 8-bit RGB(A) has R = G = B. */
function isGrey(data: Buffer, ch: number, n: number): boolean {
  if (ch === 4 && LITTLE_ENDIAN && data.byteOffset % 4 === 0) {
    const px = new Uint32Array(data.buffer, data.byteOffset, n);
    // R = G and G = B: the word's low three bytes equal their neighbours
    for (let i = 0; i < n; i++) if (((px[i] ^ (px[i] >>> 8)) & 0xffff) !== 0) return false;
    return true;
  }
  for (let o = 0; o < n * ch; o += ch) if (data[o] !== data[o + 1] || data[o + 1] !== data[o + 2]) return false;
  return true;
}

/** Per ICC profile (by its sha256), the 256 greys converted through it; a few profiles kept. */
const greyCache = new Map<string, { rgb: Uint8Array; identity: boolean }>();
const GREY_PROFILES_KEPT = 8;

async function greyLevels(icc: Buffer): Promise<{ rgb: Uint8Array; identity: boolean } | null> {
  const key = createHash('sha256').update(icc).digest('hex');
  let got = greyCache.get(key);
  if (!got) {
    const greys = new Uint8Array(256 * 3);
    for (let g = 0; g < 256; g++) greys.fill(g, 3 * g, 3 * g + 3);
    const rgb = await convertThrough(greys, 256, 1, icc);
    if (rgb === null) return null;
    got = { rgb: Uint8Array.from(rgb), identity: rgb.every((v, i) => v === greys[i]) };
    if (greyCache.size >= GREY_PROFILES_KEPT) greyCache.delete(greyCache.keys().next().value!);
    greyCache.set(key, got);
  }
  return got;
}

/**
 * sharp converts an image with an embedded ICC profile to sRGB pixel by pixel (lcms), most of a large photo's
 * decode. The conversion depends on the colour only, so the image is decoded without it, its distinct colours (a grey
 * photo has 256 at most) are converted once, as a small PNG carrying the same profile through the same pipeline, and
 * mapped back: exactly sharp's pixels (tests). A grey image takes the 256 greys' conversion, made once per profile
 * (greyLevels).
 * Null when the decode gives other than RGB(A).
 */
export async function decodeIccByColours(
  src: string | Buffer,
  maxPixels: number,
  icc: Buffer,
): Promise<{ data: Buffer; info: OutputInfo } | null> {
  const { data, info } = await sharp(src, { limitInputPixels: maxPixels, failOn: 'error', pages: 1, ignoreIcc: true })
    .rotate()
    .toColourspace('srgb')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  const ch = info.channels;
  if (ch !== 3 && ch !== 4) return null;
  const n = info.width * info.height;
  // a grey image (every pixel R = G = B: scans of old photos): its colours are among the 256 greys, whose conversion
  // through this profile is made once per profile and kept (no colour set, no round trip through sharp)
  if (isGrey(data, ch, n)) {
    const lut = await greyLevels(icc);
    if (lut === null) return null;
    if (lut.identity) return { data, info };
    const t = lut.rgb;
    for (let o = 0; o < n * ch; o += ch) {
      const g = 3 * data[o];
      data[o] = t[g];
      data[o + 1] = t[g + 1];
      data[o + 2] = t[g + 2];
    }
    return { data, info };
  }
  // the colours present, as a bit set over the 2^24 RGB values
  const bits = new Int32Array(1 << 19);
  if (ch === 4 && LITTLE_ENDIAN && data.byteOffset % 4 === 0) {
    const px = new Uint32Array(data.buffer, data.byteOffset, n);
    for (let i = 0; i < n; i++) {
      const v = px[i];
      // R | G << 8 | B << 16 in the word: the key is R << 16 | G << 8 | B
      const key = ((v & 0xff) << 16) | (v & 0xff00) | ((v >>> 16) & 0xff);
      bits[key >>> 5] |= 1 << (key & 31);
    }
  } else {
    for (let i = 0, o = 0; i < n; i++, o += ch) {
      const key = (data[o] << 16) | (data[o + 1] << 8) | data[o + 2];
      bits[key >>> 5] |= 1 << (key & 31);
    }
  }
  // the colours in order, as a small RGB image carrying the profile (its last row padded with the last colour)
  const keys: number[] = [];
  for (let w = 0; w < bits.length; w++) {
    for (let b = bits[w]; b !== 0; b &= b - 1) keys.push((w << 5) | (31 - Math.clz32(b & -b)));
  }
  const k = keys.length;
  const width = Math.min(k, 1024);
  const height = Math.ceil(k / width);
  const table = new Uint8Array(width * height * 3);
  for (let q = 0; q < width * height; q++) {
    const key = keys[Math.min(q, k - 1)];
    table[3 * q] = key >>> 16;
    table[3 * q + 1] = (key >>> 8) & 255;
    table[3 * q + 2] = key & 255;
  }
  const to = await convertThrough(table, width, height, icc);
  if (to === null) return null;
  let identity = true;
  for (let q = 0; q < 3 * k && identity; q++) identity = to[q] === table[q];
  if (identity) return { data, info };
  // each word's rank (the colours before it), then every pixel to its converted colour
  const rank = new Int32Array(1 << 19);
  for (let w = 0, r = 0; w < bits.length; w++) {
    rank[w] = r;
    if (bits[w] !== 0) r += popcount(bits[w]);
  }
  for (let i = 0, o = 0; i < n; i++, o += ch) {
    const key = (data[o] << 16) | (data[o + 1] << 8) | data[o + 2];
    const w = key >>> 5,
      bit = key & 31;
    const at = 3 * (rank[w] + (bit === 0 ? 0 : popcount(bits[w] & (0xffffffff >>> (32 - bit)))));
    data[o] = to[at];
    data[o + 1] = to[at + 1];
    data[o + 2] = to[at + 2];
  }
  return { data, info };
}
