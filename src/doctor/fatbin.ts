// Reads the CUDA fatbins in a shared library's .nv_fatbin section: which GPU architectures have machine code (cubin)
// and which ship PTX, so the doctor can predict "no kernel image is available for execution on the device" before a
// session is tried. Headers only, by positioned reads (the CUDA provider's section is 166 MB).
import { findSection, readAt } from './elf.js';
import type { FatbinSummary } from './types.js';

export const FATBIN_MAGIC = 0xba55ed50;
const KIND_PTX = 1;
const KIND_CUBIN = 2;
/** Offset of the architecture (e.g. 90 for sm_90) in an entry header; checked against nvcc 13.0 output. */
const SM_OFFSET = 28;
/** Offsets of an entry's version (minor, major): for PTX the PTX ISA (".version 8.2" in its text, read on 0.2.1's). */
const MINOR_OFFSET = 24;
const MAJOR_OFFSET = 26;

/** Reads bytes of the section: (offset within the section, length) -> bytes (shorter at the end). */
export type SectionReader = (offset: number, length: number) => Buffer;

/** Parses concatenated fatbin containers; `size` is the section's length. */
export function parseFatbin(read: SectionReader, size: number, file = '(buffer)'): FatbinSummary {
  const sm = new Set<number>();
  const ptx = new Set<number>();
  let entries = 0;
  let isa: [number, number] | null = null;
  let p = 0;
  while (p + 16 <= size) {
    let head = read(p, 16);
    if (head.readUInt32LE(0) !== FATBIN_MAGIC) {
      // padding between containers: look for the next magic at 8-byte alignment
      const win = read(p, Math.min(4096, size - p));
      let q = 8;
      while (q + 4 <= win.length && win.readUInt32LE(q) !== FATBIN_MAGIC) q += 8;
      if (q + 4 > win.length) {
        p += Math.max(8, win.length - 8);
        continue;
      }
      p += q;
      head = read(p, 16);
      if (head.length < 16) break;
    }
    const hs = head.readUInt16LE(6);
    const fs = Number(head.readBigUInt64LE(8));
    const end = Math.min(size, p + hs + fs);
    let e = p + hs;
    while (e + 32 <= end) {
      const h = read(e, 32);
      const kind = h.readUInt16LE(0);
      const ehs = h.readUInt32LE(4);
      const padded = Number(h.readBigUInt64LE(8));
      const arch = h.readUInt32LE(SM_OFFSET);
      if (ehs < 32) break;
      entries++;
      if (kind === KIND_CUBIN) sm.add(arch);
      else if (kind === KIND_PTX) {
        ptx.add(arch);
        const v: [number, number] = [h.readUInt16LE(MAJOR_OFFSET), h.readUInt16LE(MINOR_OFFSET)];
        if (v[0] > 0 && (!isa || v[0] > isa[0] || (v[0] === isa[0] && v[1] > isa[1]))) isa = v;
      }
      e += ehs + padded;
    }
    p = p + hs + fs;
  }
  const sorted = (s: Set<number>) => [...s].sort((a, b) => a - b);
  return { file, sm: sorted(sm), ptx: sorted(ptx), entries, ...(isa ? { ptxIsa: `${isa[0]}.${isa[1]}` } : {}) };
}

/**
 * The oldest CUDA whose driver JIT-compiles PTX of ISA `isa` (PTX ISA 8.0 came with CUDA 12.0, 8.2 with 12.2,
 * 8.5 with 12.5, 8.7 with 12.8, 8.8 with 12.9, 9.0 with 13.0); null when unknown.
 */
export function cudaForPtxIsa(isa: string): string | null {
  const table: Record<string, string> = {
    '7.8': '11.8',
    '8.0': '12.0',
    '8.1': '12.1',
    '8.2': '12.2',
    '8.3': '12.3',
    '8.4': '12.4',
    '8.5': '12.5',
    '8.6': '12.7',
    '8.7': '12.8',
    '8.8': '12.9',
    '9.0': '13.0',
  };
  return table[isa] ?? null;
}

/** The architectures compiled into a shared library (empty lists when it has no .nv_fatbin). */
export function readFatbin(file: string): FatbinSummary {
  const sec = findSection(file, '.nv_fatbin');
  if (!sec) return { file, sm: [], ptx: [], entries: 0 };
  return parseFatbin((o, n) => readAt(file, sec.offset + o, Math.min(n, sec.size - o)), sec.size, file);
}

/**
 * Whether a GPU of compute capability "X.Y" finds kernels: a cubin of the same major with minor <= Y, or PTX of an
 * architecture <= XY (JIT-compiled at the first start, slowly).
 */
export function kernelVerdict(
  cc: string,
  fb: FatbinSummary,
): { runs: boolean; how: 'cubin' | 'ptx-jit' | null; reason: string } {
  const [maj, min] = cc.split('.').map(Number);
  const gpu = maj * 10 + (min || 0);
  const list = `cubins for ${fb.sm.length ? fb.sm.map((s) => `sm_${s}`).join(', ') : 'no architecture'}${fb.ptx.length ? ` and PTX for ${fb.ptx.map((s) => `compute_${s}`).join(', ')}` : ', no PTX'}`;
  const cubin = fb.sm.filter((s) => Math.floor(s / 10) === maj && s % 10 <= (min || 0));
  if (cubin.length)
    return {
      runs: true,
      how: 'cubin',
      reason: `sm_${gpu} GPU: runs the sm_${Math.max(...cubin)} cubin (this build has ${list})`,
    };
  const jit = fb.ptx.filter((s) => s <= gpu);
  if (jit.length)
    return {
      runs: true,
      how: 'ptx-jit',
      reason: `sm_${gpu} GPU: no cubin for it, PTX compute_${Math.max(...jit)} is JIT-compiled at start (slow first start); this build has ${list}`,
    };
  return { runs: false, how: null, reason: `no kernel image for sm_${gpu}: this build has ${list}` };
}
