// What an output file carries beside its pixels: the input's EXIF (its Orientation reset to 1, since the decoder
// applied the rotation; the thumbnail dropped; gpen-lab's ImageDescription) and an ICC profile (sRGB: the decoder
// converted to it). Written into the encoded bytes here, container by container (JPEG APP1/APP2, PNG eXIf/iCCP,
// WebP VP8X/ICCP/EXIF): through sharp the profile would cost an lcms pass over pixels already in sRGB (~270 ms for
// 12 MP here), and sharp writes EXIF only from strings, losing the camera's binary fields.
import zlib from 'node:zlib';
import type { OutputExt } from './image-formats.js';
import { pngChunk } from './png.js';
import { readHead, sniffImageFormat } from './sniff.js';

const TAG = { description: 0x010e, orientation: 0x0112, exifIfd: 0x8769, pixelX: 0xa002, pixelY: 0xa003 } as const;
/** JPEG's APP1 holds at most 65533 bytes, "Exif\0\0" included. */
const MAX_JPEG_EXIF = 65533 - 6;

interface Entry {
  tag: number;
  type: number;
  count: number;
  value: Buffer;
}

/** A TIFF structure (EXIF without the "Exif\0\0" prefix) and its byte order, or null when it is not one. */
function tiffOf(exif: Uint8Array | null | undefined): { b: Buffer; le: boolean; ifd0: number } | null {
  if (!exif || exif.length < 8) return null;
  let b = Buffer.from(exif.buffer, exif.byteOffset, exif.byteLength);
  if (b.toString('latin1', 0, 6) === 'Exif\0\0') b = b.subarray(6);
  const order = b.toString('latin1', 0, 2);
  if (order !== 'II' && order !== 'MM') return null;
  const le = order === 'II';
  const u16 = (o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const ifd0 = le ? b.readUInt32LE(4) : b.readUInt32BE(4);
  if (b.length < 8 || u16(2) !== 42 || ifd0 < 8 || ifd0 + 2 > b.length) return null;
  if (ifd0 + 2 + 12 * u16(ifd0) + 4 > b.length) return null;
  return { b, le, ifd0 };
}

function readEntries(b: Buffer, le: boolean, at: number): Entry[] {
  const n = le ? b.readUInt16LE(at) : b.readUInt16BE(at);
  const out: Entry[] = [];
  for (let i = 0, o = at + 2; i < n; i++, o += 12) {
    out.push({
      tag: le ? b.readUInt16LE(o) : b.readUInt16BE(o),
      type: le ? b.readUInt16LE(o + 2) : b.readUInt16BE(o + 2),
      count: le ? b.readUInt32LE(o + 4) : b.readUInt32BE(o + 4),
      value: b.subarray(o + 8, o + 12),
    });
  }
  return out;
}

/**
 * The EXIF (TIFF bytes, no "Exif\0\0") an output gets: the source's, its IFD0 rebuilt at the end (every entry kept,
 * their data left where it is, so every offset stays valid) with Orientation 1 and `description`, no thumbnail
 * (IFD1: the unrestored, unrotated picture) and the Exif IFD's pixel size set to the output's; without a source (or
 * one that does not parse), a new one with those two entries.
 */
export function outputExif(
  source: Uint8Array | null | undefined,
  opts: { description?: string; width?: number; height?: number } = {},
): Buffer {
  const t = tiffOf(source);
  const le = t?.le ?? false;
  const base = t ? Buffer.from(t.b) : Buffer.from([0x4d, 0x4d, 0, 42, 0, 0, 0, 8]);
  const w16 = (buf: Buffer, v: number, o: number) => (le ? buf.writeUInt16LE(v, o) : buf.writeUInt16BE(v, o));
  const w32 = (buf: Buffer, v: number, o: number) => (le ? buf.writeUInt32LE(v, o) : buf.writeUInt32BE(v, o));
  const entries = t
    ? readEntries(base, le, t.ifd0).filter((e) => e.tag !== TAG.description && e.tag !== TAG.orientation)
    : [];
  // the output's size in the Exif IFD, in place (a value that fits its field)
  const exifAt = entries.find((e) => e.tag === TAG.exifIfd);
  const exifOffset = exifAt ? (le ? exifAt.value.readUInt32LE(0) : exifAt.value.readUInt32BE(0)) : 0;
  if (
    exifAt &&
    opts.width &&
    opts.height &&
    exifOffset + 2 <= base.length &&
    exifOffset + 2 + 12 * (le ? base.readUInt16LE(exifOffset) : base.readUInt16BE(exifOffset)) <= base.length
  ) {
    for (const e of readEntries(base, le, exifOffset)) {
      const v = e.tag === TAG.pixelX ? opts.width : e.tag === TAG.pixelY ? opts.height : null;
      if (v === null || e.count !== 1) continue;
      if (e.type === 4) w32(e.value, v, 0);
      else if (e.type === 3 && v <= 0xffff) w16(e.value, v, 0);
    }
  }
  const orientation = Buffer.alloc(4);
  w16(orientation, 1, 0);
  const add: Entry[] = [{ tag: TAG.orientation, type: 3, count: 1, value: orientation }];
  const text = opts.description !== undefined ? Buffer.from(opts.description + '\0', 'latin1') : null;
  if (text) add.push({ tag: TAG.description, type: 2, count: text.length, value: Buffer.alloc(4) });
  const all = [...entries, ...add].sort((a, b) => a.tag - b.tag);
  const at = base.length + (base.length % 2);
  const ifdBytes = 2 + 12 * all.length + 4;
  const out = Buffer.alloc(at + ifdBytes + (text && text.length > 4 ? text.length : 0));
  base.copy(out, 0);
  w32(out, at, 4);
  w16(out, all.length, at);
  all.forEach((e, i) => {
    const o = at + 2 + 12 * i;
    w16(out, e.tag, o);
    w16(out, e.type, o + 2);
    w32(out, e.count, o + 4);
    if (e.tag === TAG.description && text) {
      if (text.length <= 4) text.copy(out, o + 8);
      else w32(out, at + ifdBytes, o + 8);
    } else {
      e.value.copy(out, o + 8);
    }
  });
  w32(out, 0, at + 2 + 12 * all.length); // no IFD1
  if (text && text.length > 4) text.copy(out, at + ifdBytes);
  // too large for a JPEG segment: the new entries alone
  if (out.length > MAX_JPEG_EXIF && t) return outputExif(null, opts);
  return out;
}

/** The Orientation of EXIF bytes (with or without "Exif\0\0"), or null. */
export function exifOrientation(exif: Uint8Array | null | undefined): number | null {
  const t = tiffOf(exif);
  if (!t) return null;
  const e = readEntries(t.b, t.le, t.ifd0).find((x) => x.tag === TAG.orientation);
  return e ? (t.le ? e.value.readUInt16LE(0) : e.value.readUInt16BE(0)) : null;
}

/** What to write into an encoded image: EXIF (TIFF bytes) and an ICC profile. */
export interface FileMetadata {
  exif?: Uint8Array | null;
  icc?: Uint8Array | null;
}

/** JPEG: APP1 Exif and APP2 ICC_PROFILE segments after SOI (and JFIF's APP0), replacing any there. */
function jpegWith(buf: Buffer, m: FileMetadata): Buffer {
  if (buf[0] !== 0xff || buf[1] !== 0xd8) throw new Error('not a JPEG');
  const kept: Buffer[] = [];
  let o = 2;
  let app0: Buffer | null = null;
  // the segments before the image data: APP0 first, any Exif or ICC segment left out
  while (o + 4 <= buf.length && buf[o] === 0xff && buf[o + 1] >= 0xe0 && buf[o + 1] <= 0xef) {
    const len = buf.readUInt16BE(o + 2);
    const seg = buf.subarray(o, o + 2 + len);
    const marker = buf[o + 1];
    const isExif = marker === 0xe1 && seg.toString('latin1', 4, 10) === 'Exif\0\0';
    const isIcc = marker === 0xe2 && seg.toString('latin1', 4, 16) === 'ICC_PROFILE\0';
    if (marker === 0xe0 && app0 === null) app0 = seg;
    else if (!isExif && !isIcc) kept.push(seg);
    o += 2 + len;
  }
  const segment = (marker: number, ...parts: Uint8Array[]) => {
    const body = Buffer.concat(parts);
    const head = Buffer.from([0xff, marker, 0, 0]);
    head.writeUInt16BE(body.length + 2, 2);
    return [head, body];
  };
  const add: Buffer[] = [];
  if (m.exif && m.exif.length <= MAX_JPEG_EXIF) add.push(...segment(0xe1, Buffer.from('Exif\0\0', 'latin1'), m.exif));
  if (m.icc) {
    const chunk = 65533 - 16;
    const n = Math.ceil(m.icc.length / chunk);
    for (let i = 0; i < n; i++)
      add.push(
        ...segment(
          0xe2,
          Buffer.from('ICC_PROFILE\0', 'latin1'),
          Uint8Array.from([i + 1, n]),
          m.icc.subarray(i * chunk, (i + 1) * chunk),
        ),
      );
  }
  return Buffer.concat([buf.subarray(0, 2), ...(app0 ? [app0] : []), ...add, ...kept, buf.subarray(o)]);
}

/** The iCCP and eXIf chunks of `m`, in the order they go after IHDR. */
export function pngMetadataChunks(m: FileMetadata): Buffer[] {
  return [
    ...(m.icc
      ? [pngChunk('iCCP', Buffer.concat([Buffer.from('ICC Profile\0\0', 'latin1'), zlib.deflateSync(m.icc)]))]
      : []),
    ...(m.exif ? [pngChunk('eXIf', m.exif)] : []),
  ];
}

/** PNG: iCCP and eXIf after IHDR, replacing any iCCP, sRGB, gAMA, cHRM or eXIf there. */
function pngWith(buf: Buffer, m: FileMetadata): Buffer {
  const parts: Buffer[] = [buf.subarray(0, 8)];
  for (let o = 8; o + 12 <= buf.length;) {
    const len = buf.readUInt32BE(o);
    const type = buf.toString('latin1', o + 4, o + 8);
    const whole = buf.subarray(o, o + 12 + len);
    if (!['iCCP', 'sRGB', 'gAMA', 'cHRM', 'eXIf'].includes(type)) parts.push(whole);
    if (type === 'IHDR') parts.push(...pngMetadataChunks(m));
    o += 12 + len;
  }
  return Buffer.concat(parts);
}

/** WebP: the extended format (VP8X) with ICCP after VP8X and EXIF after the image data. */
function webpWith(buf: Buffer, m: FileMetadata, size: { width: number; height: number; alpha: boolean }): Buffer {
  if (buf.toString('latin1', 0, 4) !== 'RIFF' || buf.toString('latin1', 8, 12) !== 'WEBP')
    throw new Error('not a WebP');
  const chunks: { type: string; data: Buffer }[] = [];
  for (let o = 12; o + 8 <= buf.length;) {
    const len = buf.readUInt32LE(o + 4);
    chunks.push({ type: buf.toString('latin1', o, o + 4), data: buf.subarray(o + 8, o + 8 + len) });
    o += 8 + len + (len % 2);
  }
  let vp8x = chunks.find((c) => c.type === 'VP8X')?.data;
  if (!vp8x) {
    vp8x = Buffer.alloc(10);
    vp8x.writeUIntLE(size.width - 1, 4, 3);
    vp8x.writeUIntLE(size.height - 1, 7, 3);
    if (size.alpha || chunks.some((c) => c.type === 'ALPH')) vp8x[0] |= 0x10;
  } else {
    vp8x = Buffer.from(vp8x);
  }
  vp8x[0] = (vp8x[0] & ~0x28) | (m.icc ? 0x20 : 0) | (m.exif ? 0x08 : 0);
  const body = chunks.filter((c) => !['VP8X', 'ICCP', 'EXIF'].includes(c.type));
  const list = [
    { type: 'VP8X', data: vp8x },
    ...(m.icc ? [{ type: 'ICCP', data: Buffer.from(m.icc) }] : []),
    ...body,
    ...(m.exif ? [{ type: 'EXIF', data: Buffer.from(m.exif) }] : []),
  ];
  const out: Buffer[] = [];
  for (const c of list) {
    const head = Buffer.alloc(8);
    head.write(c.type, 0, 'latin1');
    head.writeUInt32LE(c.data.length, 4);
    out.push(head, c.data, ...(c.data.length % 2 ? [Buffer.alloc(1)] : []));
  }
  const riff = Buffer.alloc(12);
  riff.write('RIFF', 0, 'latin1');
  riff.writeUInt32LE(4 + out.reduce((a, b) => a + b.length, 0), 4);
  riff.write('WEBP', 8, 'latin1');
  return Buffer.concat([riff, ...out]);
}

/** Encoded JPEG, PNG or WebP bytes with `m` written into them (the pixels untouched). */
export function withMetadata(
  buf: Buffer,
  format: 'jpeg' | 'png' | 'webp',
  m: FileMetadata,
  size: { width: number; height: number; alpha: boolean },
): Buffer {
  if (!m.exif && !m.icc) return buf;
  if (format === 'jpeg') return jpegWith(buf, m);
  if (format === 'png') return pngWith(buf, m);
  return webpWith(buf, m, size);
}

/** The format an output takes by default: the input's (JPEG, PNG, WebP), else PNG (TIFF, GIF, an unreadable file). */
export function outputExtFor(format: string | null | undefined): OutputExt {
  return format === 'jpeg' || format === 'jpg' ? '.jpg' : format === 'webp' ? '.webp' : '.png';
}

/** outputExtFor a file's bytes (its first 12), for naming its outputs before it is decoded. */
export async function outputExtOf(file: string): Promise<OutputExt> {
  return outputExtFor(await readHead(file).then(sniffImageFormat, () => null));
}
