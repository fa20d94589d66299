// readPth against the official-format fixtures, and against checkpoints crafted byte by byte here:
// nested keys, fp16/bf16/fp64, strided views, damaged files and pickles that ask for code.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { isGpenLabError, type ErrorCode } from '../src/errors.js';
import { countParams, defaultArch, expectedShapes } from '../src/model/arch.js';
import { readPth, type Checkpoint } from '../src/model/pth.js';
import { unpickle } from '../src/model/pickle.js';
import { float32ToHalfArray, numel, type HostTensor } from '../src/io/tensor.js';
import { Pickle, crc32, f32, legacyFile, saveStateDict, zipFile, type Spec } from './helpers/pth-writer.js';

const FIXTURES = fileURLToPath(new URL('../../shared/fixtures/gpen/', import.meta.url));
if (!existsSync(path.join(FIXTURES, 'gpen-tiny-64.pth'))) {
  throw new Error(
    `GPEN fixtures are missing: expected gpen-tiny-64.pth etc. in ${FIXTURES} (the shared/ checkout beside the repo)`,
  );
}
const fixture = (name: string): string => path.join(FIXTURES, name);
const fixtureParams = (name: string): number =>
  (JSON.parse(readFileSync(fixture(`${name}.json`), 'utf8')) as { params: number }).params;

let tmp = '';
let serial = 0;
async function temp(data: Uint8Array, name = 'ckpt.pth'): Promise<string> {
  const f = path.join(tmp, `${serial++}-${name}`);
  await writeFile(f, data);
  return f;
}

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, ...mentions: string[]): Promise<Error> {
  let caught: unknown;
  await p.then(
    () => assert.fail(`expected ${code}`),
    (e: unknown) => {
      caught = e;
    },
  );
  assert.ok(isGpenLabError(caught), `expected a GpenLabError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  for (const m of mentions)
    assert.ok(caught.message.includes(m) || caught.fix.includes(m), `"${m}" not in: ${caught.message} / ${caught.fix}`);
  return caught;
}

function totalElements(c: Checkpoint): number {
  let n = 0;
  for (const t of c.tensors.values()) n += t.data.length;
  return n;
}

const openFds = (): number => (existsSync('/proc/self/fd') ? readdirSync('/proc/self/fd').length : 0);

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'gpen-pth-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('readPth on the fixtures', () => {
  let tiny: Checkpoint;
  before(async () => {
    tiny = await readPth(fixture('gpen-tiny-64.pth'));
  });

  it('reads gpen-tiny-64.pth (zip): 106 float32 tensors with their shapes and values', () => {
    assert.equal(tiny.format, 'zip');
    assert.equal(tiny.key, null);
    assert.deepEqual(tiny.dtypes, ['float32']);
    assert.deepEqual(tiny.others, []);
    assert.equal(tiny.tensors.size, 106);
    const dims = (n: string): number[] | undefined => tiny.tensors.get(n)?.dims;
    assert.deepEqual(dims('generator.style.1.weight'), [512, 512]);
    assert.deepEqual(dims('ecd0.0.0.weight'), [32, 3, 1, 1]);
    assert.deepEqual(dims('generator.conv1.conv.weight'), [1, 64, 64, 3, 3]);
    for (const [name, t] of tiny.tensors) {
      assert.equal(t.dtype, 'float32');
      assert.equal(t.data.length, numel(t.dims), name);
    }
    // Bits of the first values of storage data/0, read with numpy from the raw archive entry.
    const w = tiny.tensors.get('generator.style.1.weight')!.data as Float32Array;
    assert.deepEqual([...new Uint32Array(w.buffer, w.byteOffset, 4)], [3265529571, 1109278882, 1119078430, 3272267556]);
  });

  it('counts every element: the fixture params plus the 4x4 blur kernel buffers', () => {
    const kernels = [...tiny.tensors].filter(([n]) => n.endsWith('.kernel'));
    assert.equal(kernels.length, 12);
    for (const [, k] of kernels) assert.deepEqual(k.dims, [4, 4]);
    assert.equal(totalElements(tiny), 4114776);
    assert.equal(totalElements(tiny) - 12 * 16, fixtureParams('gpen-tiny-64'));
    let abs = 0;
    for (const t of tiny.tensors.values()) for (const v of t.data) abs += Math.abs(v);
    assert.ok(Math.abs(abs - 168971188.4368344) < 1e-3, `sum |w| = ${abs}`); // numpy, float64 accumulation
  });

  it('says a bare state dict has no nested key', async () => {
    await rejectsWith(
      readPth(fixture('gpen-tiny-64.pth'), { key: 'g_ema' }),
      'E_KEY_NOT_FOUND',
      'itself a state dict of 106 tensors',
      'Leave --key out',
    );
  });

  it('reads gpen-128.pth: 125 tensors', async () => {
    const c = await readPth(fixture('gpen-128.pth'));
    assert.equal(c.tensors.size, 125);
    assert.deepEqual(c.tensors.get('generator.conv1.conv.weight')?.dims, [1, 128, 128, 3, 3]);
    assert.deepEqual(c.tensors.get('ecd0.0.0.weight')?.dims, [64, 3, 1, 1]);
    const kernels = [...c.tensors.keys()].filter((n) => n.endsWith('.kernel')).length;
    assert.equal(kernels, 15);
    assert.equal(totalElements(c), 8587405);
    assert.equal(totalElements(c) - kernels * 16, fixtureParams('gpen-128'));
  });

  it('reads the legacy (pre-1.6) file to the same names, shapes and bytes as the zip file', async () => {
    const legacy = await readPth(fixture('gpen-tiny-64.legacy.pth'));
    assert.equal(legacy.format, 'legacy');
    assert.deepEqual([...legacy.tensors.keys()], [...tiny.tensors.keys()]);
    for (const [name, t] of tiny.tensors) {
      const l = legacy.tensors.get(name)!;
      assert.deepEqual(l.dims, t.dims, name);
      assert.equal(l.dtype, t.dtype);
      assert.ok(
        Buffer.from(l.data.buffer, l.data.byteOffset, l.data.byteLength).equals(
          Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength),
        ),
        name,
      );
    }
  });
});

describe('readPth on crafted checkpoints', () => {
  const sd = (prefix: string, base: number): Spec[] => [
    { name: `${prefix}a.weight`, cls: 'FloatStorage', key: `${base}`, numel: 6, size: [2, 3] },
    { name: `${prefix}a.bias`, cls: 'FloatStorage', key: `${base + 1}`, numel: 2, size: [2] },
  ];
  const nested = (legacy: boolean): Pickle =>
    new Pickle()
      .op(0x7d)
      .str('epoch')
      .int(3)
      .setitem()
      .str('d')
      .stateDict([{ name: 'w', cls: 'FloatStorage', key: '0', numel: 1, size: [1] }], legacy)
      .setitem()
      .str('g_ema')
      .stateDict(sd('module.', 1), legacy)
      .setitem();
  const nestedZip = (): Buffer =>
    zipFile([
      ['data.pkl', nested(false).bytes()],
      ['data/0', f32(9)],
      ['data/1', f32(1, 2, 3, 4, 5, 6)],
      ['data/2', f32(-1, -2)],
      ['version', Buffer.from('3\n')],
    ]);

  it("finds the state dict under 'g_ema' and strips DataParallel's 'module.'", async () => {
    for (const [format, bytes] of [
      ['zip', nestedZip()],
      [
        'legacy',
        legacyFile(nested(true), [
          ['0', f32(9), 4],
          ['1', f32(1, 2, 3, 4, 5, 6), 4],
          ['2', f32(-1, -2), 4],
        ]),
      ],
    ] as const) {
      const c = await readPth(await temp(bytes));
      assert.equal(c.format, format);
      assert.equal(c.key, 'g_ema');
      assert.deepEqual([...c.tensors.keys()], ['a.weight', 'a.bias']);
      assert.deepEqual(c.tensors.get('a.weight'), {
        dtype: 'float32',
        dims: [2, 3],
        data: new Float32Array([1, 2, 3, 4, 5, 6]),
      });
      assert.deepEqual([...c.tensors.get('a.bias')!.data], [-1, -2]);
    }
  });

  it('takes an explicit key, and names the keys that exist when it is wrong', async () => {
    const f = await temp(nestedZip());
    const d = await readPth(f, { key: 'd' });
    assert.equal(d.key, 'd');
    assert.deepEqual([...d.tensors.get('w')!.data], [9]);
    await rejectsWith(readPth(f, { key: 'params' }), 'E_KEY_NOT_FOUND', f, '"params"', 'g_ema', 'epoch', '--key NAME');
    await rejectsWith(readPth(f, { key: 'epoch' }), 'E_KEY_NOT_FOUND', 'epoch');
  });

  it('asks for --key when no known key holds a state dict', async () => {
    const main = new Pickle().op(0x7d).str('weights').stateDict(sd('', 1), false).setitem();
    const f = await temp(
      zipFile([
        ['data.pkl', main.bytes()],
        ['data/1', f32(1, 2, 3, 4, 5, 6)],
        ['data/2', f32(7, 8)],
      ]),
    );
    await rejectsWith(readPth(f), 'E_KEY_NOT_FOUND', 'weights', 'g_ema', '--key NAME');
    assert.equal((await readPth(f, { key: 'weights' })).tensors.size, 2);
  });

  it('GPEN\'s tensors stored as int64 are named as such (E_NOT_GPEN), not "none of the GPEN tensors"', async () => {
    const specs: Spec[] = [
      { name: 'generator.conv1.conv.weight', cls: 'LongStorage', key: 'a', numel: 2, size: [2] },
      { name: 'final_linear.0.weight', cls: 'LongStorage', key: 'b', numel: 2, size: [2] },
    ];
    const f = await temp(
      zipFile([
        ['data.pkl', new Pickle().stateDict(specs, false).bytes()],
        ['data/a', Buffer.alloc(16, 1)],
        ['data/b', Buffer.alloc(16, 2)],
      ]),
      'int64.pth',
    );
    const { loadCheckpoint } = await import('../src/model/registry.js');
    await rejectsWith(loadCheckpoint(f), 'E_NOT_GPEN', 'int64, not floating point', 'generator.conv1.conv.weight');
  });

  it('keeps fp16 as half bits, widens bf16 and fp64, gathers strided views, sets integer tensors aside', async () => {
    const half = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x7e00];
    const specs: Spec[] = [
      { name: 'h', cls: 'HalfStorage', key: 'h', numel: 6, size: [3, 2] },
      { name: 'bf', cls: 'BFloat16Storage', key: 'bf', numel: 2, size: [2] },
      { name: 'f64', cls: 'DoubleStorage', key: 'f64', numel: 2, size: [2] },
      // A transposed view [3,2] of a [2,3] storage, and a slice at offset 4 of the same storage.
      { name: 't', cls: 'FloatStorage', key: 's', numel: 6, size: [3, 2], stride: [1, 3] },
      { name: 'tail', cls: 'FloatStorage', key: 's', numel: 6, size: [2], offset: 4 },
      { name: 'bn.num_batches_tracked', cls: 'LongStorage', key: 'n', numel: 1, size: [] },
    ];
    const bf = Buffer.from(new Uint16Array([0x3f80, 0xc0a0]).buffer); // 1, -5
    const f64 = Buffer.from(new Float64Array([0.5, -1e-3]).buffer);
    const storages: [string, Buffer, number][] = [
      ['h', Buffer.from(new Uint16Array(half).buffer), 2],
      ['bf', bf, 2],
      ['f64', f64, 8],
      ['s', f32(1, 2, 3, 4, 5, 6), 4],
      ['n', Buffer.alloc(8, 7), 8],
    ];
    const files = [
      await temp(legacyFile(new Pickle().stateDict(specs, true), storages)),
      await temp(
        zipFile([
          ['data.pkl', new Pickle().stateDict(specs, false).bytes()],
          ...storages.map(([k, b]) => [`data/${k}`, b, k === 's'] as [string, Buffer, boolean]),
        ]),
      ), // 's' deflated
    ];
    for (const f of files) {
      const c = await readPth(f);
      assert.deepEqual(c.dtypes, ['bfloat16', 'float16', 'float32', 'float64']);
      assert.deepEqual(c.tensors.get('h'), { dtype: 'float16', dims: [3, 2], data: new Uint16Array(half) });
      assert.deepEqual(c.tensors.get('bf'), { dtype: 'float32', dims: [2], data: new Float32Array([1, -5]) });
      assert.deepEqual(c.tensors.get('f64'), { dtype: 'float32', dims: [2], data: new Float32Array([0.5, -1e-3]) });
      assert.deepEqual([...c.tensors.get('t')!.data], [1, 4, 2, 5, 3, 6]);
      const tail = c.tensors.get('tail')!;
      assert.deepEqual([...tail.data], [5, 6]);
      tail.data[0] = 0; // views over one storage are copies: no aliasing
      assert.deepEqual([...c.tensors.get('t')!.data], [1, 4, 2, 5, 3, 6]);
      assert.equal(c.tensors.has('bn.num_batches_tracked'), false);
      assert.deepEqual(c.others, [{ name: 'bn.num_batches_tracked', dtype: 'int64', dims: [] }]);
    }
  });
});

describe('readPth refuses unsafe and damaged files', () => {
  it('refuses a pickle that names os.system, without running it', async () => {
    const marker = path.join(tmp, 'pwned');
    const evil = new Pickle().global('os', 'system').mark().str(`touch ${marker}`).tuple().op(0x52).bytes();
    for (const f of [await temp(evil), await temp(zipFile([['data.pkl', evil]]))]) {
      await rejectsWith(
        readPth(f),
        'E_PTH_UNSAFE',
        f,
        'os.system',
        'not executed',
        'torch.save(model.state_dict(), path)',
      );
    }
    assert.equal(existsSync(marker), false);
  });

  it('refuses other globals and opcodes, and calls of allowed non-callables', () => {
    const stackGlobal = new Pickle().str('builtins').str('eval').op(0x93).bytes();
    const inst = Buffer.from('\x80\x02(ibuiltins\nlist\n.', 'latin1');
    const callStorage = new Pickle().global('torch', 'FloatStorage').op(0x29, 0x52).bytes();
    for (const [bytes, what] of [
      [stackGlobal, 'builtins.eval'],
      [inst, 'INST'],
      [callStorage, 'torch.FloatStorage'],
    ] as const) {
      assert.throws(
        () => unpickle(bytes, { file: 'x.pth' }),
        (e: unknown) =>
          isGpenLabError(e) && e.code === 'E_PTH_UNSAFE' && e.message.includes(what) && e.message.includes('x.pth'),
      );
    }
  });

  it('reads the harmless extras: _codecs.encode bytes, BUILD of OrderedDict metadata', () => {
    const p = new Pickle()
      .orderedDict()
      .str('k')
      .global('_codecs', 'encode')
      .mark()
      .str('\u00ff\u0001')
      .str('latin1')
      .tuple()
      .op(0x52)
      .setitem()
      .op(0x7d)
      .str('_metadata')
      .orderedDict()
      .setitem()
      .op(0x62)
      .bytes();
    const { value } = unpickle(p, { file: 'x' });
    assert.deepEqual(value, new Map([['k', new Uint8Array([0xff, 1])]]));
  });

  it('calls a bad opcode byte or a cut-off pickle corrupt', () => {
    for (const bytes of [Buffer.from([0x80, 2, 0xff]), new Pickle().str('abc').bytes().subarray(0, 6)]) {
      assert.throws(
        () => unpickle(bytes, { file: 'x' }),
        (e: unknown) => isGpenLabError(e) && e.code === 'E_PTH_CORRUPT',
      );
    }
  });

  it('reports the first half of gpen-tiny-64.pth as corrupt, naming the file', async () => {
    const whole = readFileSync(fixture('gpen-tiny-64.pth'));
    const f = await temp(whole.subarray(0, whole.length >> 1), 'half.pth');
    await rejectsWith(readPth(f), 'E_PTH_CORRUPT', f, 'download it again');
  });

  it('reports a legacy file cut inside its storages as corrupt', async () => {
    const whole = readFileSync(fixture('gpen-tiny-64.legacy.pth'));
    await rejectsWith(readPth(await temp(whole.subarray(0, whole.length - 1000))), 'E_PTH_CORRUPT', 'truncated');
  });

  it('reports zips without data.pkl, without a storage, or with a short storage', async () => {
    const specs: Spec[] = [{ name: 'w', cls: 'FloatStorage', key: '0', numel: 4, size: [4] }];
    const pkl = new Pickle().stateDict(specs, false).bytes();
    await rejectsWith(readPth(await temp(zipFile([['version', Buffer.from('3\n')]]))), 'E_PTH_CORRUPT', 'data.pkl');
    await rejectsWith(readPth(await temp(zipFile([['data.pkl', pkl]]))), 'E_PTH_CORRUPT', 'data/0');
    await rejectsWith(
      readPth(
        await temp(
          zipFile([
            ['data.pkl', pkl],
            ['data/0', f32(1, 2, 3)],
          ]),
        ),
      ),
      'E_PTH_CORRUPT',
      'tensor w',
    );
  });

  it('gives coded errors for empty, random and missing files, and leaks no file descriptors', async () => {
    const before = openFds();
    await rejectsWith(readPth(await temp(Buffer.alloc(0))), 'E_PTH_CORRUPT', 'empty');
    for (let i = 0; i < 8; i++) {
      const f = await temp(randomBytes(4096));
      let caught: unknown;
      await readPth(f).catch((e: unknown) => {
        caught = e;
      });
      assert.ok(
        isGpenLabError(caught) && ['E_FORMAT_UNKNOWN', 'E_PTH_CORRUPT', 'E_PTH_UNSAFE'].includes(caught.code),
        String(caught),
      );
      assert.ok(caught.message.includes(f));
    }
    await rejectsWith(readPth(await temp(Buffer.from('not a checkpoint at all'))), 'E_FORMAT_UNKNOWN');
    await rejectsWith(readPth(path.join(tmp, 'nope.pth')), 'E_FILE_MISSING');
    await rejectsWith(
      readPth(await temp(Buffer.from(readFileSync(fixture('gpen-tiny-64.pth')).subarray(0, 5000)))),
      'E_PTH_CORRUPT',
    );
    const pkl = new Pickle()
      .stateDict([{ name: 'w', cls: 'FloatStorage', key: '0', numel: 1, size: [1] }], false)
      .bytes();
    await rejectsWith(readPth(await temp(zipFile([['data.pkl', pkl]]))), 'E_PTH_CORRUPT');
    await rejectsWith(
      readPth(
        await temp(
          zipFile([
            ['data.pkl', pkl],
            ['data/0', f32(1)],
          ]),
        ),
        { key: 'x' },
      ),
      'E_KEY_NOT_FOUND',
    );
    await readPth(fixture('gpen-tiny-64.legacy.pth'));
    assert.equal(openFds(), before);
  });
});

describe('saveStateDict (test/helpers/pth-writer.ts) round-trips through readPth', () => {
  const bits = (t: HostTensor): Buffer => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const sameTensors = (got: Checkpoint, want: Map<string, HostTensor>): void => {
    assert.deepEqual([...got.tensors.keys()], [...want.keys()]);
    for (const [name, t] of want) {
      const g = got.tensors.get(name)!;
      assert.equal(g.dtype, t.dtype, name);
      assert.deepEqual(g.dims, t.dims, name);
      assert.ok(bits(g).equals(bits(t)), `${name}: bytes differ`);
    }
  };
  let tiny: Map<string, HostTensor>;
  before(async () => {
    tiny = (await readPth(fixture('gpen-tiny-64.pth'))).tensors;
  });

  it('writes the CRC-32 of the zip format', () => {
    assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
    assert.equal(crc32(Buffer.alloc(0)), 0);
  });

  for (const format of ['zip', 'legacy'] as const) {
    it(`saves the gpen-tiny-64 tensors as a ${format} checkpoint that reads back identical`, async () => {
      const f = await temp(saveStateDict(tiny, { format }), `tiny-${format}.pth`);
      const c = await readPth(f);
      assert.equal(c.format, format);
      assert.equal(c.key, null);
      assert.deepEqual(c.dtypes, ['float32']);
      assert.deepEqual(c.others, []);
      sameTensors(c, tiny);
    });

    it(`saves float16 tensors as HalfStorage, nested under a key (${format})`, async () => {
      const half = new Map(
        [...tiny].map(([n, t]): [string, HostTensor] => [
          n,
          { dtype: 'float16', dims: t.dims, data: float32ToHalfArray(t.data as Float32Array) },
        ]),
      );
      const bytes = saveStateDict(half, { format, nestUnder: 'g_ema' });
      assert.ok(
        bytes.includes(Buffer.from('torch\nHalfStorage\n')) && !bytes.includes(Buffer.from('torch\nFloatStorage\n')),
      );
      const c = await readPth(await temp(bytes, `half-${format}.pth`));
      assert.equal(c.key, 'g_ema');
      assert.deepEqual(c.dtypes, ['float16']);
      sameTensors(c, half);
    });
  }

  it('lays the zip out as torch does: archive/data.pkl, byteorder, data/<i> at 64-byte offsets, version', async () => {
    const two = new Map([...tiny].slice(0, 3));
    const bytes = saveStateDict(two);
    const names: string[] = [];
    for (let p = 0; bytes.readUInt32LE(p) === 0x04034b50;) {
      const nameLen = bytes.readUInt16LE(p + 26);
      const extraLen = bytes.readUInt16LE(p + 28);
      const name = bytes.toString('utf8', p + 30, p + 30 + nameLen);
      const dataStart = p + 30 + nameLen + extraLen;
      if (name.startsWith('archive/data/')) assert.equal(dataStart % 64, 0, `${name} starts at ${dataStart}`);
      names.push(name);
      p = dataStart + bytes.readUInt32LE(p + 18);
    }
    assert.deepEqual(names, [
      'archive/data.pkl',
      'archive/byteorder',
      'archive/data/0',
      'archive/data/1',
      'archive/data/2',
      'archive/version',
    ]);
  });

  it('handles a GPEN-512-size dict (71M params, 284 MB) with one copy of the data', async (t) => {
    const arch = defaultArch(512);
    const big = new Map<string, HostTensor>();
    let i = 0;
    for (const [name, dims] of expectedShapes(arch)) {
      const data = new Float32Array(numel(dims)); // zero pages; only the markers below are touched
      data[data.length - 1] = -++i;
      data[0] = i; // a single-element tensor keeps +i
      big.set(name, { dtype: 'float32', dims, data });
    }
    assert.equal(countParams(arch), 71005223);
    const t0 = performance.now();
    const bytes = saveStateDict(big);
    const ms = performance.now() - t0;
    t.diagnostic(`saveStateDict GPEN-512: ${bytes.length} bytes in ${ms.toFixed(0)} ms`);
    const f = await temp(bytes, 'gpen-512-zeros.pth');
    const c = await readPth(f);
    assert.deepEqual([...c.tensors.keys()], [...big.keys()]);
    i = 0;
    for (const [name, want] of big) {
      const got = c.tensors.get(name)!;
      i++;
      assert.deepEqual(got.dims, want.dims, name);
      assert.equal(got.data[0], i, name);
      if (got.data.length > 1) assert.equal(got.data[got.data.length - 1], -i, name);
    }
    await rm(f);
  });
});
