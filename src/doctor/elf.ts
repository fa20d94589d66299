// A small ELF64 little-endian reader (x86-64 shared libraries): DT_NEEDED, SONAME, RUNPATH/RPATH and a section by
// name, read with positioned reads so that a 230 MB library is never loaded whole. Hand-written: three dynamic tags
// and a section lookup do not need an ELF library.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import path from 'node:path';
import { GpenLabError } from '../errors.js';

export interface ElfDynamic {
  needed: string[];
  soname: string | null;
  runpath: string[];
  rpath: string[];
}

interface Section {
  name: number;
  type: number;
  addr: bigint;
  offset: number;
  size: number;
  link: number;
}

const DT_NULL = 0n,
  DT_NEEDED = 1n,
  DT_STRTAB = 5n,
  DT_SONAME = 14n,
  DT_RPATH = 15n,
  DT_RUNPATH = 29n;
const SHT_DYNAMIC = 6;

class Reader {
  private readonly fd: number;
  readonly size: number;
  constructor(readonly file: string) {
    try {
      this.fd = openSync(file, 'r');
    } catch (e) {
      throw new GpenLabError('E_FILE_MISSING', `Cannot open ${file}: ${(e as Error).message}`, 'Check the path.', {
        input: file,
      });
    }
    this.size = fstatSync(this.fd).size;
  }
  read(offset: number, length: number): Buffer {
    if (offset < 0 || length < 0 || offset + length > this.size)
      throw bad(this.file, `it is truncated (needs bytes ${offset}..${offset + length} of ${this.size})`);
    const b = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const n = readSync(this.fd, b, got, length - got, offset + got);
      if (n <= 0) break;
      got += n;
    }
    if (got < length) throw bad(this.file, 'it is truncated');
    return b;
  }
  close(): void {
    closeSync(this.fd);
  }
}

function bad(file: string, why: string): GpenLabError {
  return new GpenLabError(
    'E_FORMAT_UNKNOWN',
    `${file} is not a readable ELF64 little-endian shared library: ${why}`,
    'Pass a Linux x86-64 shared library (.so).',
    { input: file },
  );
}

function sections(r: Reader): Section[] {
  const h = r.read(0, 64);
  if (h.readUInt32BE(0) !== 0x7f454c46) throw bad(r.file, 'no ELF magic');
  if (h[4] !== 2) throw bad(r.file, 'it is 32-bit');
  if (h[5] !== 1) throw bad(r.file, 'it is big-endian');
  const shoff = Number(h.readBigUInt64LE(0x28));
  const shentsize = h.readUInt16LE(0x3a);
  const shnum = h.readUInt16LE(0x3c);
  if (shoff === 0 || shnum === 0) return [];
  const t = r.read(shoff, shentsize * shnum);
  const out: Section[] = [];
  for (let i = 0; i < shnum; i++) {
    const o = i * shentsize;
    out.push({
      name: t.readUInt32LE(o),
      type: t.readUInt32LE(o + 4),
      addr: t.readBigUInt64LE(o + 0x10),
      offset: Number(t.readBigUInt64LE(o + 0x18)),
      size: Number(t.readBigUInt64LE(o + 0x20)),
      link: t.readUInt32LE(o + 0x28),
    });
  }
  return out;
}

function cstr(buf: Buffer, at: number): string {
  const end = buf.indexOf(0, at);
  return buf.toString('latin1', at, end < 0 ? buf.length : end);
}

function sectionNames(r: Reader, secs: Section[]): string[] {
  const h = r.read(0, 64);
  const shstrndx = h.readUInt16LE(0x3e);
  const strs = secs[shstrndx];
  if (!strs) return secs.map(() => '');
  const tab = r.read(strs.offset, strs.size);
  return secs.map((s) => cstr(tab, s.name));
}

export function readElfDynamic(file: string): ElfDynamic {
  const r = new Reader(file);
  try {
    const secs = sections(r);
    const dyn = secs.find((s) => s.type === SHT_DYNAMIC);
    const out: ElfDynamic = { needed: [], soname: null, runpath: [], rpath: [] };
    if (!dyn) return out;
    const d = r.read(dyn.offset, dyn.size);
    // strings: the section the dynamic section links to (.dynstr)
    const strSec = secs[dyn.link];
    const strtab = r.read(strSec.offset, strSec.size);
    const tags: [bigint, number][] = [];
    for (let o = 0; o + 16 <= d.length; o += 16) {
      const tag = d.readBigInt64LE(o);
      if (tag === DT_NULL) break;
      if (tag === DT_STRTAB) continue;
      tags.push([tag, Number(d.readBigUInt64LE(o + 8))]);
    }
    for (const [tag, v] of tags) {
      if (tag === DT_NEEDED) out.needed.push(cstr(strtab, v));
      else if (tag === DT_SONAME) out.soname = cstr(strtab, v);
      else if (tag === DT_RUNPATH) out.runpath.push(...cstr(strtab, v).split(':').filter(Boolean));
      else if (tag === DT_RPATH) out.rpath.push(...cstr(strtab, v).split(':').filter(Boolean));
    }
    return out;
  } finally {
    r.close();
  }
}

/** Replaces $ORIGIN / ${ORIGIN} by the library's folder, as the loader does. */
export function expandOrigin(entries: string[], file: string): string[] {
  const dir = path.dirname(path.resolve(file));
  return entries.map((e) => e.replace(/\$\{ORIGIN\}|\$ORIGIN/g, dir));
}

export function findSection(file: string, name: string): { offset: number; size: number } | null {
  const r = new Reader(file);
  try {
    const secs = sections(r);
    const names = sectionNames(r, secs);
    const i = names.indexOf(name);
    return i < 0 ? null : { offset: secs[i].offset, size: secs[i].size };
  } finally {
    r.close();
  }
}

/** Reads `length` bytes at `offset` of a file (for the fatbin reader). */
export function readAt(file: string, offset: number, length: number): Buffer {
  const r = new Reader(file);
  try {
    return r.read(offset, Math.min(length, r.size - offset));
  } finally {
    r.close();
  }
}
