import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import onnxProto from 'onnx-proto';
import { GpenLabError, type ErrorCode } from '../src/errors.js';
import { sha256File } from '../src/io/hash.js';
import { inspectOnnx, inspectOnnxBuffer } from '../src/model/onnx-file.js';

const { onnx } = onnxProto;
const FIXTURES = fileURLToPath(new URL('../../shared/fixtures/gpen/', import.meta.url));
const UPSTREAM = path.join(FIXTURES, 'gpen-tiny-64.upstream.onnx');
if (!existsSync(UPSTREAM)) throw new Error(`fixture missing: ${UPSTREAM} (the shared GPEN fixtures must be present)`);

type Dims = (number | string)[];
const FLOAT = 1;

function vi(name: string, dims: Dims, elemType = FLOAT): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** A tiny model: Identity input -> output unless nodes are given. */
function model(o: {
  inputs: onnxProto.onnx.IValueInfoProto[];
  outputs: onnxProto.onnx.IValueInfoProto[];
  nodes?: onnxProto.onnx.INodeProto[];
  initializers?: onnxProto.onnx.ITensorProto[];
  metadata?: Record<string, string>;
  producer?: string;
}): Uint8Array {
  return onnx.ModelProto.encode({
    irVersion: 8,
    producerName: o.producer ?? 'test',
    opsetImport: [{ domain: '', version: 17 }],
    metadataProps: Object.entries(o.metadata ?? {}).map(([key, value]) => ({ key, value })),
    graph: {
      name: 'g',
      node: o.nodes ?? [{ opType: 'Identity', input: ['input'], output: ['output'] }],
      initializer: o.initializers ?? [],
      input: o.inputs,
      output: o.outputs,
    },
  }).finish();
}

const floats = (name: string, dims: number[]): onnxProto.onnx.ITensorProto => {
  const data = new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(0.5);
  return { name, dims, dataType: FLOAT, rawData: new Uint8Array(data.buffer) };
};

const gpenLike = (s: number | string, t: number | string = s) =>
  model({ inputs: [vi('input', [1, 3, s, t])], outputs: [vi('output', [1, 3, s, t])] });

function rejects(fn: () => unknown, code: ErrorCode, file: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof GpenLabError, `expected GpenLabError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.ok(e.message.includes(file), `message names the file: ${e.message}`);
    assert.ok(e.fix.length > 0);
    return true;
  });
}

async function rejectsAsync(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof GpenLabError && e.code === code);
}

async function withTemp(name: string, data: Uint8Array, fn: (file: string) => Promise<void>): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gpen-lab-onnx-'));
  try {
    const file = path.join(dir, name);
    await fs.writeFile(file, data);
    await fn(file);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

test('upstream torch export fixture', async () => {
  const info = await inspectOnnx(UPSTREAM);
  assert.equal(info.origin, 'upstream-export');
  assert.equal(info.kind, 'gpen');
  assert.equal(info.size, 64);
  assert.equal(info.fixedBatch, 1);
  assert.equal(info.precision, 'fp32');
  assert.ok(info.params > 4_000_000, `params ${info.params}`);
  assert.equal(info.producer, 'pytorch');
  assert.equal(info.inputName, 'input');
  assert.deepEqual(info.inputDims, [1, 3, 64, 64]);
  assert.ok(
    info.outputDims.every((d) => typeof d === 'string'),
    'torch leaves the output dims symbolic',
  );
  assert.equal(info.synthetic, false);
  assert.equal(info.channelMultiplier, null);
  assert.ok(info.opset >= 11 && info.irVersion >= 6);
});

test('sha256File matches the fixture manifest', async () => {
  const manifest = JSON.parse(await fs.readFile(path.join(FIXTURES, 'gpen-tiny-64.json'), 'utf8')) as {
    sha256: Record<string, string>;
  };
  assert.equal(await sha256File(UPSTREAM), manifest.sha256['gpen-tiny-64.upstream.onnx']);
  await rejectsAsync(sha256File(path.join(FIXTURES, 'nope.onnx')), 'E_FILE_MISSING');
});

test('published-style file (old exporter: weights listed among the inputs too)', () => {
  const buf = model({
    producer: 'pytorch',
    inputs: [vi('input', [1, 3, 512, 512]), vi('w', [1])],
    outputs: [vi('output', [1, 3, 512, 512])],
    nodes: [{ opType: 'Mul', input: ['input', 'w'], output: ['output'] }],
    initializers: [floats('w', [1])],
  });
  const info = inspectOnnxBuffer(buf, 'gpen_bfr_512.onnx');
  assert.equal(info.origin, 'published');
  assert.equal(info.kind, 'gpen');
  assert.equal(info.size, 512);
  assert.equal(info.fixedBatch, 1);
  assert.equal(info.params, 1);
  assert.equal(info.synthetic, false);
  assert.deepEqual(info.metadata, {});
});

test('gpen-lab file: metadata drives kind, precision, synthetic and the arch', () => {
  const meta = {
    'gpen-lab.kind': 'gpen',
    'gpen-lab.size': '256',
    'gpen-lab.channel_multiplier': '1',
    'gpen-lab.narrow': '0.5',
    'gpen-lab.synthetic': 'true',
    'gpen-lab.seed': '7',
    'gpen-lab.precision': 'fp16',
    'gpen-lab.params': '1',
    'gpen-lab.source': 'synthetic',
  };
  const buf = model({
    producer: 'gpen-lab',
    inputs: [vi('input', ['batch', 3, 256, 256])],
    outputs: [vi('output', ['batch', 3, 256, 256])],
    metadata: meta,
  });
  const info = inspectOnnxBuffer(buf, 'mine.onnx');
  assert.equal(info.origin, 'gpen-lab');
  assert.equal(info.kind, 'gpen');
  assert.equal(info.size, 256);
  assert.equal(info.fixedBatch, null);
  assert.equal(info.precision, 'fp16');
  assert.equal(info.synthetic, true);
  assert.equal(info.channelMultiplier, 1);
  assert.equal(info.narrow, 0.5);
  assert.equal(info.metadata['gpen-lab.seed'], '7');

  const id = inspectOnnxBuffer(
    model({
      inputs: [vi('input', ['batch', 3, 64, 64])],
      outputs: [vi('output', ['batch', 3, 64, 64])],
      metadata: { 'gpen-lab.kind': 'identity', 'gpen-lab.size': '64', 'gpen-lab.synthetic': 'false' },
    }),
    'id.onnx',
  );
  assert.deepEqual(
    [id.origin, id.kind, id.size, id.synthetic, id.params, id.narrow],
    ['gpen-lab', 'identity', 64, false, 0, null],
  );
});

test('an image-to-image net of a GPEN size with no known origin is accepted as unknown', () => {
  const info = inspectOnnxBuffer(
    model({
      inputs: [vi('x', ['n', 3, 128, 128])],
      outputs: [vi('y', ['n', 3, 128, 128])],
      nodes: [{ opType: 'Identity', input: ['x'], output: ['y'] }],
    }),
    'other.onnx',
  );
  assert.deepEqual(
    [info.origin, info.kind, info.size, info.inputName, info.outputName],
    ['unknown', 'gpen', 128, 'x', 'y'],
  );
});

test('truncated, random and empty files are E_ONNX_CORRUPT', async () => {
  const whole = await fs.readFile(UPSTREAM);
  await withTemp('half.onnx', whole.subarray(0, whole.length >> 1), async (f) =>
    rejectsAsync(inspectOnnx(f), 'E_ONNX_CORRUPT'),
  );
  await withTemp('empty.onnx', new Uint8Array(0), async (f) => rejectsAsync(inspectOnnx(f), 'E_ONNX_CORRUPT'));
  let x = 0x9e3779b9; // xorshift32: deterministic "random" bytes
  const noise = Uint8Array.from({ length: 65536 }, () => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), x & 0xff));
  await withTemp('noise.onnx', noise, async (f) => rejectsAsync(inspectOnnx(f), 'E_ONNX_CORRUPT'));
  // Cut at a field boundary decodes cleanly, so the byte count of raw_data must be checked.
  const short = { name: 'w', dims: [4], dataType: FLOAT, rawData: new Uint8Array(8) };
  rejects(
    () =>
      inspectOnnxBuffer(
        model({
          inputs: [vi('input', [1, 3, 64, 64])],
          outputs: [vi('output', [1, 3, 64, 64])],
          initializers: [short],
        }),
        'cut.onnx',
      ),
    'E_ONNX_CORRUPT',
    'cut.onnx',
  );
  rejects(
    () => inspectOnnxBuffer(onnx.ModelProto.encode({ irVersion: 8, producerName: 'x' }).finish(), 'nograph.onnx'),
    'E_ONNX_CORRUPT',
    'nograph.onnx',
  );
});

test('other networks are E_NOT_GPEN', () => {
  const mnist = model({
    inputs: [vi('input', [1, 1, 28, 28])],
    outputs: [vi('output', [1, 10])],
    nodes: [{ opType: 'Flatten', input: ['input'], output: ['output'] }],
  });
  rejects(() => inspectOnnxBuffer(mnist, 'mnist.onnx'), 'E_NOT_GPEN', 'mnist.onnx');
  const upscaler = model({ inputs: [vi('input', [1, 3, 64, 64])], outputs: [vi('output', [1, 3, 256, 256])] });
  rejects(() => inspectOnnxBuffer(upscaler, 'x4.onnx'), 'E_NOT_GPEN', 'x4.onnx');
  const twoInputs = model({
    inputs: [vi('input', [1, 3, 64, 64]), vi('mask', [1, 1, 64, 64])],
    outputs: [vi('output', [1, 3, 64, 64])],
  });
  rejects(() => inspectOnnxBuffer(twoInputs, 'inpaint.onnx'), 'E_NOT_GPEN', 'inpaint.onnx');
});

test('GPEN-like files of sizes GPEN does not define are E_SIZE_UNKNOWN', () => {
  for (const [s, t] of [
    [96, 96],
    [4096, 4096],
    [256, 512],
    ['h', 'w'],
  ] as const) {
    rejects(() => inspectOnnxBuffer(gpenLike(s, t), `gpen_${s}.onnx`), 'E_SIZE_UNKNOWN', `gpen_${s}.onnx`);
  }
});

test('a missing file is E_FILE_MISSING', async () => {
  await rejectsAsync(inspectOnnx(path.join(os.tmpdir(), 'gpen-lab-does-not-exist.onnx')), 'E_FILE_MISSING');
});
