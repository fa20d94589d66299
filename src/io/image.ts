// Image decode/encode through sharp (the only module that imports it) and the pixel <-> tensor conversions.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import sharp from 'sharp';
import type { Metadata, OutputInfo } from 'sharp';
import { GpenLabError, badArgument, errorMessage } from '../errors.js';
import { assertReadableFile, writeFileAtomicSafe } from './files.js';
import type { FileMetadata } from './metadata.js';
import { outputExif, withMetadata } from './metadata.js';
import { encodePngStriped } from './png.js';
import { pngBadChunk, readHead, sniffImageFormat } from './sniff.js';

export { sniffImageFormat } from './sniff.js';

/** Output formats the writers support, by file extension. */
export const OUTPUT_EXTS = ['.png', '.jpg', '.webp'] as const;
export type OutputExt = (typeof OUTPUT_EXTS)[number];

/** Default pixel limit: 64 MP (8000 x 8000), about 0.8 GB of working memory in the restoration pipeline. */
export const DEFAULT_MAX_PIXELS = 64_000_000;

const ACCEPTED = 'an image (JPEG, PNG, WebP, TIFF or GIF)';

/** What the file was, before decoding: the formats and layouts the decoder converted from. */
export interface ImageSource {
  format: string;
  /** As stored, before the EXIF orientation is applied. */
  width: number;
  height: number;
  orientation: number;
  channels: number;
  /** Bits per sample as libvips names it: uchar (8), ushort (16), float... */
  depth: string;
  /** Colour space as stored: srgb, b-w, cmyk, rgb16, grey16... */
  space: string;
  hasAlpha: boolean;
  hasProfile: boolean;
  /** Frames in the file; only the first is read. */
  pages: number;
  /** The EXIF as stored (its Orientation is the file's, not the decoded pixels'), carried over to the outputs. */
  exif?: Buffer;
}

/** A decoded photo: upright (EXIF orientation applied), 8-bit sRGB, with its alpha channel kept apart. */
export interface DecodedImage {
  file: string;
  width: number;
  height: number;
  /** Interleaved RGB, 8 bits per channel. */
  rgb: Uint8Array;
  /** One byte per pixel, or null for an opaque image. */
  alpha: Uint8Array | null;
  source: ImageSource;
}

const LITTLE_ENDIAN = os.endianness() === 'LE';

/**
 * RGBA into RGB and an alpha plane; returns the AND of every alpha (255: opaque). Four pixels at a time as 32-bit
 * words where the memory allows (about 2.5 times as fast as byte by byte).
 */
export function splitRgba(data: Uint8Array, n: number, rgb: Uint8Array, alpha: Uint8Array): number {
  let opaque = 255;
  let i = 0;
  if (LITTLE_ENDIAN && data.byteOffset % 4 === 0 && rgb.byteOffset % 4 === 0) {
    const px = new Uint32Array(data.buffer, data.byteOffset, n);
    const out = new Uint32Array(rgb.buffer, rgb.byteOffset, Math.floor((n * 3) / 4));
    for (let j = 0; i + 4 <= n; i += 4, j += 3) {
      const p0 = px[i], p1 = px[i + 1], p2 = px[i + 2], p3 = px[i + 3];
      out[j] = (p0 & 0xffffff) | (p1 << 24);
      out[j + 1] = ((p1 >>> 8) & 0xffff) | (p2 << 16);
      out[j + 2] = ((p2 >>> 16) & 0xff) | (p3 << 8);
      const a0 = p0 >>> 24, a1 = p1 >>> 24, a2 = p2 >>> 24, a3 = p3 >>> 24;
      alpha[i] = a0;
      alpha[i + 1] = a1;
      alpha[i + 2] = a2;
      alpha[i + 3] = a3;
      opaque &= a0 & a1 & a2 & a3;
    }
  }
  for (; i < n; i++) {
    rgb[3 * i] = data[4 * i];
    rgb[3 * i + 1] = data[4 * i + 1];
    rgb[3 * i + 2] = data[4 * i + 2];
    opaque &= alpha[i] = data[4 * i + 3];
  }
  return opaque;
}

/** Pixels to encode: RGB plus an optional alpha plane. */
export interface PixelsOut {
  width: number;
  height: number;
  rgb: Uint8Array;
  alpha: Uint8Array | null;
}

export function parseOutputExt(ext: string): OutputExt {
  const e = (ext.startsWith('.') ? ext : `.${ext}`).toLowerCase();
  const norm = e === '.jpeg' ? '.jpg' : e;
  if (!(OUTPUT_EXTS as readonly string[]).includes(norm)) throw badArgument('--ext', `one of ${OUTPUT_EXTS.join(', ')}`, ext);
  return norm as OutputExt;
}

/**
 * Decodes the first frame of a JPEG/PNG/WebP/TIFF/GIF to upright 8-bit sRGB (grey expanded, CMYK and ICC profiles
 * converted, 16-bit reduced) with alpha kept apart. The header is checked against `maxPixels` before any pixel is
 * decoded: a decompression bomb costs a header read.
 */
export async function decodeImage(file: string, opts: DecodeOptions = {}): Promise<DecodedImage> {
  await assertReadableFile(file, ACCEPTED);
  return decodeFrom(file, file, opts);
}

/** An image's size from its header alone (no pixels decoded), or null when the bytes are no image sharp reads. */
export async function imageSize(buf: Buffer): Promise<{ width: number; height: number } | null> {
  try {
    const m = await sharp(buf, { limitInputPixels: false }).metadata();
    return m.width && m.height ? { width: m.width, height: m.height } : null;
  } catch {
    return null;
  }
}

/** decodeImage for bytes already in memory (an upload); `name` stands for the file in messages and results. */
export async function decodeImageBuffer(buf: Buffer, name: string, opts: DecodeOptions = {}): Promise<DecodedImage> {
  if (buf.length === 0) throw new GpenLabError('E_FORMAT_UNKNOWN', `${name} is empty (expected ${ACCEPTED})`, 'Send the image bytes.', { input: name });
  return decodeFrom(buf, name, opts);
}

/** Options of decodeImage: the pixel limit, and (for tests) whether an ICC profile may be applied per distinct colour. */
export interface DecodeOptions {
  maxPixels?: number;
  /** Default true: see decodeIccByColours (the same pixels; false converts every pixel, as sharp does). */
  iccByColours?: boolean;
}

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
  const converted = await sharp(png, { failOn: 'error' }).rotate().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
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
 * sharp converts an image with an embedded ICC profile to sRGB pixel by pixel (lcms), over half of the Solvay photo's
 * decode. The conversion depends on the colour only, so the image is decoded without it, its distinct colours (a grey
 * photo has 256 at most) are converted once, as a small PNG carrying the same profile through the same pipeline, and
 * mapped back: exactly sharp's pixels (tests). A grey image takes the 256 greys' conversion, made once per profile
 * (greyLevels).
 * Null when the decode gives other than RGB(A).
 */
async function decodeIccByColours(src: string | Buffer, maxPixels: number, icc: Buffer): Promise<{ data: Buffer; info: OutputInfo } | null> {
  const { data, info } = await sharp(src, { limitInputPixels: maxPixels, failOn: 'error', pages: 1, ignoreIcc: true })
    .rotate()
    .toColourspace('srgb')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  const ch = info.channels;
  if (ch !== 3 && ch !== 4) return null;
  const n = info.width * info.height;
  // a grey image (every pixel R = G = B: scans of old photos): its colours are among the 256 greys, whose conversion
  // through this profile is made once per profile and kept (the Solvay photo: the colour set and the small image's
  // round trip through sharp, ~7 ms of its decode, then a scan)
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
    const w = key >>> 5, bit = key & 31;
    const at = 3 * (rank[w] + (bit === 0 ? 0 : popcount(bits[w] & (0xffffffff >>> (32 - bit)))));
    data[o] = to[at];
    data[o + 1] = to[at + 1];
    data[o + 2] = to[at + 2];
  }
  return { data, info };
}

async function decodeFrom(src: string | Buffer, file: string, opts: DecodeOptions): Promise<DecodedImage> {
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!Number.isSafeInteger(maxPixels) || maxPixels < 1) throw badArgument('maxPixels', `an integer between 1 and ${Number.MAX_SAFE_INTEGER}`, maxPixels);
  // the documented formats only, by their bytes (an SVG named .png would be rendered, and could pull in other files)
  const head = typeof src === 'string' ? await readHead(src) : src.subarray(0, 12);
  const sniffed = sniffImageFormat(head);
  if (!sniffed) {
    throw new GpenLabError('E_FORMAT_UNKNOWN', `Cannot read ${file} as an image: its bytes are none of ${ACCEPTED}`,
      'Pass a JPEG, PNG, WebP, TIFF or GIF file; convert other formats first.', { input: file });
  }
  let meta: Metadata;
  try {
    meta = await sharp(src, { limitInputPixels: false }).metadata(); // header only: the limit is ours, below
  } catch (e) {
    throw new GpenLabError('E_IMAGE_CORRUPT', `${file} is a ${sniffed.toUpperCase()} whose header cannot be read: ${errorMessage(e)}`,
      'The file is damaged (a checksum or a length does not match): re-export or re-download it.', { input: file });
  }
  const { width = 0, height = 0 } = meta;
  if (!meta.format || !(width > 0 && height > 0)) {
    throw new GpenLabError('E_FORMAT_UNKNOWN', `Cannot read ${file} as an image: no size in its header (expected ${ACCEPTED})`,
      'Pass a JPEG, PNG, WebP, TIFF or GIF file.', { input: file });
  }
  if (width * height > maxPixels) {
    throw new GpenLabError('E_IMAGE_TOO_LARGE',
      `${file} is ${width}x${height} (${((width * height) / 1e6).toFixed(1)} MP), more than the limit of ${(maxPixels / 1e6).toFixed(1)} MP`,
      'Downscale the image first, or raise the limit with --max-pixels if the machine has the memory (about 12 bytes per pixel).',
      { input: file, width, height, maxPixels });
  }
  let data: Buffer;
  let info: OutputInfo;
  try {
    const byColours = opts.iccByColours !== false && meta.icc && meta.space === 'srgb' && meta.depth === 'uchar' && (meta.channels === 3 || meta.channels === 4)
      ? await decodeIccByColours(src, maxPixels, meta.icc)
      : null;
    ({ data, info } = byColours ?? await sharp(src, { limitInputPixels: maxPixels, failOn: 'error', pages: 1 })
      .rotate()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true }));
  } catch (e) {
    // libspng says only "Unknown error" for a chunk whose checksum is wrong: name the chunk
    const chunk = meta.format === 'png' ? pngBadChunk(typeof src === 'string' ? await readFile(src) : src) : null;
    throw new GpenLabError('E_IMAGE_CORRUPT', `Cannot decode the pixels of ${file} (${meta.format}, ${width}x${height}): ${chunk ?? errorMessage(e)}`,
      'The file is truncated or damaged: re-export or re-download it.', { input: file });
  }
  const n = info.width * info.height;
  const ch = info.channels;
  const rgb = new Uint8Array(n * 3);
  let alpha: Uint8Array | null = null;
  if (ch === 3) {
    rgb.set(data.subarray(0, n * 3));
  } else if (ch === 4) {
    alpha = new Uint8Array(n);
    // whether every alpha is 255, found in the same pass (a separate every() over the plane took 7-13 ms at 0.75 MP)
    if (splitRgba(data, n, rgb, alpha) === 255) alpha = null;
  } else if (ch === 1 || ch === 2) {
    if (ch === 2) alpha = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = data[ch * i];
      if (alpha) alpha[i] = data[2 * i + 1];
    }
  } else {
    throw new GpenLabError('E_FORMAT_UNKNOWN', `${file} decodes to ${ch} channels (expected 1 to 4)`, 'Convert it to RGB or RGBA first.', { input: file });
  }
  if (ch === 2 && alpha?.every((v) => v === 255)) alpha = null;
  return {
    file,
    width: info.width,
    height: info.height,
    rgb,
    alpha,
    source: {
      format: meta.format,
      width,
      height,
      orientation: meta.orientation ?? 1,
      channels: meta.channels ?? ch,
      depth: meta.depth ?? 'uchar',
      space: meta.space ?? 'srgb',
      hasAlpha: meta.hasAlpha ?? false,
      hasProfile: meta.hasProfile ?? false,
      pages: meta.pages ?? 1,
      ...(meta.exif ? { exif: meta.exif } : {}),
    },
  };
}

/** JPEG quality of the outputs, chroma at full resolution: a 1.8 MB 12 MP phone selfie comes back as 2.0 MB (q95: 2.5 MB). */
export const JPEG_QUALITY = 92;

let srgb: Promise<Buffer> | null = null;
/** sharp's sRGB ICC profile (libvips' built-in, 480 bytes), read once from a 1x1 image carrying it. */
export function srgbProfile(): Promise<Buffer> {
  srgb ??= sharp({ create: { width: 1, height: 1, channels: 3, background: '#000' } }).withIccProfile('srgb').png().toBuffer()
    .then(async (b) => (await sharp(b).metadata()).icc ?? Buffer.alloc(0));
  return srgb;
}

/** An output's EXIF (outputExif: the source's, Orientation 1, `description`; none without either) and the sRGB profile. */
export async function outputMetadata(opts: { description?: string; exif?: Uint8Array | null; width?: number; height?: number }): Promise<FileMetadata> {
  const exif = opts.description !== undefined || opts.exif ? outputExif(opts.exif, opts) : null;
  return { exif, icc: await srgbProfile() };
}

/**
 * Encodes RGB (+ alpha for PNG and WebP; JPEG has none, so it is dropped) as PNG (zlib level 1), JPEG (JPEG_QUALITY,
 * 4:4:4) or WebP (q95), tagged sRGB (the pixels are) with EXIF: the source's `exif` (Orientation 1: the pixels are
 * upright) and `description` in ImageDescription.
 */
export async function encodeImage(img: PixelsOut, ext: OutputExt, opts: { description?: string; exif?: Uint8Array | null } = {}): Promise<Buffer> {
  const { width, height, rgb } = img;
  const withAlpha = img.alpha !== null && ext !== '.jpg';
  let raw: Buffer;
  if (withAlpha) {
    const a = img.alpha as Uint8Array;
    raw = Buffer.alloc(width * height * 4);
    for (let i = 0; i < width * height; i++) {
      raw[4 * i] = rgb[3 * i];
      raw[4 * i + 1] = rgb[3 * i + 1];
      raw[4 * i + 2] = rgb[3 * i + 2];
      raw[4 * i + 3] = a[i];
    }
  } else {
    raw = Buffer.from(rgb.buffer, rgb.byteOffset, width * height * 3);
  }
  const p = sharp(raw, { raw: { width, height, channels: withAlpha ? 4 : 3 } });
  // PNG at zlib level 1, OpenCV's default and so the official GPEN's (cv2.imwrite): it encodes in about 70% of level
  // 3's time, for files ~30% larger
  const enc = ext === '.jpg' ? p.jpeg({ quality: JPEG_QUALITY, chromaSubsampling: '4:4:4' }) : ext === '.webp' ? p.webp({ quality: 95 }) : p.png({ compressionLevel: 1 });
  const [buf, meta] = await Promise.all([enc.toBuffer(), outputMetadata({ ...opts, width, height })]);
  return withMetadata(buf, ext === '.jpg' ? 'jpeg' : ext === '.webp' ? 'webp' : 'png', meta, { width, height, alpha: withAlpha });
}

export interface RgbImage {
  width: number;
  height: number;
  /** Interleaved RGB, 8 bits per channel. */
  data: Uint8Array;
}

/** Decodes an image (EXIF orientation applied) to 8-bit RGB, optionally resized to a square with Lanczos. */
export async function readRgb(file: string, square?: number): Promise<RgbImage> {
  const img = await decodeImage(file);
  if (!square) return { width: img.width, height: img.height, data: img.rgb };
  const { data, info } = await sharp(Buffer.from(img.rgb.buffer, img.rgb.byteOffset, img.rgb.byteLength), { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(square, square, { fit: 'fill', kernel: 'lanczos3' }).raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/** Writes PNG/JPEG/WebP (by extension) atomically; `description` goes into EXIF ImageDescription. */
export async function writeRgb(file: string, img: RgbImage, description?: string): Promise<void> {
  let p = sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), { raw: { width: img.width, height: img.height, channels: 3 } });
  if (description) p = p.withExif({ IFD0: { ImageDescription: description } });
  const ext = file.toLowerCase().split('.').pop();
  const enc = ext === 'jpg' || ext === 'jpeg' ? p.jpeg({ quality: 95 }) : ext === 'webp' ? p.webp({ quality: 95 }) : p.png();
  await writeFileAtomicSafe(file, await enc.toBuffer());
}

/** GPEN's input normalisation, (x/255 - 0.5)/0.5, to planar CHW. */
export function rgbToTensor(img: RgbImage): Float32Array {
  const n = img.width * img.height;
  const out = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) out[c * n + i] = (img.data[i * 3 + c] / 255 - 0.5) / 0.5;
  return out;
}

/** GPEN's output mapping, x*0.5 + 0.5 clipped to [0,1], rounded to 8 bits. */
export function tensorToRgb(t: Float32Array, width: number, height: number): RgbImage {
  const n = width * height;
  const data = new Uint8Array(3 * n);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) {
    const v = Math.min(1, Math.max(0, t[c * n + i] * 0.5 + 0.5));
    data[i * 3 + c] = Math.round(v * 255);
  }
  return { width, height, data };
}

/** A WebP thumbnail (longest side <= maxSide, quality 80) of raw RGB pixels or an image file, for reports. */
export async function thumbnailWebp(src: string | { width: number; height: number; data: Uint8Array }, maxSide = 1024): Promise<Buffer> {
  const input = typeof src === 'string'
    ? sharp(src, { limitInputPixels: DEFAULT_MAX_PIXELS }).rotate()
    : sharp(Buffer.from(src.data.buffer, src.data.byteOffset, src.data.byteLength), { raw: { width: src.width, height: src.height, channels: 3 } });
  return input.resize(maxSide, maxSide, { fit: 'inside', withoutEnlargement: true }).webp({ quality: 80 }).toBuffer();
}
