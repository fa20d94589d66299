// restore's outputs: the input's format by default (JPEG in, JPEG out), the input's EXIF with Orientation 1 and an
// sRGB ICC profile in every file, --outputs choosing the files (--save-face refused with the fix), --aligned refusing
// a non-square input, and the never-overwrite check under the new names. The files are read back with sharp's
// metadata() in a child process (only src/io imports sharp).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RestoreResult } from '../src/face/restore.js';
import { Restorer } from '../src/face/restore.js';
import { GpenLabError } from '../src/errors.js';
import { decodeImage, encodeImage, srgbProfile } from '../src/io/image.js';
import { exifOrientation, outputExif } from '../src/io/metadata.js';
import { IMAGES } from './fixtures.js';
import { pattern, writeAnimatedGif } from './helpers/images.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FACE = path.join(REPO, 'assets', 'demo-face.png');
const SELFIE = path.join(IMAGES, 'selfie_20200320.jpg');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-outputs-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

interface Meta {
  format: string;
  width: number;
  height: number;
  orientation: number | null;
  space: string;
  hasProfile: boolean;
  icc: string | null;
  exif: string | null;
}

/** sharp's metadata() of each file, read in a child process. */
function metadataOf(files: string[]): Meta[] {
  const script = `const sharp = require('sharp');
(async () => {
  const out = [];
  for (const f of JSON.parse(process.argv[1])) {
    const m = await sharp(f).metadata();
    out.push({ format: m.format, width: m.width, height: m.height, orientation: m.orientation ?? null, space: m.space, hasProfile: !!m.hasProfile, icc: m.icc ? m.icc.toString('base64') : null, exif: m.exif ? m.exif.toString('base64') : null });
  }
  process.stdout.write(JSON.stringify(out));
})();`;
  const r = spawnSync(process.execPath, ['-e', script, JSON.stringify(files)], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Meta[];
}

const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', ...args], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: 180_000,
    env: { ...process.env, ...env },
  });
const jsonLines = (stdout: string) =>
  stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as RestoreResult & { error?: { code: string; message: string; fix: string } });

describe('restore outputs: format, EXIF and colour profile', () => {
  const dir = path.join(tmp, 'formats');
  const out = path.join(tmp, 'formats-out');
  let results: RestoreResult[];
  let srgb: string;
  before(async () => {
    mkdirSync(dir);
    copyFileSync(SELFIE, path.join(dir, 'selfie.jpg'));
    copyFileSync(FACE, path.join(dir, 'face-png.png'));
    const face = await decodeImage(FACE);
    writeFileSync(path.join(dir, 'face-webp.webp'), await encodeImage({ ...face, alpha: null }, '.webp'));
    await writeAnimatedGif(path.join(dir, 'anim.gif'), pattern(64, 48), 64, 48);
    srgb = (await srgbProfile()).toString('base64');
    const r = await Restorer.create({ model: { type: 'identity', size: 256 }, outDir: out });
    try {
      results = await r.restoreFiles(
        ['selfie.jpg', 'face-png.png', 'face-webp.webp', 'anim.gif'].map((n) => path.join(dir, n)),
      );
    } finally {
      await r.release();
    }
  });

  it("by default each image gets NAME_GPEN alone, in its input's format: JPEG, PNG, WebP; a GIF gives PNG", () => {
    for (const r of results) assert.equal(r.error, undefined, `${r.input}: ${JSON.stringify(r.error)}`);
    assert.deepEqual(readdirSync(out).sort(), [
      'anim_GPEN.png',
      'face-png_GPEN.png',
      'face-webp_GPEN.webp',
      'selfie_GPEN.jpg',
    ]);
    assert.deepEqual(
      results.map((r) => [r.outputs.comp, r.outputs.faces.length]),
      results.map(() => [null, 0]),
    );
    const meta = metadataOf(results.map((r) => r.outputs.gpen!));
    assert.deepEqual(
      meta.map((m) => m.format),
      ['jpeg', 'png', 'webp', 'png'],
    );
  });

  it("every output is tagged sRGB (sharp's sRGB ICC profile) with EXIF Orientation 1; the photo's own EXIF goes with it", () => {
    const meta = metadataOf(results.map((r) => r.outputs.gpen!));
    for (const [i, m] of meta.entries()) {
      assert.equal(m.orientation, 1, `${results[i].input}: orientation`);
      assert.equal(m.space, 'srgb');
      assert.ok(m.hasProfile && m.icc === srgb, `${results[i].input}: the sRGB profile`);
      assert.ok(
        Buffer.from(m.icc, 'base64').includes(Buffer.from('sRGB', 'utf16le').swap16()),
        'the profile says sRGB',
      );
      assert.match(Buffer.from(m.exif!, 'base64').toString('latin1'), /gpen-lab: restored with identity/);
    }
    // the selfie: stored turned (orientation 6), written upright (portrait), the camera's fields kept
    const selfie = meta[0];
    assert.deepEqual([selfie.width, selfie.height], [3024, 4032]);
    const exif = Buffer.from(selfie.exif!, 'base64');
    assert.equal(exifOrientation(exif), 1);
    assert.match(exif.toString('latin1'), /Apple/);
    const input = readFileSync(SELFIE);
    const at = input.indexOf('Exif\0\0');
    assert.equal(exifOrientation(input.subarray(at, at - 2 + input.readUInt16BE(at - 2))), 6, 'the input says 6');
  });

  it('a phone JPEG comes back about its own size (PNG made it 21 MB)', () => {
    const inBytes = statSync(SELFIE).size;
    const outBytes = statSync(results[0].outputs.gpen!).size;
    assert.ok(outBytes < 2 * inBytes, `${(outBytes / 1e6).toFixed(2)} MB from ${(inBytes / 1e6).toFixed(2)} MB`);
  });

  it('the decoded output is upright like the decoded input (no second rotation): the identity model gives it back', async () => {
    const [a, b] = await Promise.all([decodeImage(SELFIE), decodeImage(results[0].outputs.gpen!)]);
    assert.deepEqual([b.width, b.height, b.source.orientation], [a.width, a.height, 1]);
    let sum = 0;
    for (let i = 0; i < a.rgb.length; i += 97) sum += Math.abs(a.rgb[i] - b.rgb[i]);
    assert.ok(sum / (a.rgb.length / 97) < 4, `mean level difference ${(sum / (a.rgb.length / 97)).toFixed(2)}`);
  });

  it("outputExif keeps the camera's entries, sets Orientation 1, drops the thumbnail and fits a JPEG segment; without a source it makes one", () => {
    const jpg = readFileSync(SELFIE);
    // the APP1 segment's payload, as sharp's metadata() gives it
    const at = jpg.indexOf('Exif\0\0');
    const src = jpg.subarray(at, at - 2 + jpg.readUInt16BE(at - 2));
    const exif = outputExif(src, { description: 'gpen-lab: test', width: 3024, height: 4032 });
    assert.equal(exifOrientation(exif), 1);
    assert.ok(exif.length < 65527);
    assert.match(exif.toString('latin1'), /Apple[^]*gpen-lab: test/);
    // IFD0's link to IFD1 (the thumbnail) is 0
    const le = exif.toString('latin1', 0, 2) === 'II';
    const ifd0 = le ? exif.readUInt32LE(4) : exif.readUInt32BE(4);
    const n = le ? exif.readUInt16LE(ifd0) : exif.readUInt16BE(ifd0);
    assert.equal(le ? exif.readUInt32LE(ifd0 + 2 + 12 * n) : exif.readUInt32BE(ifd0 + 2 + 12 * n), 0);
    const fresh = outputExif(null, { description: 'gpen-lab: x' });
    assert.equal(exifOrientation(fresh), 1);
    assert.match(fresh.toString('latin1'), /gpen-lab: x\0/);
  });
});

describe("restore outputs: the library's choices", () => {
  it("the service's restoreDecoded still gives the result and the comparison (and the faces with saveFace), or what outputs asks", async () => {
    const r = await Restorer.create({
      model: { type: 'identity', size: 256 },
      outDir: path.join(tmp, 'decoded'),
      write: false,
    });
    try {
      const img = await decodeImage(FACE);
      const infer = (x: Float32Array, n: number) => r.inferCrops(x, n);
      const a = await r.restoreDecoded(img, 'x', { ext: '.png', saveFace: true }, infer);
      assert.deepEqual(
        a.images.map(([f]) => path.basename(f)),
        ['x_GPEN.png', 'x_COMP.png', 'x_face00.png'],
      );
      const b = await r.restoreDecoded(img, 'x', { ext: '.jpg' }, infer);
      assert.deepEqual(
        b.images.map(([f]) => path.basename(f)),
        ['x_GPEN.jpg', 'x_COMP.jpg'],
      );
      const c = await r.restoreDecoded(img, 'x', { outputs: ['gpen'] }, infer);
      assert.deepEqual(
        c.images.map(([f]) => path.basename(f)),
        ['x_GPEN.png'],
      );
    } finally {
      await r.release();
    }
    await assert.rejects(
      Restorer.create({ model: { type: 'identity', size: 64 }, outDir: tmp, outputs: [] }),
      (e: unknown) => e instanceof GpenLabError && e.details.option === 'outputs' && /for outputs/.test(e.message),
    );
  });

  it('PNGs compressed in stripes on the face workers carry the same sRGB profile and EXIF, for the outputs asked for', async () => {
    const out = path.join(tmp, 'striped');
    const r = await Restorer.create({
      model: { type: 'identity', size: 256 },
      outDir: out,
      faceThreads: 4,
      outputs: ['gpen', 'comp'],
    });
    let res: RestoreResult;
    try {
      res = (await r.restoreFiles([path.join(REPO, 'assets', 'Solvay_conference_1927.png')]))[0];
    } finally {
      await r.release();
    }
    assert.equal(res.error, undefined, JSON.stringify(res.error));
    assert.ok(res.png_stripes && res.png_stripes.total > 0, 'striped');
    const srgb = (await srgbProfile()).toString('base64');
    const meta = metadataOf([res.outputs.gpen!, res.outputs.comp!]);
    assert.deepEqual(
      meta.map((m) => [m.format, m.width, m.height, m.orientation, m.icc === srgb]),
      [
        ['png', 1328, 568, 1, true],
        ['png', 2656, 568, 1, true],
      ],
    );
    for (const m of meta)
      assert.match(Buffer.from(m.exif!, 'base64').toString('latin1'), /gpen-lab: restored with identity/);
  });

  it("an output already there under the new name is E_OUTPUT_EXISTS before any work; other formats' names are not in the way", async () => {
    const dir = mkdtempSync(path.join(tmp, 'exists-'));
    const face = await decodeImage(FACE);
    const jpg = path.join(dir, 'p.jpg');
    writeFileSync(jpg, await encodeImage({ ...face, alpha: null }, '.jpg'));
    const out = path.join(dir, 'out');
    mkdirSync(out);
    writeFileSync(path.join(out, 'p_GPEN.jpg'), "the user's own file");
    writeFileSync(path.join(out, 'p_GPEN.png'), 'another');
    const restore = async (opts: { ext?: '.png' }, outDir: string) => {
      const r = await Restorer.create({ model: { type: 'identity', size: 256 }, outDir, ...opts });
      try {
        return (await r.restoreFiles([jpg]))[0];
      } finally {
        await r.release();
      }
    };
    const refused = await restore({}, out);
    assert.equal(refused.error?.code, 'E_OUTPUT_EXISTS');
    assert.match(refused.error!.message, /p_GPEN\.jpg/);
    assert.equal(refused.stages_ms.decode, 0, 'refused before decoding');
    assert.equal(readFileSync(path.join(out, 'p_GPEN.jpg'), 'utf8'), "the user's own file");
    const png = await restore({ ext: '.png' }, out);
    assert.equal(png.error?.code, 'E_OUTPUT_EXISTS', '--ext .png: its PNG name is there too');
    const out2 = path.join(dir, 'out2');
    mkdirSync(out2);
    writeFileSync(path.join(out2, 'p_GPEN.png'), 'a PNG of the same name');
    writeFileSync(path.join(out2, 'p_COMP.jpg'), 'a comparison not asked for');
    const ok = await restore({}, out2);
    assert.equal(ok.error, undefined, JSON.stringify(ok.error));
    assert.deepEqual(readdirSync(out2).sort(), ['p_COMP.jpg', 'p_GPEN.jpg', 'p_GPEN.png']);
    assert.equal(readFileSync(path.join(out2, 'p_GPEN.png'), 'utf8'), 'a PNG of the same name');
  });
});

describe('restore CLI: --outputs, --ext, --save-face, --aligned', () => {
  it('--outputs chooses the files (default gpen; comp and faces opt-in), --ext overrides the format; a bad list is refused before any work', () => {
    const run = (name: string, extra: string[]) => {
      const out = path.join(tmp, name);
      const r = cli(['restore', FACE, '-o', out, '--synthetic', '64', '--provider', 'cpu', '--json', ...extra]);
      return { r, out, files: existsSync(out) ? readdirSync(out).sort() : [] };
    };
    const d = run('outputs-default', []);
    assert.equal(d.r.status, 0, d.r.stderr);
    assert.deepEqual(d.files, ['demo-face_GPEN.png']);
    const all = run('outputs-all', ['--outputs', 'gpen,comp,faces', '--ext', '.jpg']);
    assert.equal(all.r.status, 0, all.r.stderr);
    assert.deepEqual(all.files, ['demo-face_COMP.jpg', 'demo-face_GPEN.jpg', 'demo-face_face00.jpg']);
    const [res] = jsonLines(all.r.stdout);
    assert.deepEqual(
      [
        path.basename(res.outputs.gpen!),
        path.basename(res.outputs.comp!),
        res.outputs.faces.map((f) => path.basename(f)),
      ],
      ['demo-face_GPEN.jpg', 'demo-face_COMP.jpg', ['demo-face_face00.jpg']],
    );
    const meta = metadataOf(all.files.map((f) => path.join(all.out, f)));
    for (const m of meta) assert.deepEqual([m.format, m.orientation, m.hasProfile], ['jpeg', 1, true]);
    assert.equal(meta[0].width, 2 * meta[1].width, 'the comparison is input and result side by side');
    const faces = run('outputs-faces', ['--outputs', 'faces']);
    assert.equal(faces.r.status, 0, faces.r.stderr);
    assert.deepEqual(faces.files, ['demo-face_face00.png']);
    assert.equal(jsonLines(faces.r.stdout)[0].outputs.gpen, null);
    const bad = run('outputs-bad', ['--outputs', 'gpen,thumbnail']);
    assert.equal(bad.r.status, 2, bad.r.stderr);
    const err = jsonLines(bad.r.stdout)[0].error!;
    assert.equal(err.code, 'E_ARGUMENT');
    assert.match(err.message, /gpen, comp, faces for --outputs .*thumbnail/);
    assert.equal(existsSync(bad.out), false, 'nothing written');
  });

  it('--save-face is refused with a coded error that names --outputs faces', () => {
    const out = path.join(tmp, 'save-face');
    const r = cli(['restore', FACE, '-o', out, '--synthetic', '64', '--save-face', '--json']);
    assert.equal(r.status, 2, r.stderr);
    const err = jsonLines(r.stdout)[0].error!;
    assert.equal(err.code, 'E_ARGUMENT');
    assert.match(err.message, /--save-face/);
    assert.match(err.fix, /--outputs gpen,faces/);
    assert.match(r.stderr, /error \[E_ARGUMENT\].*--save-face[^]*fix: .*--outputs gpen,faces/);
    assert.equal(existsSync(out), false);
  });

  it('--aligned refuses a non-square input (E_ARGUMENT naming it, its size and the fix) and says "1 aligned face" for a square one', async () => {
    const dir = mkdtempSync(path.join(tmp, 'aligned-'));
    const wide = path.join(dir, 'wide.png');
    writeFileSync(wide, await encodeImage({ width: 120, height: 90, rgb: pattern(120, 90), alpha: null }, '.png'));
    const square = path.join(dir, 'square.png');
    copyFileSync(path.join(IMAGES, '00009.png'), square);
    const out = path.join(dir, 'out');
    const r = cli(['restore', wide, square, '-o', out, '--synthetic', '64', '--provider', 'cpu', '--aligned']);
    assert.equal(r.status, 2, r.stderr);
    assert.match(
      r.stdout,
      /wide\.png: error \[E_ARGUMENT\] --aligned takes square face crops, but .*wide\.png is 120x90/,
    );
    assert.match(r.stdout, /fix: Leave out --aligned/);
    assert.match(r.stdout, /square\.png: 1 aligned face -> .*square_GPEN\.png/);
    assert.doesNotMatch(r.stdout, /0 face/);
    assert.deepEqual(readdirSync(out), ['square_GPEN.png']);
  });
});
