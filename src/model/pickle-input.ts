// The bytes of one pickle as the opcode machine reads them: bounds-checked little-endian fields, and its errors,
// each placed at the opcode being run.
import { GpenLabError } from '../errors.js';
import type { PickleErrors } from './pickle-globals.js';

const REFUSED_FIX =
  'Load the file in a Python you trust and re-save the weights alone: ' +
  'torch.save(model.state_dict(), path); gpen-lab reads that.';
const utf8 = new TextDecoder('utf-8');

export class PickleInput implements PickleErrors {
  private readonly view: DataView;
  /** Offset of the next byte to read. */
  pos: number;
  /** Offset of the opcode being run: every error names it. */
  opPos: number;

  constructor(
    private readonly buf: Uint8Array,
    private readonly file: string,
    start: number,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = start;
    this.opPos = start;
  }

  corrupt(why: string, truncated = false): GpenLabError {
    return new GpenLabError(
      'E_PTH_CORRUPT',
      `${this.file} is not a readable PyTorch checkpoint: malformed pickle at byte ${this.opPos}: ${why}`,
      'Download the checkpoint again, or re-save it with torch.save(model.state_dict(), path).',
      { input: this.file, offset: this.opPos, truncated },
    );
  }

  unsafe(what: string, extra: Record<string, unknown>): GpenLabError {
    return new GpenLabError(
      'E_PTH_UNSAFE',
      `${this.file} asks for ${what}, which a state dict of tensors never needs. It was not executed: ` +
        'gpen-lab never imports or runs anything named in a pickle.',
      REFUSED_FIX,
      { input: this.file, offset: this.opPos, ...extra },
    );
  }

  /** Claims the next `n` bytes; returns their offset. */
  private need(n: number): number {
    if (n < 0 || this.pos + n > this.buf.length)
      throw this.corrupt(`it ends at byte ${this.buf.length}, inside an opcode (a truncated file?)`, true);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u8(): number {
    return this.buf[this.need(1)];
  }

  u16(): number {
    return this.view.getUint16(this.need(2), true);
  }

  u32(): number {
    return this.view.getUint32(this.need(4), true);
  }

  i32(): number {
    return this.view.getInt32(this.need(4), true);
  }

  /** A 64-bit length, refused beyond 2^53. */
  u64(): number {
    const v = this.view.getBigUint64(this.need(8), true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw this.corrupt(`length ${v} is out of range`);
    return Number(v);
  }

  /** A big-endian float64 (BINFLOAT). */
  f64be(): number {
    return this.view.getFloat64(this.need(8), false);
  }

  bytes(n: number): Uint8Array {
    const at = this.need(n);
    return this.buf.slice(at, this.pos);
  }

  text(n: number): string {
    const at = this.need(n);
    return utf8.decode(this.buf.subarray(at, this.pos));
  }

  /** A newline-terminated name (GLOBAL). */
  line(): string {
    const nl = this.buf.indexOf(0x0a, this.pos);
    if (nl < 0) throw this.corrupt('a GLOBAL name is not terminated', true);
    const s = utf8.decode(this.buf.subarray(this.pos, nl));
    this.pos = nl + 1;
    return s;
  }

  /** A two's-complement little-endian integer of `n` bytes: a number where safe, else a bigint. */
  longLE(n: number): number | bigint {
    const at = this.need(n);
    const b = this.buf.subarray(at, this.pos);
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (n > 0 && b[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }
}
