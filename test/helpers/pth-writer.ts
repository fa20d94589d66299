// Writers for PyTorch checkpoints, for tests: the protocol-2 pickle opcodes torch.save emits, the legacy (pre-1.6)
// stream and the zip archive of torch >= 1.6. Crafted files (odd dtypes, views, damage, unsafe pickles) are built
// opcode by opcode with Pickle; whole state dicts are written by saveStateDict.
//
// Only the pickle is assembled in a number[]; tensor bytes go into the output as Buffer views over the tensors'
// own arrays and are copied once, by the final Buffer.concat (a GPEN-512 dict, 284 MB, takes about 1.5 s on the
// 2-core CI machine, nearly all of it that copy). A little-endian host is assumed, as on x86 and Arm.
// Checked against torch 2.11: torch.load (weights_only True and False) reads zip and legacy files written here,
// fp32, fp16 and nested, to the same bytes.
import * as zlib from 'node:zlib';
import type { HostTensor } from '../../src/io/tensor.js';
import { numel } from '../../src/io/tensor.js';

/** A tensor of a crafted pickle: storage class and key, the storage's element count, and the view on it. */
export interface Spec {
  name: string;
  cls: string;
  key: string;
  numel: number;
  size: number[];
  stride?: number[];
  offset?: number;
}

export function u32le(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];
}
export function rowMajor(size: number[]): number[] {
  return size.map((_, i) => numel(size.slice(i + 1)));
}
export function f32(...v: number[]): Buffer {
  return Buffer.from(new Float32Array(v).buffer);
}

/** Protocol-2 pickle bytes, opcode by opcode, as torch.save writes them. */
export class Pickle {
  private readonly out: number[] = [0x80, 2];
  op(...b: number[]): this {
    return this.raw(b);
  }
  /** Appends bytes one by one (no spread into push: a long string would overflow the argument limit). */
  raw(b: ArrayLike<number>): this {
    for (let i = 0; i < b.length; i++) this.out.push(b[i]);
    return this;
  }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    return this.op(0x58, ...u32le(b.length)).raw(b);
  }
  /** BININT: a signed 32-bit integer. */
  int(n: number): this {
    if (!Number.isInteger(n) || n < -0x80000000 || n > 0x7fffffff)
      throw new RangeError(`Pickle.int: ${n} is not a 32-bit integer`);
    return this.op(0x4a, ...u32le(n >>> 0));
  }
  global(module: string, name: string): this {
    return this.op(0x63).raw(Buffer.from(`${module}\n${name}\n`, 'latin1'));
  }
  mark(): this {
    return this.op(0x28);
  }
  tuple(): this {
    return this.op(0x74);
  }
  ints(v: number[]): this {
    this.mark();
    v.forEach((x) => this.int(x));
    return this.tuple();
  }
  /** EMPTY_DICT. */
  dict(): this {
    return this.op(0x7d);
  }
  setitem(): this {
    return this.op(0x73);
  }
  orderedDict(): this {
    return this.global('collections', 'OrderedDict').op(0x29, 0x52);
  }
  /** _rebuild_tensor_v2(('storage', torch.<cls>, key, 'cpu', numel[, None]), offset, size, stride, False, OrderedDict()). */
  tensor(t: Spec, legacy: boolean): this {
    this.global('torch._utils', '_rebuild_tensor_v2').mark();
    this.mark().str('storage').global('torch', t.cls).str(t.key).str('cpu').int(t.numel);
    if (legacy) this.op(0x4e);
    this.tuple()
      .op(0x51)
      .int(t.offset ?? 0)
      .ints(t.size)
      .ints(t.stride ?? rowMajor(t.size))
      .op(0x89)
      .orderedDict();
    return this.tuple().op(0x52);
  }
  stateDict(ts: Spec[], legacy: boolean): this {
    this.orderedDict();
    for (const t of ts) this.str(t.name).tensor(t, legacy).setitem();
    return this;
  }
  bytes(): Buffer {
    const b = Buffer.allocUnsafe(this.out.length + 1);
    b.set(this.out);
    b[this.out.length] = 0x2e; // STOP
    return b;
  }
}

/** The legacy stream: magic, protocol, sys_info, main pickle, key list, then (int64 count, raw data) per key. */
export function legacyFile(main: Pickle, storages: [key: string, data: Buffer, elemSize: number][]): Buffer {
  const magic = new Pickle().op(0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19).bytes();
  const proto = new Pickle().int(1001).bytes();
  const sys = new Pickle()
    .dict()
    .str('protocol_version')
    .int(1001)
    .setitem()
    .str('little_endian')
    .op(0x88)
    .setitem()
    .str('type_sizes')
    .dict()
    .str('short')
    .int(2)
    .setitem()
    .str('int')
    .int(4)
    .setitem()
    .str('long')
    .int(4)
    .setitem()
    .setitem()
    .bytes();
  const keys = new Pickle().op(0x5d).mark();
  for (const [k] of storages) keys.str(k);
  const parts = [magic, proto, sys, main.bytes(), keys.op(0x65).bytes()];
  for (const [, data, es] of storages) {
    const n = Buffer.alloc(8);
    n.writeBigInt64LE(BigInt(data.length / es));
    parts.push(n, data);
  }
  return Buffer.concat(parts);
}

const CRC = new Int32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});

/** CRC-32 of the zip format: zlib's native one where Node has it (>= 20.15), a table loop otherwise. */
export function crc32(b: Uint8Array): number {
  const native = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;
  if (native) return native(b) >>> 0;
  let c = -1;
  for (let i = 0; i < b.length; i++) c = CRC[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

export interface ZipOptions {
  /** Folder every entry sits in (torch: 'archive'). */
  prefix?: string;
  /** Pad each entry's data to start at a multiple of this many bytes, with an 'FB' extra field as torch does. */
  align?: number;
}

/** A minimal zip (stored, or deflated where asked) with torch's layout under `archive/`. */
export function zipFile(entries: [name: string, data: Buffer, deflate?: boolean][], opts: ZipOptions = {}): Buffer {
  const prefix = opts.prefix ?? 'archive';
  const align = opts.align ?? 0;
  const parts: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, data, deflate] of entries) {
    const body = deflate ? zlib.deflateRawSync(data) : data;
    const crc = crc32(data);
    const fname = Buffer.from(`${prefix}/${name}`);
    let extra = Buffer.alloc(0);
    if (align > 0 && !deflate) {
      // torch's getPadding: data begins after the header, the name and a 4-byte extra-field header.
      const start = offset + 30 + fname.length + 4;
      const pad = (align - (start % align)) % align;
      extra = Buffer.alloc(4 + pad, 'Z');
      extra.writeUInt16LE(0x4246, 0); // 'FB'
      extra.writeUInt16LE(pad, 2);
    }
    const h = Buffer.alloc(30);
    h.writeUInt32LE(0x04034b50, 0);
    h.writeUInt16LE(20, 4);
    h.writeUInt16LE(deflate ? 8 : 0, 8);
    h.writeUInt32LE(crc, 14);
    h.writeUInt32LE(body.length, 18);
    h.writeUInt32LE(data.length, 22);
    h.writeUInt16LE(fname.length, 26);
    h.writeUInt16LE(extra.length, 28);
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(20, 4);
    c.writeUInt16LE(20, 6);
    c.writeUInt16LE(deflate ? 8 : 0, 10);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(body.length, 20);
    c.writeUInt32LE(data.length, 24);
    c.writeUInt16LE(fname.length, 28);
    c.writeUInt32LE(offset, 42);
    parts.push(h, fname, extra, body);
    centrals.push(c, fname);
    offset += h.length + fname.length + extra.length + body.length;
  }
  if (offset > 0xffffffff || entries.length > 0xffff)
    throw new RangeError('zipFile: the archive needs zip64, which this writer does not write');
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, cd, end]);
}

export interface SaveOptions {
  /** 'zip' (torch >= 1.6, the default) or 'legacy' (_use_new_zipfile_serialization=False). */
  format?: 'zip' | 'legacy';
  /** Wrap the state dict as a training checkpoint would: {nestUnder: state_dict, 'epoch': 1}. */
  nestUnder?: string;
}

/** The bytes of a tensor's array, without a copy. */
function view(t: HostTensor): Buffer {
  return Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/**
 * What torch.save(state_dict, f) writes for these tensors: an OrderedDict of contiguous tensors, one storage each
 * (FloatStorage for float32, HalfStorage for float16), keys '0', '1', ... in the map's order; zip entries
 * archive/data.pkl, archive/byteorder, archive/data/<i> (64-byte aligned) and archive/version.
 */
export function saveStateDict(tensors: Map<string, HostTensor>, opts: SaveOptions = {}): Buffer {
  const legacy = opts.format === 'legacy';
  const specs: Spec[] = [];
  const storages: [string, Buffer, number][] = [];
  for (const [name, t] of tensors) {
    const n = numel(t.dims);
    if (t.data.length !== n)
      throw new RangeError(
        `saveStateDict: ${name} has ${t.data.length} elements for dims [${t.dims.join(', ')}] (${n})`,
      );
    const key = String(specs.length);
    specs.push({ name, cls: t.dtype === 'float16' ? 'HalfStorage' : 'FloatStorage', key, numel: n, size: t.dims });
    storages.push([key, view(t), t.dtype === 'float16' ? 2 : 4]);
  }
  const main = new Pickle();
  if (opts.nestUnder !== undefined) {
    main.dict().str(opts.nestUnder).stateDict(specs, legacy).setitem().str('epoch').int(1).setitem();
  } else {
    main.stateDict(specs, legacy);
  }
  if (legacy) return legacyFile(main, storages);
  return zipFile(
    [
      ['data.pkl', main.bytes()],
      ['byteorder', Buffer.from('little')],
      ...storages.map(([key, data]): [string, Buffer] => [`data/${key}`, data]),
      ['version', Buffer.from('3\n')],
    ],
    { align: 64 },
  );
}
