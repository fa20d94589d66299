// Reads PyTorch checkpoints (.pth) without Python: the zip format of torch >= 1.6 and the legacy pickle
// stream of older torch. The pickle is read by the refusing VM in pickle.ts; tensor bytes are read once,
// straight into the array the HostTensor keeps.
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type yauzl from 'yauzl';
import { onFirstUse } from '../io/lazy-module.js';
import { GpenLabError, errorMessage, isGpenLabError } from '../errors.js';
import { assertReadableFile } from '../io/files.js';
import { PyGlobal, PyTensor, unpickle } from './pickle.js';
import { numel, type HostTensor } from '../io/tensor.js';

/** yauzl, loaded on first use: a process that reads no .pth does not pay for it. */
const zipLib = onFirstUse<typeof yauzl>('yauzl');

export interface Checkpoint {
  file: string;
  format: 'zip' | 'legacy';
  /** The nested key the state dict came from (g_ema, params, ...), or null for a bare state dict. */
  key: string | null;
  /** Floating-point tensors: float32, float16 kept as half bits, bfloat16/float64 widened/narrowed to float32. */
  tensors: Map<string, HostTensor>;
  /** The torch dtypes those tensors were stored in, sorted (e.g. ['float32']). */
  dtypes: string[];
  /** Integer and bool tensors (e.g. BatchNorm num_batches_tracked): named here, not read. */
  others: { name: string; dtype: string; dims: number[] }[];
}

export interface ReadPthOptions {
  /** Top-level key holding the state dict; without it the usual ones are tried. */
  key?: string;
}

/** Tried in order when no key is given and the top level is not itself a state dict. */
export const STATE_DICT_KEYS = ['g_ema', 'params_ema', 'params', 'state_dict', 'model', 'generator', 'netG'];

const STORAGE_DTYPE: Record<string, string> = {
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  DoubleStorage: 'float64',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
  UntypedStorage: 'uint8',
};
const DTYPE_SIZE: Record<string, number> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float64: 8,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};
const FLOAT_DTYPES = new Set(['float32', 'float16', 'bfloat16', 'float64']);
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;
const REDO_FIX =
  'The file is damaged or incomplete: download it again, or re-save it in Python with ' +
  'torch.save(model.state_dict(), path).';

interface RootStorage {
  key: string;
  dtype: string;
  numel: number;
  /** Filled only for storages that a kept tensor uses. */
  data: Uint8Array | null;
  /** Kept tensors over this storage: with one, the tensor may take the storage's buffer without a copy. */
  users: number;
}

/** What a persistent id resolves to: a root storage, or (legacy) a view at an element offset into one. */
class StorageView {
  constructor(
    readonly root: RootStorage,
    readonly offset: number,
  ) {}
}

function corrupt(file: string, why: string, details: Record<string, unknown> = {}): GpenLabError {
  return new GpenLabError('E_PTH_CORRUPT', `${file} is not a readable PyTorch checkpoint: ${why}`, REDO_FIX, {
    input: file,
    ...details,
  });
}

export async function readPth(file: string, opts: ReadPthOptions = {}): Promise<Checkpoint> {
  await assertReadableFile(file, 'a PyTorch checkpoint (.pth)');
  let fh: FileHandle | undefined;
  let zip: yauzl.ZipFile | undefined;
  try {
    fh = await fs.open(file, 'r');
    const size = (await fh.stat()).size;
    if (size === 0) throw corrupt(file, 'the file is empty (0 bytes)');
    const head = await readAt(fh, file, size, 0, Math.min(size, 512), 'the header');
    const roots = new Map<string, RootStorage>();
    if (head[0] === 0x50 && head[1] === 0x4b && (head[2] === 3 || head[2] === 5)) {
      zip = await openZip(file);
      const archive = await indexZip(zip, file);
      const pkl = await readEntry(zip, fh, file, size, archive.pkl);
      const order = archive.byteorder
        ? new TextDecoder().decode(await readEntry(zip, fh, file, size, archive.byteorder))
        : 'little';
      const top = unpickle(pkl, { file, persistentLoad: storageLoader(file, roots) }).value;
      const picked = pick(file, top, opts.key);
      for (const root of usedRoots(picked)) {
        const entry = archive.entries.get(`${archive.prefix}data/${root.key}`);
        if (!entry)
          throw corrupt(
            file,
            `the archive has no data for storage ${root.key} (${archive.prefix}data/${root.key} is missing)`,
          );
        root.data = await readEntry(zip, fh, file, size, entry);
      }
      return finish(file, 'zip', picked, order.trim() === 'big');
    }
    if (head[0] === 0x80 && head[1] >= 2 && head[1] <= 5) {
      const legacy = await parseLegacy(fh, file, size, roots);
      const picked = pick(file, legacy.top, opts.key);
      const used = usedRoots(picked);
      let pos = legacy.dataStart;
      // Storages follow the key list in its order, each as an int64 element count and the raw elements.
      for (const key of legacy.keys) {
        const root = roots.get(key);
        if (!root) throw corrupt(file, `storage ${key} is listed but no tensor refers to it`);
        const count = new DataView(
          (await readAt(fh, file, size, pos, 8, `the length of storage ${key}`)).buffer,
        ).getBigInt64(0, legacy.littleEndian);
        const nbytes = Number(count) * DTYPE_SIZE[root.dtype];
        if (count < 0n || !Number.isSafeInteger(nbytes))
          throw corrupt(file, `storage ${key} has a bad length ${count}`);
        if (used.has(root)) root.data = await readAt(fh, file, size, pos + 8, nbytes, `storage ${key}`);
        pos += 8 + nbytes;
      }
      if (pos > size) throw corrupt(file, `the storages run to byte ${pos} but the file ends at ${size} (truncated?)`);
      for (const root of used) {
        if (!root.data)
          throw corrupt(file, `storage ${root.key} is used by a tensor but missing from the storage list`);
      }
      return finish(file, 'legacy', picked, !legacy.littleEndian);
    }
    if (size > 262 && new TextDecoder().decode(await readAt(fh, file, size, 257, 5, 'the header')) === 'ustar') {
      throw new GpenLabError(
        'E_FORMAT_UNKNOWN',
        `${file} is a tar-format checkpoint from a very old torch, which gpen-lab does not read`,
        'Load it with an old torch and re-save it: torch.save(model.state_dict(), path).',
        { input: file },
      );
    }
    throw new GpenLabError(
      'E_FORMAT_UNKNOWN',
      `${file} is not a PyTorch checkpoint: it starts with neither a zip header (PK) nor a pickle (0x80)`,
      'Pass the .pth file of a GPEN generator, e.g. GPEN-BFR-512.pth.',
      { input: file },
    );
  } catch (e) {
    if (isGpenLabError(e)) throw e;
    throw new GpenLabError(
      'E_PTH_CORRUPT',
      `${file} is not a readable PyTorch checkpoint: ${errorMessage(e)}`,
      REDO_FIX,
      { input: file },
      { cause: e },
    );
  } finally {
    if (zip) await closeZip(zip);
    await fh?.close();
  }
}

/** Reads exactly `len` bytes at `pos` into a fresh buffer (offset 0, so every typed view is aligned). */
async function readAt(
  fh: FileHandle,
  file: string,
  size: number,
  pos: number,
  len: number,
  what: string,
): Promise<Uint8Array> {
  if (pos + len > size) {
    throw corrupt(file, `${what} needs bytes ${pos}..${pos + len} but the file ends at ${size} (truncated?)`, {
      truncated: true,
    });
  }
  const out = new Uint8Array(len);
  for (let off = 0; off < len;) {
    const { bytesRead } = await fh.read(out, off, len - off, pos + off);
    if (bytesRead === 0) throw corrupt(file, `${what}: the file ended early at ${pos + off}`, { truncated: true });
    off += bytesRead;
  }
  return out;
}

// ---- zip (torch >= 1.6) ----

interface ZipIndex {
  entries: Map<string, yauzl.Entry>;
  /** '<name>/' in front of data.pkl, data/<key> and version. */
  prefix: string;
  pkl: yauzl.Entry;
  byteorder: yauzl.Entry | undefined;
}

async function openZip(file: string): Promise<yauzl.ZipFile> {
  try {
    // autoClose off: entries are read after the central directory; the finally of readPth closes it.
    return await zipLib().openPromise(file, { autoClose: false, lazyEntries: true });
  } catch (e) {
    throw corrupt(
      file,
      `it starts like a zip archive but its directory cannot be read (${errorMessage(e)}); ` +
        'a partly downloaded file looks like this',
      { cause: errorMessage(e) },
    );
  }
}

/** Resolves once yauzl's descriptor is really closed (its close() alone returns before that). */
function closeZip(zip: yauzl.ZipFile): Promise<void> {
  if (!zip.isOpen) return Promise.resolve();
  return new Promise((resolve) => {
    zip.once('close', resolve);
    zip.once('error', () => resolve());
    zip.close();
  });
}

async function indexZip(zip: yauzl.ZipFile, file: string): Promise<ZipIndex> {
  const entries = new Map<string, yauzl.Entry>();
  for await (const entry of zip.eachEntry()) entries.set(entry.fileName, entry);
  const name = [...entries.keys()].find((n) => /^([^/]+\/)?data\.pkl$/.test(n));
  if (name === undefined) {
    throw corrupt(
      file,
      `the zip archive has no data.pkl, so it is not a torch.save file (entries: ${[...entries.keys()].slice(0, 5).join(', ') || 'none'})`,
    );
  }
  const prefix = name.slice(0, -'data.pkl'.length);
  return { entries, prefix, pkl: entries.get(name)!, byteorder: entries.get(`${prefix}byteorder`) };
}

async function readEntry(
  zip: yauzl.ZipFile,
  fh: FileHandle,
  file: string,
  size: number,
  entry: yauzl.Entry,
): Promise<Uint8Array> {
  const len = entry.uncompressedSize;
  if (entry.compressionMethod === 0) {
    // Stored (torch's choice): read straight from the file, bypassing the stream's chunk copies.
    if (entry.compressedSize !== len) throw corrupt(file, `entry ${entry.fileName} has inconsistent sizes`);
    const { fileDataStart } = await zip.readLocalFileHeaderPromise(entry, { minimal: true });
    return readAt(fh, file, size, fileDataStart, len, `entry ${entry.fileName}`);
  }
  if (entry.compressionMethod !== 8) {
    throw corrupt(
      file,
      `entry ${entry.fileName} uses zip compression method ${entry.compressionMethod}; torch writes stored or deflated entries`,
    );
  }
  const out = new Uint8Array(len);
  let off = 0;
  for await (const chunk of await zip.openReadStreamPromise(entry)) {
    const c = chunk as Buffer;
    if (off + c.length > len) throw corrupt(file, `entry ${entry.fileName} inflates past its stated size`);
    out.set(c, off);
    off += c.length;
  }
  if (off !== len) throw corrupt(file, `entry ${entry.fileName} inflates to ${off} bytes, not ${len}`);
  return out;
}

// ---- legacy (torch < 1.6, or _use_new_zipfile_serialization=False) ----

interface Legacy {
  top: unknown;
  keys: string[];
  dataStart: number;
  littleEndian: boolean;
}

async function parseLegacy(
  fh: FileHandle,
  file: string,
  size: number,
  roots: Map<string, RootStorage>,
): Promise<Legacy> {
  // The pickles come first and are small; read a head, and a larger one only if a pickle runs past it.
  for (let len = Math.min(size, 1 << 20); ; len = Math.min(size, len * 4)) {
    const head = await readAt(fh, file, size, 0, len, 'the pickles');
    roots.clear();
    try {
      return parseLegacyHead(head, file, roots);
    } catch (e) {
      if (!(isGpenLabError(e) && e.details.truncated && len < size)) throw e;
    }
  }
}

function parseLegacyHead(head: Uint8Array, file: string, roots: Map<string, RootStorage>): Legacy {
  const magic = unpickle(head, { file });
  if (magic.value !== LEGACY_MAGIC) {
    throw corrupt(
      file,
      'it is a pickle but not one torch.save wrote (no torch magic number); ' +
        'gpen-lab reads tensors saved by torch.save only',
    );
  }
  const proto = unpickle(head, { file }, magic.end);
  if (proto.value !== LEGACY_PROTOCOL)
    throw corrupt(file, `legacy protocol ${String(proto.value)} is not ${LEGACY_PROTOCOL}`);
  const sys = unpickle(head, { file }, proto.end);
  const littleEndian = !(sys.value instanceof Map && sys.value.get('little_endian') === false);
  const main = unpickle(head, { file, persistentLoad: storageLoader(file, roots) }, sys.end);
  const keys = unpickle(head, { file }, main.end);
  if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === 'string')) {
    throw corrupt(file, 'the storage key list is not a list of strings');
  }
  return { top: main.value, keys: keys.value, dataStart: keys.end, littleEndian };
}

// ---- shared ----

/** Persistent ids: ('storage', torch.<X>Storage, key, location, numel[, view_metadata]). */
function storageLoader(file: string, roots: Map<string, RootStorage>): (pid: unknown) => unknown {
  return (pid) => {
    if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) {
      throw corrupt(file, `a persistent id is not a storage reference: ${describe(pid)}`);
    }
    const [, cls, key, , n, view] = pid;
    if (!(cls instanceof PyGlobal) || !STORAGE_DTYPE[cls.name] || typeof key !== 'string' || !Number.isSafeInteger(n)) {
      throw corrupt(file, 'a storage reference is malformed');
    }
    let root = roots.get(key);
    if (!root)
      roots.set(key, (root = { key, dtype: STORAGE_DTYPE[cls.name], numel: n as number, data: null, users: 0 }));
    if (view === undefined || view === null) return new StorageView(root, 0);
    if (!Array.isArray(view) || !Number.isSafeInteger(view[1]))
      throw corrupt(file, `storage view of ${key} is malformed`);
    return new StorageView(root, view[1] as number);
  };
}

interface Picked {
  key: string | null;
  /** Tensors by name, 'module.' already stripped. */
  tensors: [string, PyTensor, StorageView, string][];
}

function isTensorDict(v: unknown): v is Map<string, PyTensor> {
  return v instanceof Map && v.size > 0 && [...v].every(([k, t]) => typeof k === 'string' && t instanceof PyTensor);
}

function describe(v: unknown): string {
  if (v instanceof PyTensor) return 'tensor';
  if (v instanceof Map) return isTensorDict(v) ? `state dict of ${v.size} tensors` : `dict of ${v.size}`;
  if (Array.isArray(v)) return `${Object.isFrozen(v) ? 'tuple' : 'list'} of ${v.length}`;
  if (v instanceof PyGlobal) return v.qualified;
  if (v instanceof Uint8Array) return `bytes`;
  if (v === null) return 'None';
  return typeof v === 'string' ? JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v) : typeof v;
}

function listKeys(m: Map<unknown, unknown>): string {
  const shown = [...m].slice(0, 20).map(([k, v]) => `${String(k)} (${describe(v)})`);
  return shown.join(', ') + (m.size > 20 ? `, ... ${m.size - 20} more` : '');
}

function pick(file: string, top: unknown, key: string | undefined): Picked {
  if (!(top instanceof Map)) {
    throw new GpenLabError(
      'E_NOT_GPEN',
      `${file} holds a ${describe(top)}, not a dict of tensors`,
      'Re-save the generator weights with torch.save(model.state_dict(), path).',
      { input: file },
    );
  }
  let used: string | null = null;
  let dict: Map<string, PyTensor> | undefined;
  if (key !== undefined && !top.has(key) && isTensorDict(top)) {
    throw new GpenLabError(
      'E_KEY_NOT_FOUND',
      `${file}: there is no key "${key}": the file is itself a state dict of ${top.size} tensors`,
      'Leave --key out for this file.',
      { input: file, key },
    );
  }
  if (key !== undefined) {
    const v = top.get(key);
    if (!isTensorDict(v)) {
      const why = top.has(key) ? `"${key}" holds a ${describe(v)}, not tensors` : `there is no key "${key}"`;
      throw new GpenLabError(
        'E_KEY_NOT_FOUND',
        `${file}: ${why}; its top-level keys are: ${listKeys(top)}`,
        'Pass --key NAME with the key that holds the generator weights, or leave --key out to search g_ema, params_ema, params, ...',
        { input: file, key, keys: [...top.keys()].map(String) },
      );
    }
    [used, dict] = [key, v];
  } else if (isTensorDict(top)) {
    dict = top;
  } else {
    used = STATE_DICT_KEYS.find((k) => isTensorDict(top.get(k))) ?? null;
    if (used === null) {
      throw new GpenLabError(
        'E_KEY_NOT_FOUND',
        `${file}: found no state dict: the top level is not one and none of ${STATE_DICT_KEYS.join(', ')} holds one; ` +
          `its top-level keys are: ${listKeys(top)}`,
        'Pass --key NAME with the key that holds the generator weights.',
        { input: file, keys: [...top.keys()].map(String) },
      );
    }
    dict = top.get(used) as Map<string, PyTensor>;
  }
  const names = [...dict.keys()];
  const strip = names.every((n) => n.startsWith('module.')); // saved from DataParallel
  const tensors: Picked['tensors'] = [];
  for (const [name, t] of dict) {
    if (!(t.storage instanceof StorageView)) throw corrupt(file, `tensor ${name} is not backed by a storage`);
    const dtype = t.dtype?.name ?? t.storage.root.dtype;
    tensors.push([strip ? name.slice(7) : name, t, t.storage, dtype]);
  }
  return { key: used, tensors };
}

/** The storages the kept (floating-point) tensors read, each once. */
function usedRoots(p: Picked): Set<RootStorage> {
  const out = new Set<RootStorage>();
  for (const [, , view, dtype] of p.tensors) {
    if (!FLOAT_DTYPES.has(dtype)) continue;
    view.root.users++;
    out.add(view.root);
  }
  return out;
}

function finish(file: string, format: Checkpoint['format'], p: Picked, bigEndian: boolean): Checkpoint {
  const tensors = new Map<string, HostTensor>();
  const others: Checkpoint['others'] = [];
  const dtypes = new Set<string>();
  for (const [name, t, view, dtype] of p.tensors) {
    if (!FLOAT_DTYPES.has(dtype)) {
      others.push({ name, dtype, dims: [...t.size] });
      continue;
    }
    dtypes.add(dtype);
    tensors.set(name, materialise(file, name, t, view, dtype, bigEndian));
  }
  return { file, format, key: p.key, tensors, dtypes: [...dtypes].sort(), others };
}

function materialise(
  file: string,
  name: string,
  t: PyTensor,
  view: StorageView,
  dtype: string,
  bigEndian: boolean,
): HostTensor {
  const { root } = view;
  const data = root.data!;
  const es = DTYPE_SIZE[dtype];
  const dims = [...t.size];
  const n = numel(dims);
  const base = view.offset * DTYPE_SIZE[root.dtype] + t.offset * es;
  let last = 0; // highest element index touched, relative to base
  for (let i = 0; i < dims.length; i++) last += (dims[i] - 1) * t.stride[i];
  if (n > 0 && base + (last + 1) * es > data.length) {
    throw corrupt(
      file,
      `tensor ${name} ${JSON.stringify(dims)} needs ${base + (last + 1) * es} bytes of storage ${root.key}, ` +
        `which holds ${data.length}`,
      { tensor: name },
    );
  }
  let contiguous = true;
  for (let i = dims.length - 1, want = 1; i >= 0; want *= dims[i], i--) {
    if (dims[i] !== 1 && t.stride[i] !== want) contiguous = false;
  }
  let bytes: Uint8Array;
  if (contiguous) {
    const sub = data.subarray(base, base + n * es);
    // Take the storage's own buffer only when nothing else can see it; otherwise copy (also re-aligns).
    bytes = root.users === 1 && sub.byteLength === data.byteLength ? sub : sub.slice();
  } else {
    bytes = gather(data, base, dims, t.stride, es);
  }
  if (bigEndian && es > 1) {
    const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (es === 2) b.swap16();
    else if (es === 4) b.swap32();
    else b.swap64();
  }
  switch (dtype) {
    case 'float32':
      return { dtype: 'float32', dims, data: new Float32Array(bytes.buffer, bytes.byteOffset, n) };
    case 'float16':
      return { dtype: 'float16', dims, data: new Uint16Array(bytes.buffer, bytes.byteOffset, n) };
    case 'bfloat16': {
      const src = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
      const out = new Float32Array(n);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
      return { dtype: 'float32', dims, data: out };
    }
    default: // float64
      return { dtype: 'float32', dims, data: Float32Array.from(new Float64Array(bytes.buffer, bytes.byteOffset, n)) };
  }
}

/** Copies a strided view element by element into row-major order. */
function gather(data: Uint8Array, base: number, dims: number[], stride: number[], es: number): Uint8Array {
  const n = numel(dims);
  const out = new Uint8Array(n * es);
  const idx = new Array<number>(dims.length).fill(0);
  let src = base;
  for (let i = 0, o = 0; i < n; i++) {
    for (let b = 0; b < es; b++) out[o++] = data[src + b];
    for (let d = dims.length - 1; d >= 0; d--) {
      src += stride[d] * es;
      if (++idx[d] < dims[d]) break;
      src -= dims[d] * stride[d] * es;
      idx[d] = 0;
    }
  }
  return out;
}
