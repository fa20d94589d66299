// A PNG encoder whose compression runs in horizontal stripes on several threads (the face workers): each stripe is
// one raw deflate stream ended by a sync flush (the last one finished), primed with the 32 KiB before it as its
// dictionary, so that the concatenation is one zlib stream compressing like a single pass; each stripe travels in its
// own IDAT chunk and the stream's Adler-32 is combined from the stripes'. Written here because libvips (through
// sharp) encodes a PNG on one thread: 21-27 ms of the Solvay photo's time for its two outputs (measured on an H200
// host). The settings of sharp's route: filter None on every row and zlib level 1 (OpenCV's default, the official
// GPEN's).
import zlib from 'node:zlib';

/** Images side by side, row by row: each part has `width` pixels of RGB (and its alpha plane, when the PNG has one). */
export interface PngPart {
  data: Uint8Array;
  width: number;
  alpha: Uint8Array | null;
}

/** The rows [y0, y1) of the parts, compressed as one stripe of the image's stream. */
export interface PngStripeJob {
  parts: PngPart[];
  /** 3 (RGB) or 4 (RGBA: every part has an alpha plane). */
  channels: 3 | 4;
  y0: number;
  y1: number;
  /** The image's last stripe: its stream is finished instead of flushed. */
  final: boolean;
  level: number;
}

export interface PngStripe {
  /** Raw deflate bytes. */
  data: Uint8Array;
  /** Adler-32 of the stripe's filtered bytes, and their count. */
  adler: number;
  length: number;
  /** The CRC-32 of its IDAT chunk (the type and `data`), computed where the stripe was. */
  crc: number;
}

/** Bytes a stripe covers at most (rows of this many bytes or fewer go to one stripe; rows are never split). */
export const PNG_STRIPE_BYTES = 128 * 1024;
const WINDOW = 32 * 1024;
let crcTable: Int32Array | null = null;
/** CRC-32 (PNG's and zlib's) continuing from `value`, in JavaScript: for Node 20 before 20.15, whose zlib lacks crc32. */
export function crc32Js(data: Uint8Array, value = 0): number {
  crcTable ??= Int32Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c;
  });
  let c = ~value;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 255] ^ (c >>> 8);
  return ~c >>> 0;
}
/** CRC-32 through zlib where Node has it (20.15 and later), else crc32Js. */
const crc32: (data: Uint8Array, value?: number) => number =
  typeof zlib.crc32 === 'function' ? (d, v = 0) => zlib.crc32(d, v) >>> 0 : crc32Js;
/** CRC-32 of the chunk type 'IDAT', where an IDAT chunk's CRC starts. */
const IDAT_CRC = crc32(Buffer.from('IDAT', 'latin1'));
const ADLER_BASE = 65521;

/** The image's width: its parts side by side. */
export function partsWidth(parts: readonly { width: number }[]): number {
  return parts.reduce((a, p) => a + p.width, 0);
}

/** Bytes of one filtered row: the filter byte and the pixels. */
function rowBytesOf(parts: readonly PngPart[], channels: 3 | 4): number {
  return 1 + channels * partsWidth(parts);
}

/** The rows [y0, y1) as PNG filters them with filter None: a zero byte, then the row's pixels, part after part. */
function filteredRows(parts: PngPart[], channels: 3 | 4, y0: number, y1: number): Uint8Array {
  const rowBytes = rowBytesOf(parts, channels);
  const out = new Uint8Array(rowBytes * (y1 - y0));
  for (let y = y0; y < y1; y++) {
    let o = (y - y0) * rowBytes + 1;
    for (const p of parts) {
      if (channels === 3) {
        out.set(p.data.subarray(y * p.width * 3, (y + 1) * p.width * 3), o);
        o += p.width * 3;
        continue;
      }
      const a = p.alpha as Uint8Array;
      for (let x = 0, s = y * p.width * 3, t = y * p.width; x < p.width; x++, s += 3, t++) {
        out[o++] = p.data[s];
        out[o++] = p.data[s + 1];
        out[o++] = p.data[s + 2];
        out[o++] = a[t];
      }
    }
  }
  return out;
}

export function adler32(buf: Uint8Array, start = 1): number {
  let s1 = start & 0xffff;
  let s2 = start >>> 16;
  let i = 0;
  while (i < buf.length) {
    // 5552 bytes at most between reductions keeps the sums under 2^32 (zlib's NMAX)
    const end = Math.min(i + 5552, buf.length);
    for (; i < end; i++) {
      s1 += buf[i];
      s2 += s1;
    }
    s1 %= ADLER_BASE;
    s2 %= ADLER_BASE;
  }
  return ((s2 << 16) | s1) >>> 0;
}

/** The Adler-32 of A followed by B, from A's, B's and B's length (zlib's adler32_combine). */
export function adler32Combine(a: number, b: number, lengthB: number): number {
  const rem = lengthB % ADLER_BASE;
  let s1 = a & 0xffff;
  let s2 = (rem * s1) % ADLER_BASE;
  s1 += (b & 0xffff) + ADLER_BASE - 1;
  s2 += (a >>> 16) + (b >>> 16) + ADLER_BASE - rem;
  s1 %= ADLER_BASE;
  s2 %= ADLER_BASE;
  return ((s2 << 16) | s1) >>> 0;
}

/** Compresses one stripe (on whichever thread calls it). */
export function deflateStripe(job: PngStripeJob): PngStripe {
  const rows = filteredRows(job.parts, job.channels, job.y0, job.y1);
  // the window before the stripe, as the stream has it there: the dictionary
  const [first] = stripeReads(job);
  let dictionary: Uint8Array | undefined;
  if (first < job.y0) {
    const before = filteredRows(job.parts, job.channels, first, job.y0);
    dictionary = before.subarray(Math.max(0, before.length - WINDOW));
  }
  const data = zlib.deflateRawSync(rows, {
    level: job.level,
    finishFlush: job.final ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH,
    ...(dictionary ? { dictionary } : {}),
  });
  // a copy that owns its memory (zlib's Buffer may sit in Node's shared pool), so that a worker can transfer it
  return { data: new Uint8Array(data), adler: adler32(rows), length: rows.length, crc: crc32(data, IDAT_CRC) };
}

/** The rows a stripe reads: its own and those of the window before it (its dictionary), as [first, end). */
export function stripeReads(job: PngStripeJob): [number, number] {
  const rowBytes = rowBytesOf(job.parts, job.channels);
  return [job.y0 > 0 ? Math.max(0, job.y0 - Math.ceil(WINDOW / rowBytes)) : 0, job.y1];
}

/** Splits an image of `height` rows of `rowBytes` into stripes of about PNG_STRIPE_BYTES: their [y0, y1). */
export function stripeRows(height: number, rowBytes: number, stripeBytes = PNG_STRIPE_BYTES): [number, number][] {
  const rows = Math.max(1, Math.floor(stripeBytes / rowBytes));
  const out: [number, number][] = [];
  for (let y = 0; y < height; y += rows) out.push([y, Math.min(height, y + rows)]);
  return out;
}

/** A PNG chunk as one buffer: length, type, data, CRC-32. */
export function pngChunk(type: string, data: Uint8Array): Buffer {
  return Buffer.concat(chunk(type, data));
}

/** A PNG chunk: length, type, data, CRC-32 (given, or computed here). */
function chunk(type: string, data: Uint8Array, crcGiven?: number): Uint8Array[] {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crcGiven ?? crc32(data, crc32(head.subarray(4))), 0);
  return [head, data, crc];
}

/** EXIF with one IFD0 entry, ImageDescription (big-endian TIFF), as PNG's eXIf chunk holds it. */
function exifDescription(text: string): Buffer {
  const str = Buffer.from(text + '\0', 'latin1');
  const b = Buffer.alloc(26 + str.length);
  b.write('MM', 0, 'latin1');
  b.writeUInt16BE(42, 2);
  b.writeUInt32BE(8, 4);
  b.writeUInt16BE(1, 8); // one entry
  b.writeUInt16BE(0x010e, 10); // ImageDescription
  b.writeUInt16BE(2, 12); // ASCII
  b.writeUInt32BE(str.length, 14);
  if (str.length <= 4) str.copy(b, 18);
  else b.writeUInt32BE(26, 18);
  b.writeUInt32BE(0, 22); // no next IFD
  if (str.length > 4) str.copy(b, 26);
  return str.length <= 4 ? b.subarray(0, 26) : b;
}

/**
 * The PNG file from its stripes (in order): signature, header, ICC profile, EXIF (`exif`, TIFF bytes, else one made of
 * `description`), the stream's chunks, end.
 */
export function assemblePng(
  width: number,
  height: number,
  channels: 3 | 4,
  stripes: PngStripe[],
  description?: string,
  iccProfile?: Uint8Array,
  exif?: Uint8Array,
): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bits per channel
  ihdr[9] = channels === 4 ? 6 : 2; // RGBA or RGB
  let adler = 1;
  for (const s of stripes) adler = adler32Combine(adler, s.adler, s.length);
  const tail = Buffer.alloc(4);
  tail.writeUInt32BE(adler, 0);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    ...chunk('IHDR', ihdr),
    // an ICC profile: a name, a zero, compression method 0, the profile deflated
    ...(iccProfile
      ? chunk('iCCP', Buffer.concat([Buffer.from('ICC Profile\0\0', 'latin1'), zlib.deflateSync(iccProfile)]))
      : []),
    ...(exif ? chunk('eXIf', exif) : description ? chunk('eXIf', exifDescription(description)) : []),
    // the zlib header (deflate, 32 KiB window, fastest), each stripe, the Adler-32: one stream over several IDATs
    ...chunk('IDAT', Uint8Array.from([0x78, 0x01])),
    ...stripes.flatMap((s) => chunk('IDAT', s.data, s.crc)),
    ...chunk('IDAT', tail),
    ...chunk('IEND', new Uint8Array(0)),
  ]);
}

/** The stripe jobs of an image made of `parts` side by side, `height` rows. */
export function pngStripeJobs(
  parts: PngPart[],
  height: number,
  level = 1,
  stripeBytes = PNG_STRIPE_BYTES,
): PngStripeJob[] {
  const channels: 3 | 4 = parts.every((p) => p.alpha) ? 4 : 3;
  const rowBytes = rowBytesOf(parts, channels);
  const spans = stripeRows(height, rowBytes, stripeBytes);
  return spans.map(([y0, y1], i) => ({ parts, channels, y0, y1, final: i === spans.length - 1, level }));
}

/**
 * Encodes parts side by side as a PNG, the stripes compressed by `deflate` (a pool of threads; default: this thread,
 * one after the other).
 */
export async function encodePngStriped(
  parts: PngPart[],
  height: number,
  opts: {
    description?: string;
    iccProfile?: Uint8Array;
    deflate?: (jobs: PngStripeJob[]) => Promise<PngStripe[]>;
    stripeBytes?: number;
  } = {},
): Promise<Buffer> {
  const jobs = pngStripeJobs(parts, height, 1, opts.stripeBytes);
  const stripes = opts.deflate ? await opts.deflate(jobs) : jobs.map(deflateStripe);
  return assemblePng(partsWidth(parts), height, jobs[0].channels, stripes, opts.description, opts.iccProfile);
}

/** An image of parts side by side, `height` rows. */
export interface PngImage {
  parts: PngPart[];
  height: number;
}

/** Stripes of PNGs compressed ahead (restore: before the paste, those whose rows no face reaches). */
export interface EarlyStripes {
  /** Per image, per stripe: whether it is among the early ones. */
  early: boolean[][];
  /** The early stripes, in image then stripe order. */
  stripes: Promise<PngStripe[]>;
}

/** restore's photo outputs as PNG images: the result (`out`, with its alpha) and the side by side (`left`, `out`). */
export function photoPngs(
  left: PngPart,
  out: PngPart,
  height: number,
  kinds: readonly ('gpen' | 'comp')[],
): PngImage[] {
  return kinds.map((k) =>
    k === 'gpen'
      ? { parts: [out], height }
      : {
          parts: [
            { ...left, alpha: null },
            { ...out, alpha: null },
          ],
          height,
        },
  );
}

/**
 * PNGs compressed in stripes by `deflate` (a pool of threads), every image's stripes in one round: one promise per
 * image (with its ICC profile and EXIF), and how many stripes they have. Stripes `early` compressed already are taken
 * from it.
 */
export function encodePngsStriped(
  deflate: (jobs: PngStripeJob[]) => Promise<PngStripe[]>,
  images: PngImage[],
  metas: { icc?: Uint8Array | null; exif?: Uint8Array | null }[],
  early?: EarlyStripes,
): { encoded: Promise<Buffer>[]; stripes: number } {
  const jobs = images.map((im) => pngStripeJobs(im.parts, im.height));
  const isEarly = (i: number, k: number) => early?.early[i]?.[k] === true;
  const late = deflate(jobs.flatMap((js, i) => js.filter((_, k) => !isEarly(i, k))));
  const both = Promise.all([late, early?.stripes ?? Promise.resolve([])]);
  const encoded = images.map(async (im, i) => {
    const [lateOut, earlyOut] = await both;
    // where image i's stripes start in each list
    let li = 0,
      ei = 0;
    for (let j = 0; j < i; j++)
      jobs[j].forEach((_, k) => {
        if (isEarly(j, k)) ei++;
        else li++;
      });
    const stripes = jobs[i].map((_, k) => (isEarly(i, k) ? earlyOut[ei++] : lateOut[li++]));
    return assemblePng(
      partsWidth(im.parts),
      im.height,
      jobs[i][0].channels,
      stripes,
      undefined,
      metas[i].icc ?? undefined,
      metas[i].exif ?? undefined,
    );
  });
  return { encoded, stripes: jobs.reduce((a, js) => a + js.length, 0) };
}

/** RGB images side by side, top-aligned (a shorter one's rows below it black). */
export function hstack(parts: { width: number; height: number; data: Uint8Array }[]): {
  width: number;
  height: number;
  rgb: Uint8Array;
  alpha: null;
} {
  const h = Math.max(...parts.map((p) => p.height));
  const w = partsWidth(parts);
  const rgb = new Uint8Array(w * h * 3);
  let x0 = 0;
  for (const p of parts) {
    for (let y = 0; y < p.height; y++)
      rgb.set(p.data.subarray(y * p.width * 3, (y + 1) * p.width * 3), (y * w + x0) * 3);
    x0 += p.width;
  }
  return { width: w, height: h, rgb, alpha: null };
}
