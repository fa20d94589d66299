// Images through sharp (the image*.ts modules are the only ones that import it): decode (image-decode.ts), encode
// (image-encode.ts, formats in image-formats.ts), and here the plain RGB reads, writes and pixel <-> tensor maps.
import sharp from 'sharp';
import { writeFileAtomicSafe } from './files.js';
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

/** Writes PNG/JPEG/WebP (by extension) atomically; `description` goes into EXIF ImageDescription. */
export async function writeRgb(file: string, img: RgbImage, description?: string): Promise<void> {
  let p = sharp(rawBuffer(img.data), { raw: { width: img.width, height: img.height, channels: 3 } });
  if (description) p = p.withExif({ IFD0: { ImageDescription: description } });
  const ext = file.toLowerCase().split('.').pop();
  const enc =
    ext === 'jpg' || ext === 'jpeg' ? p.jpeg({ quality: 95 }) : ext === 'webp' ? p.webp({ quality: 95 }) : p.png();
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
  for (let i = 0; i < n; i++)
    for (let c = 0; c < 3; c++) {
      const v = Math.min(1, Math.max(0, t[c * n + i] * 0.5 + 0.5));
      data[i * 3 + c] = Math.round(v * 255);
    }
  return { width, height, data };
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
