// Writes the odd images the decoder must handle (grey, grey+alpha, RGBA, 16-bit, CMYK, animated GIF, EXIF-rotated)
// with sharp, from a known pixel pattern, so tests can check the decoded pixels.
import sharp from 'sharp';
import { writeFileSync } from 'node:fs';
import zlib from 'node:zlib';

/** A w x h RGB pattern: red ramps with x, green with y, blue constant. */
export function pattern(w: number, h: number): Uint8Array {
  const d = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      d.set(
        [Math.round((x * 255) / Math.max(1, w - 1)), Math.round((y * 255) / Math.max(1, h - 1)), 90],
        (y * w + x) * 3,
      );
  return d;
}

const raw = (d: Uint8Array, w: number, h: number, channels: 1 | 2 | 3 | 4) =>
  sharp(Buffer.from(d), { raw: { width: w, height: h, channels } });

export async function writePng(
  file: string,
  d: Uint8Array,
  w: number,
  h: number,
  channels: 1 | 2 | 3 | 4 = 3,
): Promise<void> {
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
  const frames = [
    await raw(first, w, h, 3).png().toBuffer(),
    await raw(new Uint8Array(w * h * 3), w, h, 3)
      .png()
      .toBuffer(),
  ];
  writeFileSync(
    file,
    await sharp(frames, { join: { animated: true } })
      .gif({ dither: 0 })
      .toBuffer(),
  );
}

/** A JPEG whose pixels are stored rotated, tagged with EXIF orientation 6 (display = stored turned 90 degrees clockwise). */
export async function writeOrientation6Jpeg(file: string, upright: Uint8Array, w: number, h: number): Promise<void> {
  // store the upright image turned 90 degrees counter-clockwise: the viewer's clockwise turn restores it
  const stored = await raw(upright, w, h, 3).rotate(-90).png().toBuffer();
  writeFileSync(
    file,
    await sharp(stored).jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).withMetadata({ orientation: 6 }).toBuffer(),
  );
}

export async function imageInfo(
  buf: Buffer,
): Promise<{ format: string; width: number; height: number; channels: number; description: string | null }> {
  const m = await sharp(buf).metadata();
  const exif = m.exif ? m.exif.toString('latin1') : '';
  const match = /gpen-lab[^\0]*/.exec(exif);
  return {
    format: m.format ?? '',
    width: m.width ?? 0,
    height: m.height ?? 0,
    channels: m.channels ?? 0,
    description: match ? match[0] : null,
  };
}

/**
 * A decompression bomb: a side x side black RGB PNG whose header is honest but whose data stops after 64 rows (a
 * decoder that trusts the header allocates side^2 x 3 bytes before finding out).
 */
export function writePngBomb(file: string, side: number): void {
  const crc = (buf: Buffer): number => {
    let c = ~0;
    for (const b of buf) {
      c ^= b;
      for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
    }
    return ~c >>> 0;
  };
  const chunk = (type: string, data: Buffer): Buffer => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const scan = Buffer.alloc(1 + side * 3);
  const idat = zlib.deflateSync(Buffer.concat(Array.from({ length: 64 }, () => scan)), { level: 9 });
  writeFileSync(
    file,
    Buffer.concat([
      Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
      chunk('IHDR', ihdr),
      chunk('IDAT', idat),
      chunk('IEND', Buffer.alloc(0)),
    ]),
  );
}

/** A portrait with an alpha channel: a transparent band across the top rows, opaque elsewhere. */
export async function withAlphaBand(src: string, file: string): Promise<Uint8Array> {
  const { data, info } = await sharp(src).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const n = info.width * info.height;
  const rgba = Buffer.alloc(n * 4);
  const alpha = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    alpha[i] = i < info.width * 40 ? 0 : 255;
    rgba.set([data[3 * i], data[3 * i + 1], data[3 * i + 2], alpha[i]], 4 * i);
  }
  writeFileSync(
    file,
    await sharp(rgba, { raw: { width: info.width, height: info.height, channels: 4 } })
      .png()
      .toBuffer(),
  );
  return alpha;
}

/** A copy of an image as grey (one channel). */
export async function writeGrey(src: string, file: string): Promise<void> {
  writeFileSync(file, await sharp(src).toColourspace('b-w').png().toBuffer());
}
