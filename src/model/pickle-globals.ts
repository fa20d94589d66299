// The globals a torch state dict's pickle may name, and the calls (REDUCE) it may make, rebuilt as plain values:
// nothing named in a pickle is imported or run, and every other global or call is refused.
import type { GpenLabError } from '../errors.js';

/** An allowed global (a storage class or a dtype) used as a value. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}

/** What torch._utils._rebuild_tensor_v2/v3 would build, left unbuilt: the caller reads the storage. */
export class PyTensor {
  constructor(
    readonly storage: unknown,
    readonly offset: number,
    readonly size: number[],
    readonly stride: number[],
    /** Only for _rebuild_tensor_v3 (an untyped storage); otherwise the storage class gives the dtype. */
    readonly dtype: PyGlobal | null,
  ) {}
}

/** Python dict and OrderedDict. Lists are arrays; tuples are frozen arrays. */
export type PyDict = Map<unknown, unknown>;

const STORAGE_CLASSES = [
  'FloatStorage',
  'HalfStorage',
  'DoubleStorage',
  'BFloat16Storage',
  'LongStorage',
  'IntStorage',
  'ShortStorage',
  'CharStorage',
  'ByteStorage',
  'BoolStorage',
  'UntypedStorage',
] as const;
const DTYPE_NAMES = [
  'float32',
  'float16',
  'bfloat16',
  'float64',
  'int64',
  'int32',
  'int16',
  'int8',
  'uint8',
  'bool',
] as const;

const CALLABLE = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_tensor_v3',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
  '_codecs.encode',
]);
const VALUE_ONLY = new Set<string>([...STORAGE_CLASSES, ...DTYPE_NAMES].map((n) => `torch.${n}`));

/** The machine's errors, placed at the opcode being run. */
export interface PickleErrors {
  corrupt(why: string): GpenLabError;
  unsafe(what: string, extra: Record<string, unknown>): GpenLabError;
}

/** GLOBAL and STACK_GLOBAL: an allowed global as a value. */
export function resolveGlobal(module: string, name: string, err: PickleErrors): PyGlobal {
  const q = `${module}.${name}`;
  if (!CALLABLE.has(q) && !VALUE_ONLY.has(q)) throw err.unsafe(`the Python global ${q}`, { global: q });
  return new PyGlobal(module, name);
}

/** REDUCE: what the allowed call of `fn` with `args` would return. */
export function reduce(fn: unknown, args: unknown, err: PickleErrors): unknown {
  if (!(fn instanceof PyGlobal)) throw err.unsafe('a call of something that is not a global', { opcode: 'REDUCE' });
  if (!Array.isArray(args)) throw err.corrupt('REDUCE arguments are not a tuple');
  switch (fn.qualified) {
    case 'collections.OrderedDict':
      return orderedDict(args, err);
    case 'torch._utils._rebuild_tensor_v2':
      return rebuildTensor(args, false, err);
    case 'torch._utils._rebuild_tensor_v3':
      return rebuildTensor(args, true, err);
    case 'torch._utils._rebuild_parameter':
    case 'torch._utils._rebuild_parameter_with_state':
      if (!(args[0] instanceof PyTensor)) throw err.corrupt('_rebuild_parameter of something that is not a tensor');
      return args[0];
    case '_codecs.encode':
      return encode(args, err);
    default:
      throw err.unsafe(`a call of ${fn.qualified}`, { global: fn.qualified });
  }
}

function orderedDict(args: unknown[], err: PickleErrors): PyDict {
  const d: PyDict = new Map();
  if (args.length === 0) return d;
  if (args.length === 1 && Array.isArray(args[0])) {
    for (const kv of args[0]) {
      if (!Array.isArray(kv) || kv.length !== 2) throw err.corrupt('OrderedDict item is not a pair');
      d.set(kv[0], kv[1]);
    }
    return d;
  }
  throw err.corrupt('OrderedDict with unexpected arguments');
}

function ints(v: unknown, what: string, err: PickleErrors): number[] {
  if (!Array.isArray(v) || !v.every((x) => Number.isSafeInteger(x) && (x as number) >= 0)) {
    throw err.corrupt(`${what} is not a tuple of non-negative integers`);
  }
  return v as number[];
}

function rebuildTensor(a: unknown[], v3: boolean, err: PickleErrors): PyTensor {
  if (a.length < (v3 ? 7 : 6)) throw err.corrupt('_rebuild_tensor with too few arguments');
  const [storage, offset, size, stride] = a;
  if (!Number.isSafeInteger(offset) || (offset as number) < 0)
    throw err.corrupt('tensor storage offset is not an integer');
  const sz = ints(size, 'tensor size', err);
  const st = ints(stride, 'tensor stride', err);
  if (sz.length !== st.length) throw err.corrupt('tensor size and stride differ in length');
  let dtype: PyGlobal | null = null;
  if (v3) {
    if (!(a[6] instanceof PyGlobal) || !(DTYPE_NAMES as readonly string[]).includes(a[6].name)) {
      throw err.corrupt('_rebuild_tensor_v3 without a dtype');
    }
    dtype = a[6];
  }
  return new PyTensor(storage, offset as number, sz, st, dtype);
}

/** Protocol 2 writes bytes as _codecs.encode(str, 'latin1'). */
function encode(args: unknown[], err: PickleErrors): Uint8Array {
  const [s, enc] = args;
  if (typeof s !== 'string') throw err.corrupt('_codecs.encode of a non-string');
  if (enc === 'latin1' || enc === 'latin-1') {
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c > 0xff) throw err.corrupt('_codecs.encode: character outside latin1');
      out[i] = c;
    }
    return out;
  }
  if (enc === 'utf-8' || enc === 'utf8') return new TextEncoder().encode(s);
  throw err.unsafe(`_codecs.encode with encoding ${String(enc)}`, { global: '_codecs.encode' });
}
