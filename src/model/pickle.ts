// A pickle reader for the subset of protocols 2-5 that torch state dicts use. It never imports or calls
// anything: the few allowed globals become plain values, every other global or opcode is refused.
import { reduce, resolveGlobal, type PyDict } from './pickle-globals.js';
import { PickleInput } from './pickle-input.js';

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

/** Reads one pickle starting at `start`. Throws E_PTH_CORRUPT (details.truncated when it ran off the end). */
export function unpickle(buf: Uint8Array, opts: UnpickleOptions, start = 0): UnpickleResult {
  const r = new PickleInput(buf, opts.file, start);
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();

  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1])) {
      throw r.corrupt('the stack is empty');
    }
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) throw r.corrupt('the stack is empty');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) throw r.corrupt('no MARK to pop to');
    return stack.splice(m);
  };
  const get = (i: number): unknown => {
    if (!memo.has(i)) throw r.corrupt(`memo slot ${i} is empty`);
    return memo.get(i);
  };
  const asList = (v: unknown): unknown[] => {
    if (!Array.isArray(v) || Object.isFrozen(v)) throw r.corrupt('APPEND to something that is not a list');
    return v;
  };
  const asDict = (v: unknown): PyDict => {
    if (!(v instanceof Map)) throw r.corrupt('SETITEM on something that is not a dict');
    return v;
  };
  const setItems = (d: PyDict, items: unknown[]): void => {
    if (items.length % 2) throw r.corrupt('odd number of items for a dict');
    for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
  };

  for (;;) {
    r.opPos = r.pos;
    const op = r.u8();
    switch (op) {
      case 0x80:
        r.u8();
        break; // PROTO: any of 2-5 reads the same here
      case 0x95:
        r.u64();
        break; // FRAME: framing is only a read-ahead hint
      case 0x2e: {
        // STOP
        if (stack.length !== 1 || marks.length) throw r.corrupt('STOP with an unbalanced stack');
        return { value: stack[0], end: r.pos };
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
        if (stack.length - n < (marks.length ? marks[marks.length - 1] : 0)) throw r.corrupt('the stack is empty');
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
        stack.push(r.i32());
        break; // BININT
      case 0x4b:
        stack.push(r.u8());
        break; // BININT1
      case 0x4d:
        stack.push(r.u16());
        break; // BININT2
      case 0x8a:
        stack.push(r.longLE(r.u8()));
        break; // LONG1
      case 0x8b: {
        // LONG4
        const n = r.i32();
        if (n < 0) throw r.corrupt('negative LONG4 length');
        stack.push(r.longLE(n));
        break;
      }
      case 0x47:
        stack.push(r.f64be());
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
        stack.push(r.text(r.u32()));
        break; // BINUNICODE
      case 0x8c:
        stack.push(r.text(r.u8()));
        break; // SHORT_BINUNICODE
      case 0x8d:
        stack.push(r.text(r.u64()));
        break; // BINUNICODE8
      case 0x54: {
        // BINSTRING (signed length)
        const n = r.i32();
        if (n < 0) throw r.corrupt('negative BINSTRING length');
        stack.push(r.text(n));
        break;
      }
      case 0x55:
        stack.push(r.text(r.u8()));
        break; // SHORT_BINSTRING: decoded as utf-8, as torch.load does
      case 0x42:
        stack.push(r.bytes(r.u32()));
        break; // BINBYTES
      case 0x43:
        stack.push(r.bytes(r.u8()));
        break; // SHORT_BINBYTES
      case 0x8e:
        stack.push(r.bytes(r.u64()));
        break; // BINBYTES8
      case 0x71:
        memo.set(r.u8(), top());
        break; // BINPUT
      case 0x72:
        memo.set(r.u32(), top());
        break; // LONG_BINPUT
      case 0x94:
        memo.set(memo.size, top());
        break; // MEMOIZE
      case 0x68:
        stack.push(get(r.u8()));
        break; // BINGET
      case 0x6a:
        stack.push(get(r.u32()));
        break; // LONG_BINGET
      case 0x63: {
        const m = r.line();
        stack.push(resolveGlobal(m, r.line(), r));
        break;
      } // GLOBAL
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw r.corrupt('STACK_GLOBAL of non-strings');
        stack.push(resolveGlobal(module, name, r));
        break;
      }
      case 0x52: {
        const args = pop();
        stack.push(reduce(pop(), args, r));
        break;
      } // REDUCE
      case 0x62: {
        // BUILD: only the _metadata an OrderedDict state dict carries, which is not needed
        pop();
        if (!(top() instanceof Map))
          throw r.unsafe('BUILD (setting object state) on something other than a dict', { opcode: 'BUILD' });
        break;
      }
      case 0x51: {
        // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad) throw r.corrupt('a persistent id where none is expected');
        stack.push(opts.persistentLoad(pid));
        break;
      }
      default: {
        const name = OPCODE_NAMES[op];
        if (name) throw r.unsafe(`the pickle opcode ${name}`, { opcode: name });
        throw r.corrupt(`0x${op.toString(16).padStart(2, '0')} is not a pickle opcode`);
      }
    }
  }
}
