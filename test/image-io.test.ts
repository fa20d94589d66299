// Image decoding and encoding: every layout a user's photo may come in decodes to the same upright 8-bit sRGB pixels
// (checked pixel by pixel, lossy formats within a stated error), and every bad file is a coded error.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { GpenLabError } from '../src/errors.js';
import { decodeImage, encodeImage, parseOutputExt, splitRgba } from '../src/io/image.js';
import { encodePngStriped } from '../src/io/png.js';
import { IMAGES } from './fixtures.js';
import {
  imageInfo,
  pattern,
  write16BitPng,
  writeAnimatedGif,
  writePngBomb,
  writeCmykJpeg,
  writeOrientation6Jpeg,
  writePng,
} from './helpers/images.js';

let dir: string;
before(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'gpen-lab-image-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const f = (name: string): string => path.join(dir, name);
const W = 24,
  H = 16;

function meanAbs(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length;
}

const isCode = (code: string, re?: RegExp) => (e: unknown) =>
  e instanceof GpenLabError && e.code === code && (!re || re.test(e.message)) && e.fix.length > 0;

describe('decodeImage', () => {
  it('decodes an RGB PNG exactly and says what it was', async () => {
    const p = pattern(W, H);
    await writePng(f('rgb.png'), p, W, H);
    const img = await decodeImage(f('rgb.png'));
    assert.deepEqual([img.width, img.height, img.alpha], [W, H, null]);
    assert.deepEqual(img.rgb, p);
    assert.equal(img.source.format, 'png');
    assert.equal(img.source.orientation, 1);
  });

  it('keeps alpha apart, exactly', async () => {
    const p = pattern(W, H);
    const rgba = new Uint8Array(W * H * 4);
    for (let i = 0; i < W * H; i++) rgba.set([p[3 * i], p[3 * i + 1], p[3 * i + 2], i % 256], 4 * i);
    await writePng(f('rgba.png'), rgba, W, H, 4);
    const img = await decodeImage(f('rgba.png'));
    assert.deepEqual(img.rgb, p);
    assert.ok(img.alpha);
    assert.deepEqual([...img.alpha.subarray(0, 5)], [0, 1, 2, 3, 4]);
  });

  it('expands grey and grey + alpha to RGB', async () => {
    const g = Uint8Array.from({ length: W * H }, (_, i) => (i * 7) % 256);
    await writePng(f('grey.png'), g, W, H, 1);
    const img = await decodeImage(f('grey.png'));
    assert.equal(img.alpha, null);
    for (let i = 0; i < W * H; i++) assert.deepEqual([...img.rgb.subarray(3 * i, 3 * i + 3)], [g[i], g[i], g[i]]);
    const ga = new Uint8Array(W * H * 2);
    for (let i = 0; i < W * H; i++) ga.set([g[i], 255 - g[i]], 2 * i);
    await writePng(f('grey-alpha.png'), ga, W, H, 2);
    const img2 = await decodeImage(f('grey-alpha.png'));
    assert.deepEqual(img2.rgb, img.rgb);
    assert.ok(img2.alpha);
    assert.equal(img2.alpha[1], 255 - g[1]);
  });

  it('reduces 16-bit PNG to 8 bits', async () => {
    const p = pattern(W, H);
    await write16BitPng(f('16.png'), p, W, H);
    const img = await decodeImage(f('16.png'));
    assert.equal(img.source.depth, 'ushort');
    assert.ok(meanAbs(img.rgb, p) <= 0.01, `mean abs error ${meanAbs(img.rgb, p)}`);
  });

  it('converts CMYK JPEG to sRGB', async () => {
    const p = pattern(W, H);
    await writeCmykJpeg(f('cmyk.jpg'), p, W, H);
    const img = await decodeImage(f('cmyk.jpg'));
    assert.equal(img.source.space, 'cmyk');
    // through a CMYK profile and back: the gamut costs some levels (16 here), a channel mix-up or an inversion far more
    assert.ok(meanAbs(img.rgb, p) < 25, `mean abs error ${meanAbs(img.rgb, p).toFixed(2)}`);
    const at = (x: number, y: number, c: number): number => img.rgb[(y * W + x) * 3 + c];
    assert.ok(at(W - 1, 0, 0) - at(0, 0, 0) > 150, 'red still ramps up with x');
    assert.ok(at(0, H - 1, 1) - at(0, 0, 1) > 150, 'green still ramps up with y');
  });

  it('reads the first frame of an animated GIF', async () => {
    const p = pattern(W, H);
    await writeAnimatedGif(f('anim.gif'), p, W, H);
    const img = await decodeImage(f('anim.gif'));
    assert.equal(img.source.pages, 2);
    assert.deepEqual([img.width, img.height], [W, H]);
    // GIF has a 256-colour palette: the ramp is quantised, but this is the pattern, not the black second frame
    assert.ok(meanAbs(img.rgb, p) < 8, `mean abs error ${meanAbs(img.rgb, p).toFixed(2)}`);
  });

  it('applies EXIF orientation 6 (the stored pixels turned upright)', async () => {
    const p = pattern(W, H);
    await writeOrientation6Jpeg(f('rot6.jpg'), p, W, H);
    const img = await decodeImage(f('rot6.jpg'));
    assert.deepEqual([img.source.width, img.source.height, img.source.orientation], [H, W, 6]);
    assert.deepEqual([img.width, img.height], [W, H]);
    assert.ok(meanAbs(img.rgb, p) < 3, `mean abs error ${meanAbs(img.rgb, p).toFixed(2)}`);
  });

  it('applies EXIF orientation 6 to the shared phone selfie', async () => {
    const img = await decodeImage(path.join(IMAGES, 'selfie_20200320.jpg'));
    assert.deepEqual([img.source.width, img.source.height, img.source.orientation], [4032, 3024, 6]);
    assert.deepEqual([img.width, img.height], [3024, 4032]);
  });

  it('decodes a 1x1 image', async () => {
    await writePng(f('one.png'), Uint8Array.from([1, 2, 3]), 1, 1);
    const img = await decodeImage(f('one.png'));
    assert.deepEqual([img.width, img.height, [...img.rgb]], [1, 1, [1, 2, 3]]);
  });
});

describe('decodeImage: bad files are coded errors', () => {
  it('a missing file, a directory', async () => {
    await assert.rejects(decodeImage(f('nope.png')), isCode('E_FILE_MISSING', /nope\.png/));
    await assert.rejects(decodeImage(dir), isCode('E_FILE_UNREADABLE'));
  });

  it('an empty file and a text file named .jpg', async () => {
    writeFileSync(f('empty.png'), '');
    await assert.rejects(decodeImage(f('empty.png')), isCode('E_FORMAT_UNKNOWN', /empty\.png/));
    writeFileSync(f('text.jpg'), 'this is not a photo\n');
    await assert.rejects(decodeImage(f('text.jpg')), isCode('E_FORMAT_UNKNOWN', /text\.jpg/));
  });

  it('a truncated JPEG and a truncated PNG', async () => {
    const jpg = readFileSync(path.join(IMAGES, 'selfie_20200320.jpg'));
    writeFileSync(f('half.jpg'), jpg.subarray(0, jpg.length >> 1));
    await assert.rejects(decodeImage(f('half.jpg')), isCode('E_IMAGE_CORRUPT', /half\.jpg/));
    const png = readFileSync(path.join(IMAGES, '00002.png'));
    writeFileSync(f('half.png'), png.subarray(0, png.length >> 1));
    await assert.rejects(decodeImage(f('half.png')), isCode('E_IMAGE_CORRUPT', /half\.png/));
  });

  it('a decompression bomb is refused from its header, before decoding', async () => {
    // a 20000 x 20000 PNG of one colour: a few hundred kB on disk, 1.2 GB decoded
    await writePng(f('small.png'), new Uint8Array(3 * 10 * 10), 10, 10);
    await assert.rejects(decodeImage(f('small.png'), { maxPixels: 99 }), isCode('E_IMAGE_TOO_LARGE', /10x10.*limit/));
    writePngBomb(f('bomb.png'), 20000);
    const rss0 = process.memoryUsage().rss;
    await assert.rejects(decodeImage(f('bomb.png')), isCode('E_IMAGE_TOO_LARGE', /20000x20000 \(400\.0 MP\)/));
    assert.ok(process.memoryUsage().rss - rss0 < 200e6, 'nothing was decoded');
  });

  it('rejects a bad maxPixels', async () => {
    await assert.rejects(decodeImage(f('one.png'), { maxPixels: 0 }), isCode('E_ARGUMENT', /maxPixels/));
    await assert.rejects(
      decodeImage(f('one.png'), { maxPixels: 1e99 }),
      isCode('E_ARGUMENT', /9007199254740991 for maxPixels/),
    );
  });

  it('takes the documented formats by their bytes: an SVG named .png is refused, not rendered', async () => {
    const svg = f('drawing.png');
    writeFileSync(
      svg,
      '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><image href="one.png" width="64" height="64"/></svg>',
    );
    await assert.rejects(decodeImage(svg), isCode('E_FORMAT_UNKNOWN', /none of/));
  });

  it('a PNG whose header checksum is wrong is E_IMAGE_CORRUPT, saying so', async () => {
    const png = readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'assets', 'demo-face.png'));
    const bad = Buffer.from(png);
    bad[29] ^= 0xff; // the IHDR chunk's CRC (8 signature + 4 length + 4 type + 13 data)
    const file = f('bad-crc.png');
    writeFileSync(file, bad);
    await assert.rejects(decodeImage(file), isCode('E_IMAGE_CORRUPT', /its IHDR chunk's checksum does not match/));
  });

  it('a loop of symbolic links is E_FILE_UNREADABLE, not "missing"', async () => {
    const a = f('loop-a.png');
    const b = f('loop-b.png');
    symlinkSync(b, a);
    symlinkSync(a, b);
    await assert.rejects(decodeImage(a), isCode('E_FILE_UNREADABLE', /loop of symbolic links/));
  });
});

/** The ICC profile a PNG carries (its iCCP chunk, inflated). */
function pngIccProfile(file: string): Buffer {
  const b = readFileSync(file);
  for (let o = 8; o < b.length;) {
    const len = b.readUInt32BE(o);
    if (b.toString('latin1', o + 4, o + 8) === 'iCCP') {
      const d = b.subarray(o + 8, o + 8 + len);
      return zlib.inflateSync(d.subarray(d.indexOf(0) + 2));
    }
    o += 12 + len;
  }
  throw new Error(`${file} carries no ICC profile`);
}

describe('ICC profiles applied per distinct colour', () => {
  // the Solvay photo carries Apple's Display profile (not sRGB): colours change through it, greys do not
  const icc = pngIccProfile(path.join(IMAGES, 'Solvay_conference_1927.png'));

  for (const withAlpha of [false, true]) {
    it(`a colour ${withAlpha ? 'RGBA' : 'RGB'} PNG with a profile decodes to exactly sharp's pixels (colours converted, not all the same)`, async () => {
      const w = 97,
        h = 61;
      const rgb = Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 37 + (i >> 5) * 11) & 255);
      const alpha = withAlpha ? Uint8Array.from({ length: w * h }, (_, i) => (i * 5) & 255) : null;
      const file = f(`icc-${withAlpha}.png`);
      writeFileSync(file, await encodePngStriped([{ data: rgb, width: w, alpha }], h, { iccProfile: icc }));
      const fast = await decodeImage(file);
      const plain = await decodeImage(file, { iccByColours: false });
      assert.deepEqual(fast.rgb, plain.rgb);
      assert.deepEqual(fast.alpha, plain.alpha);
      let changed = 0;
      for (let i = 0; i < rgb.length; i++) if (plain.rgb[i] !== rgb[i]) changed++;
      assert.ok(changed > rgb.length / 10, `${changed} of ${rgb.length} values converted by the profile`);
    });
  }

  /** The profile with its tone curves (one 1024-entry curv shared by R, G and B) made linear: greys then change. */
  function withLinearCurves(profile: Buffer): Buffer {
    const p = Buffer.from(profile);
    let curves = 0;
    for (let i = 0; i < p.readUInt32BE(128); i++) {
      const sig = p.toString('latin1', 132 + 12 * i, 136 + 12 * i);
      const off = p.readUInt32BE(136 + 12 * i);
      if (!/^[rgb]TRC$/.test(sig) || p.toString('latin1', off, off + 4) !== 'curv') continue;
      const count = p.readUInt32BE(off + 8);
      for (let j = 0; j < count; j++) p.writeUInt16BE(Math.round((j / (count - 1)) * 65535), off + 12 + 2 * j);
      curves++;
    }
    assert.equal(curves, 3);
    return p;
  }

  for (const withAlpha of [false, true]) {
    it(`a grey ${withAlpha ? 'RGBA' : 'RGB'} PNG decodes to exactly sharp's pixels through the greys' table, made once per profile`, async () => {
      const linear = withLinearCurves(icc);
      const w = 64,
        h = 9;
      const rgb = new Uint8Array(w * h * 3);
      for (let q = 0; q < w * h; q++) rgb.fill((q * 7) & 255, 3 * q, 3 * q + 3);
      const alpha = withAlpha ? Uint8Array.from({ length: w * h }, (_, i) => (i * 3) & 255) : null;
      const file = f(`icc-grey-${withAlpha}.png`);
      writeFileSync(file, await encodePngStriped([{ data: rgb, width: w, alpha }], h, { iccProfile: linear }));
      const plain = await decodeImage(file, { iccByColours: false });
      let changed = 0;
      for (let i = 0; i < rgb.length; i++) if (plain.rgb[i] !== rgb[i]) changed++;
      assert.ok(changed > rgb.length / 2, `${changed} of ${rgb.length} values converted by the linear profile`);
      // the first decode makes the profile's table, the second finds it
      for (let round = 0; round < 2; round++) {
        const fast = await decodeImage(file);
        assert.deepEqual(fast.rgb, plain.rgb);
        assert.deepEqual(fast.alpha, plain.alpha);
      }
      // one coloured pixel: not grey, the colours' way, the same pixels
      rgb[3 * 100] = 200;
      writeFileSync(file, await encodePngStriped([{ data: rgb, width: w, alpha }], h, { iccProfile: linear }));
      assert.deepEqual((await decodeImage(file)).rgb, (await decodeImage(file, { iccByColours: false })).rgb);
    });
  }

  it("the Solvay photo (greys: the profile leaves them) decodes to exactly sharp's pixels", async () => {
    const file = path.join(IMAGES, 'Solvay_conference_1927.png');
    const fast = await decodeImage(file);
    const plain = await decodeImage(file, { iccByColours: false });
    assert.deepEqual(fast.rgb, plain.rgb);
    assert.equal(fast.alpha, null);
  });
});

describe('splitRgba', () => {
  it('splits like a byte loop, words or not, and finds an opaque alpha', () => {
    for (const n of [0, 1, 3, 4, 5, 8, 1001]) {
      for (const offset of [0, 1, 4]) {
        for (const opaqueAlpha of [false, true]) {
          const mem = new Uint8Array(offset + 4 * n);
          const data = mem.subarray(offset);
          for (let i = 0; i < data.length; i++) data[i] = (i * 97 + 13) & 255;
          if (opaqueAlpha) for (let i = 3; i < data.length; i += 4) data[i] = 255;
          const rgb = new Uint8Array(3 * n),
            alpha = new Uint8Array(n);
          const got = splitRgba(data, n, rgb, alpha);
          let want = 255;
          for (let i = 0; i < n; i++) {
            assert.deepEqual(
              [rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], alpha[i]],
              [...data.subarray(4 * i, 4 * i + 4)],
              `n ${n}, offset ${offset}, pixel ${i}`,
            );
            want &= data[4 * i + 3];
          }
          assert.equal(got, want, `n ${n}, offset ${offset}`);
          if (opaqueAlpha) assert.equal(got, 255);
        }
      }
    }
  });
});

describe('encodeImage', () => {
  const p = pattern(W, H);

  it('PNG round-trips exactly, with alpha and the description in EXIF', async () => {
    const alpha = Uint8Array.from({ length: W * H }, (_, i) => i % 256);
    const buf = await encodeImage({ width: W, height: H, rgb: p, alpha }, '.png', { description: 'gpen-lab: test' });
    writeFileSync(f('out.png'), buf);
    const img = await decodeImage(f('out.png'));
    assert.deepEqual(img.rgb, p);
    assert.deepEqual(img.alpha, alpha);
    assert.equal((await imageInfo(buf)).description, 'gpen-lab: test');
  });

  it('JPEG drops alpha and stays within 1.5 levels at the default quality (92, 4:4:4); WebP keeps alpha', async () => {
    const alpha = new Uint8Array(W * H).fill(128);
    const jpg = await encodeImage({ width: W, height: H, rgb: p, alpha }, '.jpg');
    const ji = await imageInfo(jpg);
    assert.deepEqual([ji.format, ji.channels], ['jpeg', 3]);
    writeFileSync(f('out.jpg'), jpg);
    assert.ok(meanAbs((await decodeImage(f('out.jpg'))).rgb, p) < 1.5);
    const webp = await encodeImage({ width: W, height: H, rgb: p, alpha }, '.webp');
    const wi = await imageInfo(webp);
    assert.deepEqual([wi.format, wi.channels], ['webp', 4]);
  });

  it('parses output extensions', () => {
    assert.equal(parseOutputExt('.PNG'), '.png');
    assert.equal(parseOutputExt('jpeg'), '.jpg');
    assert.equal(parseOutputExt('webp'), '.webp');
    assert.throws(() => parseOutputExt('.gif'), isCode('E_ARGUMENT', /for ext but received ".gif"/));
  });
});
