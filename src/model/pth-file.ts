// The two containers torch.save writes: the zip archive of torch >= 1.6 and the legacy stream of pickles followed by
// the raw storages. Tensor bytes are read once, straight into the array the HostTensor keeps.
import type { FileHandle } from 'node:fs/promises';
import type yauzl from 'yauzl';
import { onFirstUse } from '../io/lazy-module.js';
import { errorMessage, isGpenLabError } from '../errors.js';
import { unpickle } from './pickle.js';
import {
  DTYPE_SIZE,
  corrupt,
  finish,
  pick,
  storageLoader,
  usedRoots,
  type Checkpoint,
  type RootStorage,
} from './pth-state.js';

/** yauzl, loaded on first use: a process that reads no .pth does not pay for it. */
const zipLib = onFirstUse<typeof yauzl>('yauzl');
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

/** Reads exactly `len` bytes at `pos` into a fresh buffer (offset 0, so every typed view is aligned). */
export async function readAt(
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

/** A torch >= 1.6 checkpoint: a zip of data.pkl, one entry per storage (data/<key>), and the byte order. */
export async function readZipPth(
  fh: FileHandle,
  file: string,
  size: number,
  dictKey: string | undefined,
): Promise<Checkpoint> {
  const zip = await openZip(file);
  try {
    const roots = new Map<string, RootStorage>();
    const archive = await indexZip(zip, file);
    const pkl = await readEntry(zip, fh, file, size, archive.pkl);
    const order = archive.byteorder
      ? new TextDecoder().decode(await readEntry(zip, fh, file, size, archive.byteorder))
      : 'little';
    const top = unpickle(pkl, { file, persistentLoad: storageLoader(file, roots) }).value;
    const picked = pick(file, top, dictKey);
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
  } finally {
    await closeZip(zip);
  }
}

interface ZipIndex {
  entries: Map<string, yauzl.Entry>;
  /** '<name>/' in front of data.pkl, data/<key> and version. */
  prefix: string;
  pkl: yauzl.Entry;
  byteorder: yauzl.Entry | undefined;
}

async function openZip(file: string): Promise<yauzl.ZipFile> {
  try {
    // autoClose off: entries are read after the central directory; the finally of readZipPth closes it.
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

/** A legacy checkpoint: pickles (magic, protocol, system info, the object, the storage keys), then the storages. */
export async function readLegacyPth(
  fh: FileHandle,
  file: string,
  size: number,
  dictKey: string | undefined,
): Promise<Checkpoint> {
  const roots = new Map<string, RootStorage>();
  const legacy = await parseLegacy(fh, file, size, roots);
  const picked = pick(file, legacy.top, dictKey);
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
    if (count < 0n || !Number.isSafeInteger(nbytes)) throw corrupt(file, `storage ${key} has a bad length ${count}`);
    if (used.has(root)) root.data = await readAt(fh, file, size, pos + 8, nbytes, `storage ${key}`);
    pos += 8 + nbytes;
  }
  if (pos > size) throw corrupt(file, `the storages run to byte ${pos} but the file ends at ${size} (truncated?)`);
  for (const root of used) {
    if (!root.data) throw corrupt(file, `storage ${root.key} is used by a tensor but missing from the storage list`);
  }
  return finish(file, 'legacy', picked, !legacy.littleEndian);
}

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
