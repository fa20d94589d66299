// What a file's bytes say it is: the container by its magic, and a PNG's first damaged chunk. Apart from
// image-decode.ts so that these byte-level checks stay small and testable on their own.
import { open } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

/** The first PNG chunk whose CRC does not match its bytes, as a sentence, or null (the chunks are sound, or cut off). */
export function pngBadChunk(png: Uint8Array): string | null {
  const b = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  for (let o = 8; o + 12 <= b.length;) {
    const len = b.readUInt32BE(o);
    if (o + 12 + len > b.length) return null;
    const type = b.toString('latin1', o + 4, o + 8);
    if (crc32(b.subarray(o + 4, o + 8 + len)) !== b.readUInt32BE(o + 8 + len))
      return `its ${type} chunk's checksum does not match its bytes`;
    if (type === 'IEND') return null;
    o += 12 + len;
  }
  return null;
}

/** A file's first 12 bytes (its container's magic). */
export async function readHead(file: string): Promise<Uint8Array> {
  const fh = await open(file, 'r');
  try {
    const b = Buffer.alloc(12);
    const { bytesRead } = await fh.read(b, 0, 12, 0);
    return b.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** The container format from the first bytes, or null: JPEG, PNG, WebP, GIF, TIFF (what decodeImage accepts). */
export function sniffImageFormat(head: Uint8Array): 'jpeg' | 'png' | 'webp' | 'gif' | 'tiff' | null {
  const b = Buffer.from(head.buffer, head.byteOffset, Math.min(head.byteLength, 12));
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 8 && b.readUInt32BE(0) === 0x89504e47 && b.readUInt32BE(4) === 0x0d0a1a0a) return 'png';
  if (b.length >= 12 && b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP') return 'webp';
  if (b.length >= 6 && /^GIF8[79]a$/.test(b.toString('latin1', 0, 6))) return 'gif';
  if (b.length >= 4 && (b.readUInt32BE(0) === 0x49492a00 || b.readUInt32BE(0) === 0x4d4d002a)) return 'tiff';
  return null;
}
