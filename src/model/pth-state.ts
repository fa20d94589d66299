// The state dict inside a PyTorch checkpoint's pickle: the storages its tensors refer to, the dict picked from the
// top level, and each floating-point tensor read out of its storage's bytes.
import { GpenLabError } from '../errors.js';
import { PyGlobal, PyTensor } from './pickle-globals.js';
import { numel, type HostTensor } from '../io/tensor.js';

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

/** Tried in order when no key is given and the top level is not itself a state dict. */
const STATE_DICT_KEYS = ['g_ema', 'params_ema', 'params', 'state_dict', 'model', 'generator', 'netG'];

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
export const DTYPE_SIZE: Record<string, number> = {
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
export const REDO_FIX =
  'The file is damaged or incomplete: download it again, or re-save it in Python with ' +
  'torch.save(model.state_dict(), path).';

export interface RootStorage {
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

export function corrupt(file: string, why: string, details: Record<string, unknown> = {}): GpenLabError {
  return new GpenLabError('E_PTH_CORRUPT', `${file} is not a readable PyTorch checkpoint: ${why}`, REDO_FIX, {
    input: file,
    ...details,
  });
}

/** Persistent ids: ('storage', torch.<X>Storage, key, location, numel[, view_metadata]). */
export function storageLoader(file: string, roots: Map<string, RootStorage>): (pid: unknown) => unknown {
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

export function pick(file: string, top: unknown, key: string | undefined): Picked {
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
export function usedRoots(p: Picked): Set<RootStorage> {
  const out = new Set<RootStorage>();
  for (const [, , view, dtype] of p.tensors) {
    if (!FLOAT_DTYPES.has(dtype)) continue;
    view.root.users++;
    out.add(view.root);
  }
  return out;
}

export function finish(file: string, format: Checkpoint['format'], p: Picked, bigEndian: boolean): Checkpoint {
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
