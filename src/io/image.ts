// Image decode/encode through sharp (the only module that imports it) and the pixel <-> tensor conversions.
import sharp from 'sharp';
import { GpenLabError, errorMessage } from '../errors.js';
import { assertReadableFile, writeFileAtomicSafe } from './files.js';

export interface RgbImage {
  width: number;
  height: number;
  /** Interleaved RGB, 8 bits per channel. */
  data: Uint8Array;
}

/** Decodes an image (EXIF orientation applied) to 8-bit RGB, optionally resized to a square with Lanczos. */
export async function readRgb(file: string, square?: number): Promise<RgbImage> {
  await assertReadableFile(file, 'an image (JPEG, PNG, WebP, TIFF or GIF)');
  try {
    let p = sharp(file).rotate().removeAlpha().toColourspace('srgb');
    if (square) p = p.resize(square, square, { fit: 'fill', kernel: 'lanczos3' });
    const { data, info } = await p.raw().toBuffer({ resolveWithObject: true });
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  } catch (e) {
    throw new GpenLabError('E_FORMAT_UNKNOWN', `Cannot decode ${file} as an image: ${errorMessage(e)}`,
      'Pass a JPEG, PNG, WebP, TIFF or GIF file.', { input: file });
  }
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
