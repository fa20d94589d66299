// Decoding a photo through sharp: the bytes sniffed, the header checked against the pixel limit before any pixel is
// decoded, then upright 8-bit sRGB with the alpha channel kept apart.
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import type { Metadata, OutputInfo } from 'sharp';
import { GpenLabError, badArgument, errorMessage } from '../errors.js';
import { assertReadableFile } from './files.js';
import { LITTLE_ENDIAN, decodeIccByColours } from './image-icc.js';
import { pngBadChunk, readHead, sniffImageFormat } from './sniff.js';

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

/**
 * RGBA into RGB and an alpha plane; returns the AND of every alpha (255: opaque). Four pixels at a time as 32-bit
 * words where the memory allows.
 */
export function splitRgba(data: Uint8Array, n: number, rgb: Uint8Array, alpha: Uint8Array): number {
  let opaque = 255;
  let i = 0;
  if (LITTLE_ENDIAN && data.byteOffset % 4 === 0 && rgb.byteOffset % 4 === 0) {
    const px = new Uint32Array(data.buffer, data.byteOffset, n);
    const out = new Uint32Array(rgb.buffer, rgb.byteOffset, Math.floor((n * 3) / 4));
    for (let j = 0; i + 4 <= n; i += 4, j += 3) {
      const p0 = px[i],
        p1 = px[i + 1],
        p2 = px[i + 2],
        p3 = px[i + 3];
      out[j] = (p0 & 0xffffff) | (p1 << 24);
      out[j + 1] = ((p1 >>> 8) & 0xffff) | (p2 << 16);
      out[j + 2] = ((p2 >>> 16) & 0xff) | (p3 << 8);
      const a0 = p0 >>> 24,
        a1 = p1 >>> 24,
        a2 = p2 >>> 24,
        a3 = p3 >>> 24;
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
  if (buf.length === 0) {
    throw new GpenLabError('E_FORMAT_UNKNOWN', `${name} is empty (expected ${ACCEPTED})`, 'Send the image bytes.', {
      input: name,
    });
  }
  return decodeFrom(buf, name, opts);
}

/**
 * Options of decodeImage: the pixel limit, and (for tests) whether an ICC profile may be applied per distinct colour.
 */
export interface DecodeOptions {
  maxPixels?: number;
  /** Default true: see decodeIccByColours (the same pixels; false converts every pixel, as sharp does). */
  iccByColours?: boolean;
}

async function decodeFrom(src: string | Buffer, file: string, opts: DecodeOptions): Promise<DecodedImage> {
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!Number.isSafeInteger(maxPixels) || maxPixels < 1) {
    throw badArgument('maxPixels', `an integer between 1 and ${Number.MAX_SAFE_INTEGER}`, maxPixels);
  }
  // the documented formats only, by their bytes (an SVG named .png would be rendered, and could pull in other files)
  const head = typeof src === 'string' ? await readHead(src) : src.subarray(0, 12);
  const sniffed = sniffImageFormat(head);
  if (!sniffed) {
    throw new GpenLabError(
      'E_FORMAT_UNKNOWN',
      `Cannot read ${file} as an image: its bytes are none of ${ACCEPTED}`,
      'Pass a JPEG, PNG, WebP, TIFF or GIF file; convert other formats first.',
      { input: file },
    );
  }
  let meta: Metadata;
  try {
    meta = await sharp(src, { limitInputPixels: false }).metadata(); // header only: the limit is ours, below
  } catch (e) {
    throw new GpenLabError(
      'E_IMAGE_CORRUPT',
      `${file} is a ${sniffed.toUpperCase()} whose header cannot be read: ${errorMessage(e)}`,
      'The file is damaged (a checksum or a length does not match): re-export or re-download it.',
      { input: file },
    );
  }
  const { width = 0, height = 0 } = meta;
  if (!meta.format || !(width > 0 && height > 0)) {
    throw new GpenLabError(
      'E_FORMAT_UNKNOWN',
      `Cannot read ${file} as an image: no size in its header (expected ${ACCEPTED})`,
      'Pass a JPEG, PNG, WebP, TIFF or GIF file.',
      { input: file },
    );
  }
  if (width * height > maxPixels) {
    throw new GpenLabError(
      'E_IMAGE_TOO_LARGE',
      `${file} is ${width}x${height} (${((width * height) / 1e6).toFixed(1)} MP), ` +
        `more than the limit of ${(maxPixels / 1e6).toFixed(1)} MP`,
      'Downscale the image first, or raise the limit with --max-pixels if the machine has the memory ' +
        '(about 12 bytes per pixel).',
      { input: file, width, height, maxPixels },
    );
  }
  let data: Buffer;
  let info: OutputInfo;
  try {
    const byColours =
      opts.iccByColours !== false &&
      meta.icc &&
      meta.space === 'srgb' &&
      meta.depth === 'uchar' &&
      (meta.channels === 3 || meta.channels === 4)
        ? await decodeIccByColours(src, maxPixels, meta.icc)
        : null;
    ({ data, info } =
      byColours ??
      (await sharp(src, { limitInputPixels: maxPixels, failOn: 'error', pages: 1 })
        .rotate()
        .toColourspace('srgb')
        .raw({ depth: 'uchar' })
        .toBuffer({ resolveWithObject: true })));
  } catch (e) {
    // libspng says only "Unknown error" for a chunk whose checksum is wrong: name the chunk
    const chunk = meta.format === 'png' ? pngBadChunk(typeof src === 'string' ? await readFile(src) : src) : null;
    throw new GpenLabError(
      'E_IMAGE_CORRUPT',
      `Cannot decode the pixels of ${file} (${meta.format}, ${width}x${height}): ${chunk ?? errorMessage(e)}`,
      'The file is truncated or damaged: re-export or re-download it.',
      { input: file },
    );
  }
  const n = info.width * info.height;
  const ch = info.channels;
  const rgb = new Uint8Array(n * 3);
  let alpha: Uint8Array | null = null;
  if (ch === 3) {
    rgb.set(data.subarray(0, n * 3));
  } else if (ch === 4) {
    alpha = new Uint8Array(n);
    // whether every alpha is 255, found in the same pass (not a second pass over the plane)
    if (splitRgba(data, n, rgb, alpha) === 255) alpha = null;
  } else if (ch === 1 || ch === 2) {
    if (ch === 2) alpha = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = data[ch * i];
      if (alpha) alpha[i] = data[2 * i + 1];
    }
  } else {
    throw new GpenLabError(
      'E_FORMAT_UNKNOWN',
      `${file} decodes to ${ch} channels (expected 1 to 4)`,
      'Convert it to RGB or RGBA first.',
      { input: file },
    );
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
