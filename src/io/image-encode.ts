// The outputs' encoding: PNG, JPEG or WebP through sharp, tagged sRGB, with the source's EXIF.
import sharp from 'sharp';
import type { OutputExt } from './image-formats.js';
import type { FileMetadata } from './metadata.js';
import { outputExif, withMetadata } from './metadata.js';

/** Pixels to encode: RGB plus an optional alpha plane. */
export interface PixelsOut {
  width: number;
  height: number;
  rgb: Uint8Array;
  alpha: Uint8Array | null;
}

/**
 * JPEG quality of the outputs, chroma at full resolution: a 1.8 MB 12 MP phone selfie comes back as 2.0 MB (q95:
 * 2.5 MB).
 */
export const JPEG_QUALITY = 92;

let srgb: Promise<Buffer> | null = null;
/** sharp's sRGB ICC profile (libvips' built-in, 480 bytes), read once from a 1x1 image carrying it. */
export function srgbProfile(): Promise<Buffer> {
  srgb ??= sharp({ create: { width: 1, height: 1, channels: 3, background: '#000' } })
    .withIccProfile('srgb')
    .png()
    .toBuffer()
    .then(async (b) => (await sharp(b).metadata()).icc ?? Buffer.alloc(0));
  return srgb;
}

/**
 * An output's EXIF (outputExif: the source's, Orientation 1, `description`; none without either) and the sRGB
 * profile.
 */
export async function outputMetadata(opts: {
  description?: string;
  exif?: Uint8Array | null;
  width?: number;
  height?: number;
}): Promise<FileMetadata> {
  const exif = opts.description !== undefined || opts.exif ? outputExif(opts.exif, opts) : null;
  return { exif, icc: await srgbProfile() };
}

/**
 * Encodes RGB (+ alpha for PNG and WebP; JPEG has none, so it is dropped) as PNG (zlib level 1), JPEG (JPEG_QUALITY,
 * 4:4:4) or WebP (q95), tagged sRGB (the pixels are) with EXIF: the source's `exif` (Orientation 1: the pixels are
 * upright) and `description` in ImageDescription.
 */
export async function encodeImage(
  img: PixelsOut,
  ext: OutputExt,
  opts: { description?: string; exif?: Uint8Array | null } = {},
): Promise<Buffer> {
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
  // PNG at zlib level 1, OpenCV's default and so the official GPEN's (cv2.imwrite): faster to encode than level 3,
  // for somewhat larger files
  const enc =
    ext === '.jpg'
      ? p.jpeg({ quality: JPEG_QUALITY, chromaSubsampling: '4:4:4' })
      : ext === '.webp'
        ? p.webp({ quality: 95 })
        : p.png({ compressionLevel: 1 });
  const [buf, meta] = await Promise.all([enc.toBuffer(), outputMetadata({ ...opts, width, height })]);
  const format = ext === '.jpg' ? 'jpeg' : ext === '.webp' ? 'webp' : 'png';
  return withMetadata(buf, format, meta, { width, height, alpha: withAlpha });
}
