// One test per bad input, end to end through the real API (convertPth, describeModel, synthesizeGpen) and the CLI:
// each must fail with its GpenLabError code, a message naming the input, a fix, and no output file left behind.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { psnrFloat } from '../src/metrics/quality.js';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GpenLabError, isGpenLabError, type ErrorCode } from '../src/errors.js';
import { decodeNpy, encodeNpy, readNpy } from '../src/io/npy.js';
import { expectedShapes } from '../src/model/arch.js';
import { readPth } from '../src/model/pth.js';
import { convertPth, describeModel, synthesizeGpen } from '../src/model/registry.js';
import { rng } from '../src/model/synth.js';
import { float32ToHalfArray, numel, type HostTensor } from '../src/io/tensor.js';
import { missingProviderFiles } from '../src/runtime/providers.js';
import { ModelSession } from '../src/runtime/session.js';
import { fixture, maxAbsDiff } from './fixtures.js';
import { saveStateDict } from './helpers/pth-writer.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const TINY = fixture('gpen-tiny-64.pth');
const IN0 = fixture('gpen-tiny-64.in0.npy');
const OUT0 = fixture('gpen-tiny-64.out0.npy');
const TOL = 1e-4;
const FP16_MIN_PSNR = 45;

const tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-model-errors-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const inputs = path.join(tmp, 'in');
mkdirSync(inputs);

/** Writes an input file under tmp/in. */
function input(name: string, data: Uint8Array): string {
  const f = path.join(inputs, name);
  writeFileSync(f, data);
  return f;
}

let outSerial = 0;
/** A fresh, empty output folder for one case. */
function outDir(): string {
  const d = path.join(tmp, `out-${outSerial++}`);
  mkdirSync(d);
  return d;
}

/** Asserts the promise rejects with a GpenLabError of `code` whose message names `file`, with a fix, and that `dir` stayed empty. */
async function failsWith(
  p: Promise<unknown>,
  code: ErrorCode,
  file: string,
  dir: string | null,
  ...mentions: string[]
): Promise<GpenLabError> {
  let caught: unknown;
  await p.then(
    () => assert.fail(`expected ${code}, but it succeeded`),
    (e: unknown) => {
      caught = e;
    },
  );
  return checkError(caught, code, file, dir, ...mentions);
}

function checkError(
  caught: unknown,
  code: ErrorCode,
  file: string,
  dir: string | null,
  ...mentions: string[]
): GpenLabError {
  assert.ok(isGpenLabError(caught), `expected a GpenLabError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.ok(caught.message.includes(file), `the message does not name ${file}: ${caught.message}`);
  assert.ok(caught.fix.trim().length > 0, 'the fix is empty');
  for (const m of mentions) assert.ok(caught.message.includes(m), `"${m}" not in: ${caught.message}`);
  if (dir !== null) assert.deepEqual(readdirSync(dir), [], `${dir} must hold no file after a failure`);
  return caught;
}

/** Bytes of each zip entry of a stored archive: where its local header and its data start, from the central directory. */
function zipLayout(buf: Buffer): Map<string, { header: number; data: number; size: number }> {
  const eocd = buf.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  assert.ok(eocd >= 0, 'no end of central directory');
  const count = buf.readUInt16LE(eocd + 10);
  const out = new Map<string, { header: number; data: number; size: number }>();
  for (let i = 0, p = buf.readUInt32LE(eocd + 16); i < count; i++) {
    assert.equal(buf.readUInt32LE(p), 0x02014b50);
    const nameLen = buf.readUInt16LE(p + 28);
    const name = buf.toString('utf8', p + 46, p + 46 + nameLen);
    const header = buf.readUInt32LE(p + 42);
    const data = header + 30 + buf.readUInt16LE(header + 26) + buf.readUInt16LE(header + 28);
    out.set(name, { header, data, size: buf.readUInt32LE(p + 20) });
    p += 46 + nameLen + buf.readUInt16LE(p + 30) + buf.readUInt16LE(p + 32);
  }
  return out;
}

const psnr = (a: Float32Array, b: Float32Array): number => psnrFloat(a, b, 2);

/** Runs an .onnx on in0 with ONNX Runtime on the CPU. */
async function runOnIn0(model: string): Promise<{ out: Float32Array; ref: Float32Array }> {
  const x = await readNpy(IN0);
  const s = await ModelSession.create(model, { provider: 'cpu', label: model });
  try {
    const r = await s.run(x.data as Float32Array, x.dims);
    assert.deepEqual(s.placement?.ran, ['cpu']);
    return { out: r.data, ref: (await readNpy(OUT0)).data as Float32Array };
  } finally {
    await s.release();
  }
}

let tiny: Map<string, HostTensor>;
before(async () => {
  tiny = (await readPth(TINY)).tensors;
});

describe('convertPth and describeModel refuse damaged files', () => {
  const whole = readFileSync(TINY);

  it('truncated .pth (first half of gpen-tiny-64.pth) -> E_PTH_CORRUPT', async () => {
    const f = input('truncated.pth', whole.subarray(0, whole.length >> 1));
    const dir = outDir();
    await failsWith(
      convertPth(f, path.join(dir, 'out.onnx'), { precision: 'fp32' }),
      'E_PTH_CORRUPT',
      f,
      dir,
      'partly downloaded',
    );
    await failsWith(describeModel(f), 'E_PTH_CORRUPT', f, null);
  });

  it('garbage in data.pkl -> E_PTH_CORRUPT', async () => {
    const bytes = Buffer.from(whole);
    const pkl = [...zipLayout(bytes)].find(([n]) => n.endsWith('/data.pkl'))![1];
    assert.deepEqual([...bytes.subarray(pkl.data, pkl.data + 2)], [0x80, 2]); // PROTO 2: the pickle starts here
    bytes.fill(0xff, pkl.data + 2, pkl.data + 34); // 0xff is no pickle opcode
    const f = input('garbage-pkl.pth', bytes);
    const dir = outDir();
    await failsWith(convertPth(f, path.join(dir, 'out.onnx'), { precision: 'fp32' }), 'E_PTH_CORRUPT', f, dir);
  });

  it("garbage over a storage's local zip header -> E_PTH_CORRUPT", async () => {
    const bytes = Buffer.from(whole);
    const entry = [...zipLayout(bytes)].find(([n]) => n.endsWith('/data/5'))![1];
    bytes.fill(0x5a, entry.header, entry.header + 12); // signature, version, flags, method
    const f = input('garbage-header.pth', bytes);
    const dir = outDir();
    await failsWith(convertPth(f, path.join(dir, 'out.onnx'), { precision: 'fp32' }), 'E_PTH_CORRUPT', f, dir);
  });

  it('truncated and random-bytes .onnx given to describeModel -> E_ONNX_CORRUPT', async () => {
    const onnx = readFileSync(fixture('gpen-tiny-64.upstream.onnx'));
    const truncated = input('truncated.onnx', onnx.subarray(0, onnx.length >> 1));
    await failsWith(describeModel(truncated), 'E_ONNX_CORRUPT', truncated, null);
    for (let seed = 1; seed <= 8; seed++) {
      const next = rng(seed);
      const bytes = Buffer.alloc(4096);
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(next() * 256);
      bytes[0] = 0x0a + seed; // neither 'PK' nor a pickle's 0x80, which would make it a .pth
      const f = input(`random-${seed}.onnx`, bytes);
      await failsWith(describeModel(f), 'E_ONNX_CORRUPT', f, null);
    }
  });

  it('convertPth on an .onnx -> E_FORMAT_UNKNOWN saying no conversion is needed', async () => {
    const f = fixture('gpen-tiny-64.upstream.onnx');
    const dir = outDir();
    await failsWith(
      convertPth(f, path.join(dir, 'out.onnx'), { precision: 'fp32' }),
      'E_FORMAT_UNKNOWN',
      f,
      dir,
      'looks like an ONNX file',
    );
  });
});

describe('convertPth refuses checkpoints that are not the GPEN it expects', () => {
  it('a ResNet-like state dict -> E_NOT_GPEN', async () => {
    const next = rng(1);
    const t = (...dims: number[]): HostTensor => ({
      dtype: 'float32',
      dims,
      data: new Float32Array(numel(dims)).map(() => next() - 0.5),
    });
    const resnet = new Map<string, HostTensor>([
      ['conv1.weight', t(64, 3, 7, 7)],
      ['bn1.weight', t(64)],
      ['bn1.bias', t(64)],
      ['bn1.running_mean', t(64)],
      ['bn1.running_var', t(64)],
      ['layer1.0.conv1.weight', t(64, 64, 3, 3)],
      ['fc.weight', t(1000, 512)],
      ['fc.bias', t(1000)],
    ]);
    const f = input('resnet.pth', saveStateDict(resnet));
    const dir = outDir();
    await failsWith(
      convertPth(f, path.join(dir, 'out.onnx'), { precision: 'fp32' }),
      'E_NOT_GPEN',
      f,
      dir,
      'conv1.weight',
    );
  });

  it("nested under 'g_ema', asked for 'netG' -> E_KEY_NOT_FOUND naming g_ema; with no key it converts and matches out0", async () => {
    const f = input('nested.pth', saveStateDict(tiny, { nestUnder: 'g_ema' }));
    const dir = outDir();
    const out = path.join(dir, 'out.onnx');
    const e = await failsWith(
      convertPth(f, out, { precision: 'fp32', key: 'netG' }),
      'E_KEY_NOT_FOUND',
      f,
      dir,
      '"netG"',
      'g_ema',
    );
    assert.deepEqual(e.details.keys, ['g_ema', 'epoch']);

    const info = await convertPth(f, out, { precision: 'fp32' });
    assert.deepEqual(readdirSync(dir), ['out.onnx'], 'only the output, no temp file');
    assert.equal(info.size, 64);
    assert.equal((await describeModel(f)).pth?.key, 'g_ema');
    const { out: y, ref } = await runOnIn0(out);
    const err = maxAbsDiff(y, ref);
    assert.ok(err <= TOL, `max abs error ${err} > ${TOL}`);
  });

  it('one weight of the wrong shape -> E_SHAPE_MISMATCH naming the tensor and both shapes', async () => {
    const name = 'generator.convs.3.conv.weight';
    assert.deepEqual(tiny.get(name)!.dims, [1, 64, 128, 3, 3]);
    const edited = new Map(tiny);
    edited.set(name, { dtype: 'float32', dims: [1, 60, 128, 3, 3], data: new Float32Array(60 * 128 * 9) });
    const f = input('wrong-shape.pth', saveStateDict(edited));
    const dir = outDir();
    await failsWith(
      convertPth(f, path.join(dir, 'out.onnx'), { precision: 'fp32' }),
      'E_SHAPE_MISMATCH',
      f,
      dir,
      name,
      '[1, 60, 128, 3, 3]',
      '[1, 64, 128, 3, 3]',
    );
  });

  it('a missing tensor -> E_SHAPE_MISMATCH naming it', async () => {
    const name = 'generator.to_rgbs.1.bias';
    const edited = new Map(tiny);
    assert.ok(edited.delete(name));
    const f = input('missing-tensor.pth', saveStateDict(edited));
    const dir = outDir();
    await failsWith(
      convertPth(f, path.join(dir, 'out.onnx'), { precision: 'fp32' }),
      'E_SHAPE_MISMATCH',
      f,
      dir,
      name,
      'missing',
    );
  });

  it('a GPEN-shaped state dict of size 8 -> E_SIZE_UNKNOWN', async () => {
    const shapes = expectedShapes({
      size: 8,
      styleDim: 512,
      nMlp: 8,
      channelMultiplier: 2,
      narrow: 0.125,
      isConcat: true,
      lrMlp: 0.01,
    });
    const sd = new Map(
      [...shapes].map(([n, dims]): [string, HostTensor] => [
        n,
        { dtype: 'float32', dims, data: new Float32Array(numel(dims)) },
      ]),
    );
    const f = input('size-8.pth', saveStateDict(sd));
    const dir = outDir();
    await failsWith(
      convertPth(f, path.join(dir, 'out.onnx'), { precision: 'fp32' }),
      'E_SIZE_UNKNOWN',
      f,
      dir,
      'for 8 px',
    );
    await failsWith(describeModel(f), 'E_SIZE_UNKNOWN', f, null);
  });

  it('an fp16 checkpoint converts; describeModel says fp16; output within 45 dB PSNR of out0', async () => {
    const half = new Map(
      [...tiny].map(([n, t]): [string, HostTensor] => [
        n,
        { dtype: 'float16', dims: t.dims, data: float32ToHalfArray(t.data as Float32Array) },
      ]),
    );
    const f = input('fp16.pth', saveStateDict(half));
    const m = await describeModel(f);
    assert.equal(m.precision, 'fp16');
    assert.deepEqual(m.pth?.dtypes, ['float16']);
    const dir = outDir();
    const out = path.join(dir, 'out.onnx');
    await convertPth(f, out, { precision: 'fp32' });
    assert.deepEqual(readdirSync(dir), ['out.onnx']);
    const { out: y, ref } = await runOnIn0(out);
    const db = psnr(y, ref);
    assert.ok(db >= FP16_MIN_PSNR, `PSNR ${db.toFixed(1)} dB < ${FP16_MIN_PSNR} dB (max abs ${maxAbsDiff(y, ref)})`);
  });
});

describe('synthesizeGpen refuses bad arguments', () => {
  it('size 100 -> E_SIZE_UNKNOWN; seed -1 -> E_ARGUMENT, each naming its option by key', () => {
    const call = (size: number, seed: number): unknown => {
      try {
        synthesizeGpen(size, seed, 'fp32');
      } catch (e) {
        return e;
      }
      return assert.fail(`synthesizeGpen(${size}, ${seed}) succeeded`);
    };
    assert.equal(checkError(call(100, 0), 'E_SIZE_UNKNOWN', 'size', null, '100').details.option, 'size');
    assert.equal(checkError(call(64, -1), 'E_ARGUMENT', 'seed', null, '-1').details.option, 'seed');
    checkError(call(64, 1.5), 'E_ARGUMENT', 'seed', null);
  });
});

// ---- the command line ----

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(...args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'src/cli/index.ts', ...args],
      { cwd: REPO, env: { ...process.env, NO_COLOR: '1' }, maxBuffer: 16 << 20, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const STACK = /^\s+at /m;

/** Exit status, `error [CODE]` naming `mention` (the input, or what is missing), and a `fix:` line on stderr. */
function cliError(r: CliResult, exit: number, code: ErrorCode, mention: string): void {
  assert.equal(r.code, exit, `exit ${r.code}\n${r.stderr}`);
  assert.ok(r.stderr.includes(`error [${code}]`), r.stderr);
  assert.match(r.stderr, /^ {2}fix: \S/m);
  assert.ok(r.stderr.includes(mention), `stderr does not name ${mention}: ${r.stderr}`);
}

describe('the CLI reports errors with a code, a fix and an exit status', () => {
  let truncated = '';
  before(() => {
    const whole = readFileSync(TINY);
    truncated = input('cli-truncated.pth', whole.subarray(0, whole.length >> 1));
  });

  it('model convert TRUNCATED.pth: exit 2, E_PTH_CORRUPT, a fix, no stack, no output', async () => {
    const dir = outDir();
    const out = path.join(dir, 'out.onnx');
    const r = await cli('model', 'convert', truncated, '-o', out);
    cliError(r, 2, 'E_PTH_CORRUPT', truncated);
    assert.doesNotMatch(r.stderr, STACK);
    assert.equal(existsSync(out), false);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('with --debug it prints the stack', async () => {
    const dir = outDir();
    const r = await cli('model', 'convert', truncated, '-o', path.join(dir, 'out.onnx'), '--debug');
    cliError(r, 2, 'E_PTH_CORRUPT', truncated);
    assert.match(r.stderr, /^GpenLabError: /m);
    assert.match(r.stderr, /^\s+at .*pth\.ts:\d+/m);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('with --json it prints {"error": {code, message, fix}} on stdout', async () => {
    const dir = outDir();
    const r = await cli('model', 'convert', truncated, '-o', path.join(dir, 'out.onnx'), '--json');
    assert.equal(r.code, 2);
    const body = JSON.parse(r.stdout) as {
      error: { code: string; message: string; fix: string; details: { input?: string } };
    };
    assert.equal(body.error.code, 'E_PTH_CORRUPT');
    assert.ok(body.error.message.includes(truncated));
    assert.ok(body.error.fix.length > 0);
    assert.equal(body.error.details.input, truncated);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('model info missing.pth: exit 2, E_FILE_MISSING', async () => {
    const missing = path.join(tmp, 'missing.pth');
    const r = await cli('model', 'info', missing);
    cliError(r, 2, 'E_FILE_MISSING', missing);
    assert.doesNotMatch(r.stderr, STACK);
  });

  it('model synth --size 100: exit 2, E_SIZE_UNKNOWN, no output', async () => {
    const dir = outDir();
    const r = await cli('model', 'synth', '--size', '100', '-o', path.join(dir, 'x.onnx'));
    cliError(r, 2, 'E_SIZE_UNKNOWN', '--size');
    assert.deepEqual(readdirSync(dir), []);
  });

  it('model run with an .npy of the wrong shape: exit 2, E_NPY_INVALID, no output', async () => {
    const x = decodeNpy(readFileSync(IN0));
    const wrong = input('wrong-shape.npy', encodeNpy({ dtype: 'float32', dims: [1, 3, 32, 128], data: x.data }));
    const dir = outDir();
    const r = await cli('model', 'run', TINY, '--input', wrong, '--output', path.join(dir, 'y.npy'));
    cliError(r, 2, 'E_NPY_INVALID', wrong);
    assert.ok(r.stderr.includes('[1, 3, 32, 128]'), r.stderr);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('model run --provider cuda without the CUDA provider: exit 3, E_PROVIDER_UNAVAILABLE naming the missing files', async () => {
    const dir = outDir();
    const r = await cli(
      'model',
      'run',
      TINY,
      '--input',
      IN0,
      '--output',
      path.join(dir, 'y.npy'),
      '--provider',
      'cuda',
    );
    assert.equal(r.code, 3, r.stderr);
    const missing = missingProviderFiles('cuda');
    if (missing.length > 0) {
      // This machine (no GPU, the provider libraries not installed): the error says which files are absent.
      assert.ok(missing.includes('libonnxruntime_providers_shared.so'));
      cliError(r, 3, 'E_PROVIDER_UNAVAILABLE', 'libonnxruntime_providers_shared.so');
      for (const m of missing) assert.ok(r.stderr.includes(m), `stderr does not name ${m}: ${r.stderr}`);
    } else {
      // Provider libraries installed but no usable GPU: still a runtime failure, exit 3.
      assert.match(r.stderr, /error \[(E_PROVIDER_UNAVAILABLE|E_SESSION)\]/);
    }
    assert.doesNotMatch(r.stderr, STACK);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('model run --provider nope: a non-zero exit naming the choices, no output', async () => {
    const dir = outDir();
    const r = await cli(
      'model',
      'run',
      TINY,
      '--input',
      IN0,
      '--output',
      path.join(dir, 'y.npy'),
      '--provider',
      'nope',
    );
    assert.notEqual(r.code, 0);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /nope/);
    assert.match(r.stderr, /cpu, cuda, tensorrt, webgpu/);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('model run of gpen-tiny-64.pth on in0 writes out0 (max abs <= 1e-4); --json says asked auto, chose and ran cpu in fp32', async () => {
    const dir = outDir();
    const y = path.join(dir, 'y.npy');
    const r = await cli('model', 'run', TINY, '--input', IN0, '--output', y, '--json');
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout) as {
      provider: { asked: string; chosen: string; ran: string[]; mismatch: boolean };
      route: { precision: string };
      output: { dims: number[] };
      model: { size: number };
    };
    assert.equal(res.provider.asked, 'auto');
    assert.equal(res.provider.chosen, missingProviderFiles('cuda').length > 0 ? 'cpu' : res.provider.chosen);
    assert.equal(res.route.precision, res.provider.chosen === 'cpu' ? 'fp32' : 'fp16');
    assert.deepEqual(res.provider.ran, ['cpu']);
    assert.equal(res.provider.mismatch, false);
    assert.deepEqual(res.output.dims, [1, 3, 64, 64]);
    assert.deepEqual(readdirSync(dir), ['y.npy']);
    const err = maxAbsDiff((await readNpy(y)).data as Float32Array, (await readNpy(OUT0)).data as Float32Array);
    assert.ok(err <= TOL, `max abs error ${err} > ${TOL}`);
  });
});

describe('an ONNX file runs in its own precision', () => {
  it('an fp16 file without a precision asked runs as fp16; asked for fp32 -> E_ARGUMENT naming the file and the fix', async () => {
    const { prepareModel } = await import('../src/model/registry.js');
    const built = await prepareModel({ type: 'synthetic', size: 64, seed: 2 }, 'fp16');
    const file = path.join(tmp, 'synthetic-64-fp16.onnx');
    writeFileSync(file, built.model as Uint8Array);
    const p = await prepareModel({ type: 'file', file });
    assert.equal(p.info.precision, 'fp16');
    assert.equal(p.model, file);
    assert.equal((await prepareModel({ type: 'file', file }, 'fp16')).info.precision, 'fp16');
    await assert.rejects(
      prepareModel({ type: 'file', file }, 'fp32'),
      (e: unknown) =>
        isGpenLabError(e) &&
        e.code === 'E_ARGUMENT' &&
        e.message.includes(file) &&
        /fp16 ONNX graph but fp32/.test(e.message) &&
        /Drop --fp16/.test(e.fix),
    );
  });
});
