// A pickle reader for the subset of protocols 2-5 that torch state dicts use. It never imports or calls
// anything: the few allowed globals become plain values, every other global or opcode is refused.
import { GpenLabError } from '../errors.js';

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

export const STORAGE_CLASSES = [
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
export const DTYPE_NAMES = [
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

// Every opcode of protocols 0-5, so that a refusal names it and an unknown byte reads as corruption.
const OPCODE_NAMES: Record<number, string> = {
  0x28: 'MARK',
  0x2e: 'STOP',
  0x30: 'POP',
  0x31: 'POP_MARK',
  0x32: 'DUP',
  0x46: 'FLOAT',
  0x49: 'INT',
  0x4a: 'BININT',
  0x4b: 'BININT1',
  0x4c: 'LONG',
  0x4d: 'BININT2',
  0x4e: 'NONE',
  0x50: 'PERSID',
  0x51: 'BINPERSID',
  0x52: 'REDUCE',
  0x53: 'STRING',
  0x54: 'BINSTRING',
  0x55: 'SHORT_BINSTRING',
  0x56: 'UNICODE',
  0x58: 'BINUNICODE',
  0x61: 'APPEND',
  0x62: 'BUILD',
  0x63: 'GLOBAL',
  0x64: 'DICT',
  0x7d: 'EMPTY_DICT',
  0x65: 'APPENDS',
  0x67: 'GET',
  0x68: 'BINGET',
  0x69: 'INST',
  0x6a: 'LONG_BINGET',
  0x6c: 'LIST',
  0x5d: 'EMPTY_LIST',
  0x6f: 'OBJ',
  0x70: 'PUT',
  0x71: 'BINPUT',
  0x72: 'LONG_BINPUT',
  0x73: 'SETITEM',
  0x74: 'TUPLE',
  0x29: 'EMPTY_TUPLE',
  0x75: 'SETITEMS',
  0x47: 'BINFLOAT',
  0x80: 'PROTO',
  0x81: 'NEWOBJ',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x85: 'TUPLE1',
  0x86: 'TUPLE2',
  0x87: 'TUPLE3',
  0x88: 'NEWTRUE',
  0x89: 'NEWFALSE',
  0x8a: 'LONG1',
  0x8b: 'LONG4',
  0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES',
  0x8c: 'SHORT_BINUNICODE',
  0x8d: 'BINUNICODE8',
  0x8e: 'BINBYTES8',
  0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS',
  0x91: 'FROZENSET',
  0x92: 'NEWOBJ_EX',
  0x93: 'STACK_GLOBAL',
  0x94: 'MEMOIZE',
  0x95: 'FRAME',
  0x96: 'BYTEARRAY8',
  0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
};

export interface UnpickleOptions {
  /** Named in every error. */
  file: string;
  /** Receives each persistent id (BINPERSID); its result takes the id's place. */
  persistentLoad?: (pid: unknown) => unknown;
}

export interface UnpickleResult {
  value: unknown;
  /** Offset just past STOP: the next pickle of a legacy checkpoint starts here. */
  end: number;
}

const REFUSED_FIX =
  'Load the file in a Python you trust and re-save the weights alone: ' +
  'torch.save(model.state_dict(), path); gpen-lab reads that.';
const utf8 = new TextDecoder('utf-8');

export function isTuple(v: unknown): v is readonly unknown[] {
  return Array.isArray(v) && Object.isFrozen(v);
}

/** Reads one pickle starting at `start`. Throws E_PTH_CORRUPT (details.truncated when it ran off the end). */
export function unpickle(buf: Uint8Array, opts: UnpickleOptions, start = 0): UnpickleResult {
  const { file } = opts;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  let pos = start;
  let opPos = start;

  const corrupt = (why: string, truncated = false): GpenLabError =>
    new GpenLabError(
      'E_PTH_CORRUPT',
      `${file} is not a readable PyTorch checkpoint: malformed pickle at byte ${opPos}: ${why}`,
      'Download the checkpoint again, or re-save it with torch.save(model.state_dict(), path).',
      { input: file, offset: opPos, truncated },
    );
  const unsafe = (what: string, extra: Record<string, unknown>): GpenLabError =>
    new GpenLabError(
      'E_PTH_UNSAFE',
      `${file} asks for ${what}, which a state dict of tensors never needs. It was not executed: ` +
        'gpen-lab never imports or runs anything named in a pickle.',
      REFUSED_FIX,
      { input: file, offset: opPos, ...extra },
    );

  const need = (n: number): number => {
    if (n < 0 || pos + n > buf.length)
      throw corrupt(`it ends at byte ${buf.length}, inside an opcode (a truncated file?)`, true);
    const at = pos;
    pos += n;
    return at;
  };
  const u8 = (): number => buf[need(1)];
  const u16 = (): number => view.getUint16(need(2), true);
  const u32 = (): number => view.getUint32(need(4), true);
  const u64 = (): number => {
    const v = view.getBigUint64(need(8), true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`length ${v} is out of range`);
    return Number(v);
  };
  const bytes = (n: number): Uint8Array => buf.slice(need(n), pos);
  const text = (n: number): string => utf8.decode(buf.subarray(need(n), pos));
  const line = (): string => {
    const nl = buf.indexOf(0x0a, pos);
    if (nl < 0) throw corrupt('a GLOBAL name is not terminated', true);
    const s = utf8.decode(buf.subarray(pos, nl));
    pos = nl + 1;
    return s;
  };
  const longLE = (n: number): number | bigint => {
    const b = buf.subarray(need(n), pos);
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (n > 0 && b[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1])) {
      throw corrupt('the stack is empty');
    }
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) throw corrupt('the stack is empty');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) throw corrupt('no MARK to pop to');
    return stack.splice(m);
  };
  const get = (i: number): unknown => {
    if (!memo.has(i)) throw corrupt(`memo slot ${i} is empty`);
    return memo.get(i);
  };
  const asList = (v: unknown): unknown[] => {
    if (!Array.isArray(v) || Object.isFrozen(v)) throw corrupt('APPEND to something that is not a list');
    return v;
  };
  const asDict = (v: unknown): PyDict => {
    if (!(v instanceof Map)) throw corrupt('SETITEM on something that is not a dict');
    return v;
  };
  const setItems = (d: PyDict, items: unknown[]): void => {
    if (items.length % 2) throw corrupt('odd number of items for a dict');
    for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
  };
  const global = (module: string, name: string): PyGlobal => {
    const q = `${module}.${name}`;
    if (!CALLABLE.has(q) && !VALUE_ONLY.has(q)) throw unsafe(`the Python global ${q}`, { global: q });
    return new PyGlobal(module, name);
  };
  const ints = (v: unknown, what: string): number[] => {
    if (!Array.isArray(v) || !v.every((x) => Number.isSafeInteger(x) && (x as number) >= 0)) {
      throw corrupt(`${what} is not a tuple of non-negative integers`);
    }
    return v as number[];
  };
  const rebuildTensor = (a: unknown[], v3: boolean): PyTensor => {
    if (a.length < (v3 ? 7 : 6)) throw corrupt('_rebuild_tensor with too few arguments');
    const [storage, offset, size, stride] = a;
    if (!Number.isSafeInteger(offset) || (offset as number) < 0)
      throw corrupt('tensor storage offset is not an integer');
    const sz = ints(size, 'tensor size');
    const st = ints(stride, 'tensor stride');
    if (sz.length !== st.length) throw corrupt('tensor size and stride differ in length');
    let dtype: PyGlobal | null = null;
    if (v3) {
      if (!(a[6] instanceof PyGlobal) || !(DTYPE_NAMES as readonly string[]).includes(a[6].name)) {
        throw corrupt('_rebuild_tensor_v3 without a dtype');
      }
      dtype = a[6];
    }
    return new PyTensor(storage, offset as number, sz, st, dtype);
  };
  const reduce = (fn: unknown, args: unknown): unknown => {
    if (!(fn instanceof PyGlobal)) throw unsafe('a call of something that is not a global', { opcode: 'REDUCE' });
    if (!Array.isArray(args)) throw corrupt('REDUCE arguments are not a tuple');
    switch (fn.qualified) {
      case 'collections.OrderedDict': {
        const d: PyDict = new Map();
        if (args.length === 0) return d;
        if (args.length === 1 && Array.isArray(args[0])) {
          for (const kv of args[0]) {
            if (!Array.isArray(kv) || kv.length !== 2) throw corrupt('OrderedDict item is not a pair');
            d.set(kv[0], kv[1]);
          }
          return d;
        }
        throw corrupt('OrderedDict with unexpected arguments');
      }
      case 'torch._utils._rebuild_tensor_v2':
        return rebuildTensor(args, false);
      case 'torch._utils._rebuild_tensor_v3':
        return rebuildTensor(args, true);
      case 'torch._utils._rebuild_parameter':
      case 'torch._utils._rebuild_parameter_with_state':
        if (!(args[0] instanceof PyTensor)) throw corrupt('_rebuild_parameter of something that is not a tensor');
        return args[0];
      case '_codecs.encode': {
        // Protocol 2 writes bytes as _codecs.encode(str, 'latin1').
        const [s, enc] = args;
        if (typeof s !== 'string') throw corrupt('_codecs.encode of a non-string');
        if (enc === 'latin1' || enc === 'latin-1') {
          const out = new Uint8Array(s.length);
          for (let i = 0; i < s.length; i++) {
            const c = s.charCodeAt(i);
            if (c > 0xff) throw corrupt('_codecs.encode: character outside latin1');
            out[i] = c;
          }
          return out;
        }
        if (enc === 'utf-8' || enc === 'utf8') return new TextEncoder().encode(s);
        throw unsafe(`_codecs.encode with encoding ${String(enc)}`, { global: '_codecs.encode' });
      }
      default:
        throw unsafe(`a call of ${fn.qualified}`, { global: fn.qualified });
    }
  };

  for (;;) {
    opPos = pos;
    const op = u8();
    switch (op) {
      case 0x80:
        u8();
        break; // PROTO: any of 2-5 reads the same here
      case 0x95:
        u64();
        break; // FRAME: framing is only a read-ahead hint
      case 0x2e: {
        // STOP
        if (stack.length !== 1 || marks.length) throw corrupt('STOP with an unbalanced stack');
        return { value: stack[0], end: pos };
      }
      case 0x28:
        marks.push(stack.length);
        break; // MARK
      case 0x30:
        pop();
        break; // POP
      case 0x7d:
        stack.push(new Map());
        break; // EMPTY_DICT
      case 0x5d:
        stack.push([]);
        break; // EMPTY_LIST
      case 0x29:
        stack.push(Object.freeze([]));
        break; // EMPTY_TUPLE
      case 0x74:
        stack.push(Object.freeze(popMark()));
        break; // TUPLE
      case 0x85:
      case 0x86:
      case 0x87: {
        // TUPLE1/2/3
        const n = op - 0x84;
        if (stack.length - n < (marks.length ? marks[marks.length - 1] : 0)) throw corrupt('the stack is empty');
        stack.push(Object.freeze(stack.splice(stack.length - n)));
        break;
      }
      case 0x64: {
        const d: PyDict = new Map();
        setItems(d, popMark());
        stack.push(d);
        break;
      } // DICT
      case 0x6c:
        stack.push(popMark());
        break; // LIST
      case 0x61: {
        const v = pop();
        asList(top()).push(v);
        break;
      } // APPEND
      case 0x65: {
        const items = popMark();
        asList(top()).push(...items);
        break;
      } // APPENDS
      case 0x73: {
        const v = pop();
        const k = pop();
        asDict(top()).set(k, v);
        break;
      } // SETITEM
      case 0x75: {
        const items = popMark();
        setItems(asDict(top()), items);
        break;
      } // SETITEMS
      case 0x4a:
        stack.push(view.getInt32(need(4), true));
        break; // BININT
      case 0x4b:
        stack.push(u8());
        break; // BININT1
      case 0x4d:
        stack.push(u16());
        break; // BININT2
      case 0x8a:
        stack.push(longLE(u8()));
        break; // LONG1
      case 0x8b: {
        // LONG4
        const n = view.getInt32(need(4), true);
        if (n < 0) throw corrupt('negative LONG4 length');
        stack.push(longLE(n));
        break;
      }
      case 0x47:
        stack.push(view.getFloat64(need(8), false));
        break; // BINFLOAT is big-endian
      case 0x4e:
        stack.push(null);
        break; // NONE
      case 0x88:
        stack.push(true);
        break; // NEWTRUE
      case 0x89:
        stack.push(false);
        break; // NEWFALSE
      case 0x58:
        stack.push(text(u32()));
        break; // BINUNICODE
      case 0x8c:
        stack.push(text(u8()));
        break; // SHORT_BINUNICODE
      case 0x8d:
        stack.push(text(u64()));
        break; // BINUNICODE8
      case 0x54: {
        // BINSTRING (signed length)
        const n = view.getInt32(need(4), true);
        if (n < 0) throw corrupt('negative BINSTRING length');
        stack.push(text(n));
        break;
      }
      case 0x55:
        stack.push(text(u8()));
        break; // SHORT_BINSTRING: decoded as utf-8, as torch.load does
      case 0x42:
        stack.push(bytes(u32()));
        break; // BINBYTES
      case 0x43:
        stack.push(bytes(u8()));
        break; // SHORT_BINBYTES
      case 0x8e:
        stack.push(bytes(u64()));
        break; // BINBYTES8
      case 0x71:
        memo.set(u8(), top());
        break; // BINPUT
      case 0x72:
        memo.set(u32(), top());
        break; // LONG_BINPUT
      case 0x94:
        memo.set(memo.size, top());
        break; // MEMOIZE
      case 0x68:
        stack.push(get(u8()));
        break; // BINGET
      case 0x6a:
        stack.push(get(u32()));
        break; // LONG_BINGET
      case 0x63: {
        const m = line();
        stack.push(global(m, line()));
        break;
      } // GLOBAL
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw corrupt('STACK_GLOBAL of non-strings');
        stack.push(global(module, name));
        break;
      }
      case 0x52: {
        const args = pop();
        stack.push(reduce(pop(), args));
        break;
      } // REDUCE
      case 0x62: {
        // BUILD: only the _metadata an OrderedDict state dict carries, which is not needed
        pop();
        if (!(top() instanceof Map))
          throw unsafe('BUILD (setting object state) on something other than a dict', { opcode: 'BUILD' });
        break;
      }
      case 0x51: {
        // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad) throw corrupt('a persistent id where none is expected');
        stack.push(opts.persistentLoad(pid));
        break;
      }
      default: {
        const name = OPCODE_NAMES[op];
        if (name) throw unsafe(`the pickle opcode ${name}`, { opcode: name });
        throw corrupt(`0x${op.toString(16).padStart(2, '0')} is not a pickle opcode`);
      }
    }
  }
}
