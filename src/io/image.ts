// Images through sharp (the image*.ts modules are the only ones that import it): decode (image-decode.ts), encode
// (image-encode.ts, formats in image-formats.ts), and here the plain RGB reads and report thumbnails.
import sharp from 'sharp';
import { DEFAULT_MAX_PIXELS, decodeImage } from './image-decode.js';

export { sniffImageFormat } from './sniff.js';
export type { DecodedImage } from './image-decode.js';
export { DEFAULT_MAX_PIXELS, decodeImage, decodeImageBuffer, imageSize, splitRgba } from './image-decode.js';
export { encodeImage, outputMetadata, srgbProfile } from './image-encode.js';
export type { OutputExt } from './image-formats.js';
export { OUTPUT_EXTS, parseOutputExt } from './image-formats.js';

export interface RgbImage {
  width: number;
  height: number;
  /** Interleaved RGB, 8 bits per channel. */
  data: Uint8Array;
}

/** Pixel bytes as a Buffer over the same memory (no copy), for sharp's raw input. */
const rawBuffer = (data: Uint8Array): Buffer => Buffer.from(data.buffer, data.byteOffset, data.byteLength);

/** Decodes an image (EXIF orientation applied) to 8-bit RGB, optionally resized to a square with Lanczos. */
export async function readRgb(file: string, square?: number): Promise<RgbImage> {
  const img = await decodeImage(file);
  if (!square) return { width: img.width, height: img.height, data: img.rgb };
  const { data, info } = await sharp(rawBuffer(img.rgb), { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(square, square, { fit: 'fill', kernel: 'lanczos3' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  const rgb = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return { width: info.width, height: info.height, data: rgb };
}

/** A WebP thumbnail (longest side <= maxSide, quality 80) of raw RGB pixels or an image file, for reports. */
export async function thumbnailWebp(
  src: string | { width: number; height: number; data: Uint8Array },
  maxSide = 1024,
): Promise<Buffer> {
  const input =
    typeof src === 'string'
      ? sharp(src, { limitInputPixels: DEFAULT_MAX_PIXELS }).rotate()
      : sharp(rawBuffer(src.data), { raw: { width: src.width, height: src.height, channels: 3 } });
  return input.resize(maxSide, maxSide, { fit: 'inside', withoutEnlargement: true }).webp({ quality: 80 }).toBuffer();
}
