// Writes the odd images the decoder must handle (grey, grey+alpha, RGBA, 16-bit, CMYK, animated GIF, EXIF-rotated)
// with sharp, from a known pixel pattern, so tests can check the decoded pixels.
import sharp from 'sharp';
import { writeFileSync } from 'node:fs';

/** A w x h RGB pattern: red ramps with x, green with y, blue constant. */
export function pattern(w: number, h: number): Uint8Array {
  const d = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) d.set([Math.round((x * 255) / Math.max(1, w - 1)), Math.round((y * 255) / Math.max(1, h - 1)), 90], (y * w + x) * 3);
  return d;
}

const raw = (d: Uint8Array, w: number, h: number, channels: 1 | 2 | 3 | 4) => sharp(Buffer.from(d), { raw: { width: w, height: h, channels } });

export async function writePng(file: string, d: Uint8Array, w: number, h: number, channels: 1 | 2 | 3 | 4 = 3): Promise<void> {
  writeFileSync(file, await raw(d, w, h, channels).png().toBuffer());
}

export async function write16BitPng(file: string, d: Uint8Array, w: number, h: number): Promise<void> {
  writeFileSync(file, await raw(d, w, h, 3).toColourspace('rgb16').png().toBuffer());
}

export async function writeCmykJpeg(file: string, d: Uint8Array, w: number, h: number): Promise<void> {
  writeFileSync(file, await raw(d, w, h, 3).toColourspace('cmyk').jpeg({ quality: 100 }).toBuffer());
}

/** An animated GIF: the first frame is `first`, the second is all black. */
export async function writeAnimatedGif(file: string, first: Uint8Array, w: number, h: number): Promise<void> {
  const frames = [await raw(first, w, h, 3).png().toBuffer(), await raw(new Uint8Array(w * h * 3), w, h, 3).png().toBuffer()];
  writeFileSync(file, await sharp(frames, { join: { animated: true } }).gif({ dither: 0 }).toBuffer());
}

/** A JPEG whose pixels are stored rotated, tagged with EXIF orientation 6 (display = stored turned 90 degrees clockwise). */
export async function writeOrientation6Jpeg(file: string, upright: Uint8Array, w: number, h: number): Promise<void> {
  // store the upright image turned 90 degrees counter-clockwise: the viewer's clockwise turn restores it
  const stored = await raw(upright, w, h, 3).rotate(-90).png().toBuffer();
  writeFileSync(file, await sharp(stored).jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).withMetadata({ orientation: 6 }).toBuffer());
}

export async function imageInfo(buf: Buffer): Promise<{ format: string; width: number; height: number; channels: number; description: string | null }> {
  const m = await sharp(buf).metadata();
  const exif = m.exif ? m.exif.toString('latin1') : '';
  const match = /gpen-lab[^\0]*/.exec(exif);
  return { format: m.format ?? '', width: m.width ?? 0, height: m.height ?? 0, channels: m.channels ?? 0, description: match ? match[0] : null };
}
