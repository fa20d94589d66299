// The striped PNG encoder (src/io/png.ts): its files decode (the project's decoder, and zlib checking the stream's Adler-32) to
// exactly the pixels given, with and without alpha, images side by side, one stripe or many, on this thread or on
// the face workers; the description is in EXIF; the Adler-32 pieces combine as zlib's do.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import zlib from 'node:zlib';
import { FaceWorkers, sharedBytes } from '../src/face/face-workers.js';
import { adler32, adler32Combine, crc32Js, deflateStripe, encodePngStriped, pngStripeJobs } from '../src/io/png.js';
import { decodeImage, decodeImageBuffer } from '../src/io/image.js';
import { IMAGES } from './fixtures.js';
import { imageInfo, pattern } from './helpers/images.js';

/** The IDAT chunks' data of a PNG, joined (one zlib stream). */
function idat(png: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let o = 8; o < png.length;) {
    const len = png.readUInt32BE(o);
    if (png.toString('latin1', o + 4, o + 8) === 'IDAT') parts.push(png.subarray(o + 8, o + 8 + len));
    o += 12 + len;
  }
  return Buffer.concat(parts);
}

async function decoded(png: Buffer): Promise<{ data: Buffer; alpha: Uint8Array | null; width: number }> {
  const img = await decodeImageBuffer(png, 'striped.png');
  return { data: Buffer.from(img.rgb), alpha: img.alpha, width: img.width };
}

describe('striped PNG encoder', () => {
  const W = 37,
    H = 53;
  const a = pattern(W, H);
  const b = pattern(W, H).map((v) => 255 - v);
  const alpha = Uint8Array.from({ length: W * H }, (_, i) => (i * 7) % 256);

  it('Adler-32 of a concatenation combines from its pieces', () => {
    const x = Uint8Array.from({ length: 100_003 }, (_, i) => (i * 131 + (i >> 7)) & 255);
    for (const cut of [0, 1, 5552, 65521, 70_000, 100_003]) {
      assert.equal(
        adler32Combine(adler32(x.subarray(0, cut)), adler32(x.subarray(cut)), x.length - cut),
        adler32(x),
        `cut at ${cut}`,
      );
    }
    // zlib's own value for a known string
    assert.equal(adler32(new TextEncoder().encode('Wikipedia')), 0x11e60398);
  });

  it("the JavaScript CRC-32 (for Node without zlib.crc32) is zlib's, continued or not", () => {
    const x = Uint8Array.from({ length: 10_007 }, (_, i) => (i * 151 + (i >> 3)) & 255);
    assert.equal(crc32Js(new TextEncoder().encode('123456789')), 0xcbf43926);
    assert.equal(crc32Js(x), zlib.crc32(x) >>> 0);
    assert.equal(crc32Js(x.subarray(5000), crc32Js(x.subarray(0, 5000))), zlib.crc32(x) >>> 0);
  });

  for (const stripeBytes of [64, 1000, 1 << 20]) {
    it(`RGB images side by side round-trip exactly (stripes of ${stripeBytes} bytes)`, async () => {
      const png = await encodePngStriped(
        [
          { data: a, width: W, alpha: null },
          { data: b, width: W, alpha: null },
        ],
        H,
        { stripeBytes, description: 'gpen-lab: striped' },
      );
      const got = await decoded(png);
      assert.equal(got.alpha, null);
      assert.equal(got.width, 2 * W);
      for (let y = 0; y < H; y++) {
        assert.deepEqual(
          got.data.subarray(y * 6 * W, y * 6 * W + 3 * W),
          Buffer.from(a.subarray(y * 3 * W, (y + 1) * 3 * W)),
          `row ${y}, left`,
        );
        assert.deepEqual(
          got.data.subarray(y * 6 * W + 3 * W, (y + 1) * 6 * W),
          Buffer.from(b.subarray(y * 3 * W, (y + 1) * 3 * W)),
          `row ${y}, right`,
        );
      }
      // one zlib stream whose checksum holds (inflateSync verifies the Adler-32): filter byte 0, then the row
      const raw = zlib.inflateSync(idat(png));
      assert.equal(raw.length, H * (1 + 6 * W));
      assert.equal((await imageInfo(png)).description, 'gpen-lab: striped');
    });
  }

  it('RGBA round-trips exactly', async () => {
    const png = await encodePngStriped([{ data: a, width: W, alpha }], H, { stripeBytes: 200 });
    const got = await decoded(png);
    assert.deepEqual(got.data, Buffer.from(a));
    assert.deepEqual(got.alpha, alpha);
  });

  it('the Solvay photo in stripes compresses like one stream (within 1%: each stripe starts from the window before it)', async () => {
    const img = await decodeImage(path.join(IMAGES, 'Solvay_conference_1927.png'));
    const parts = [{ data: img.rgb, width: img.width, alpha: null }];
    const striped = await encodePngStriped(parts, img.height);
    const one = await encodePngStriped(parts, img.height, { stripeBytes: 1 << 30 });
    assert.ok(pngStripeJobs(parts, img.height).length >= 8);
    assert.ok(
      idat(striped).length <= idat(one).length * 1.01,
      `${idat(striped).length} bytes in stripes against ${idat(one).length} in one`,
    );
    assert.deepEqual((await decoded(striped)).data, Buffer.from(img.rgb));
  });

  it('the face workers compress the stripes of several images in one round, in order', async () => {
    const workers = new FaceWorkers(3);
    try {
      const parts = [{ data: sharedBytes(a), width: W, alpha: sharedBytes(alpha) }];
      const jobs = [...pngStripeJobs(parts, H, 1, 500), ...pngStripeJobs([{ ...parts[0], alpha: null }], H, 1, 300)];
      assert.ok(jobs.length > 6, `${jobs.length} stripes`);
      const there = await workers.pngStripes(jobs);
      const here = jobs.map(deflateStripe);
      assert.deepEqual(
        there.map((s) => [s.adler, s.length, Buffer.from(s.data).toString('base64')]),
        here.map((s) => [s.adler, s.length, Buffer.from(s.data).toString('base64')]),
      );
    } finally {
      await workers.close();
    }
  });
});
