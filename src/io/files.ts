// File helpers shared by every writer: inputs are checked with a coded error, outputs are written atomically.
import { promises as fs, constants as fsc } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { GpenLabError, errorMessage } from '../errors.js';

/** Throws E_FILE_MISSING / E_FILE_UNREADABLE for a path that cannot be read as a file. */
export async function assertReadableFile(file: string, what: string): Promise<void> {
  let st;
  try {
    st = await fs.stat(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') {
      throw new GpenLabError(
        'E_FILE_UNREADABLE',
        `Input file cannot be read: ${file} is a loop of symbolic links (expected ${what})`,
        'Point the link at the file itself.',
        { input: file },
      );
    }
    throw new GpenLabError(
      'E_FILE_MISSING',
      `Input file is missing: ${file} (expected ${what})`,
      `Check the path; it is resolved from ${process.cwd()}.`,
      { input: file },
    );
  }
  if (!st.isFile()) {
    throw new GpenLabError(
      'E_FILE_UNREADABLE',
      `Input is not a file: ${file} (expected ${what})`,
      'Pass the path of a file, not a directory.',
      { input: file },
    );
  }
  try {
    await fs.access(file, fsc.R_OK);
  } catch (e) {
    throw new GpenLabError(
      'E_FILE_UNREADABLE',
      `Input file cannot be read: ${file}: ${errorMessage(e)}`,
      'Check the file permissions.',
      { input: file },
    );
  }
}

export async function readInputFile(file: string, what: string): Promise<Buffer> {
  await assertReadableFile(file, what);
  try {
    return await fs.readFile(file);
  } catch (e) {
    throw new GpenLabError(
      'E_FILE_UNREADABLE',
      `Input file cannot be read: ${file}: ${errorMessage(e)}`,
      'Check the file and the disk.',
      { input: file },
    );
  }
}

/** What a failed write's system error means for the user, and what to do about it. */
function writeFailure(e: unknown): { cause: string; fix: string; code: string | null } {
  const code = (e as NodeJS.ErrnoException)?.code ?? null;
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return {
        code,
        cause: 'no space left on the device',
        fix: 'Free space on that disk, or write to another folder.',
      };
    case 'EROFS':
      return { code, cause: 'the file system is read-only', fix: 'Write to a folder on a writable file system.' };
    case 'EACCES':
    case 'EPERM':
      return {
        code,
        cause: 'permission denied',
        fix: 'Write to a folder you may write to, or change its permissions.',
      };
    case 'ENOTDIR':
    case 'EEXIST':
      return {
        code,
        cause: 'a part of the path is a file, not a folder',
        fix: 'Choose an output path whose folders are folders.',
      };
    case 'ENOENT':
      return {
        code,
        cause: 'a folder cannot be created there',
        fix: 'Choose an output folder on a writable file system (not under /proc or /sys).',
      };
    default:
      return { code, cause: errorMessage(e), fix: 'Check that the output folder is writable and the disk has room.' };
  }
}

/**
 * Writes to a temporary file beside the target and renames it into place: the whole file or nothing, never a
 * half-written output. Every byte is accounted for (a full disk can accept part of a write without an error), and on
 * any failure the temporary file is removed. `fsync: false` leaves the flush to disk to the system (the rename is
 * still atomic for every reader; only a power cut can lose the file): restore's images, which any other image writer
 * (sharp, OpenCV) leaves so too.
 */
export async function writeFileAtomicSafe(
  file: string,
  data: Uint8Array | string,
  opts: { fsync?: boolean; noClobber?: boolean } = {},
): Promise<void> {
  const target = path.resolve(file);
  const tmp = `${target}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  let fh: FileHandle | null = null;
  try {
    await makeDirs(path.dirname(target));
    fh = await fs.open(tmp, 'wx');
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    for (let off = 0; off < bytes.byteLength;) {
      const { bytesWritten } = await fh.write(bytes, off, bytes.byteLength - off, off);
      if (bytesWritten <= 0)
        throw Object.assign(new Error(`${off} of ${bytes.byteLength} bytes written`), { code: 'ENOSPC' });
      off += bytesWritten;
    }
    if (opts.fsync ?? true) await fh.sync();
    await fh.close();
    fh = null;
    if (opts.noClobber) await linkNoClobber(tmp, target, file);
    else await fs.rename(tmp, target);
  } catch (e) {
    await fh?.close().catch(() => undefined);
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    if (e instanceof GpenLabError) throw e;
    const f = writeFailure(e);
    throw new GpenLabError('E_WRITE', `Could not write ${file}: ${f.cause}${f.code ? ` (${f.code})` : ''}`, f.fix, {
      input: file,
      cause: f.code,
    });
  }
}

/** An output already there: replacing it was not asked for. */
export function outputExists(file: string): GpenLabError {
  return new GpenLabError(
    'E_OUTPUT_EXISTS',
    `${file} already exists and was not replaced`,
    'Pass --overwrite to replace it, or choose another output folder.',
    { input: file },
  );
}

/**
 * Puts `tmp` in place as `target` only where nothing is there (a hard link fails on an existing name, where a rename
 * would replace it); file systems without hard links get a check, then the rename.
 */
async function linkNoClobber(tmp: string, target: string, file: string): Promise<void> {
  try {
    await fs.link(tmp, target);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw outputExists(file);
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EXDEV') throw e;
    if (
      await fs.lstat(target).then(
        () => true,
        () => false,
      )
    )
      throw outputExists(file);
    await fs.rename(tmp, target);
    return;
  }
  await fs.rm(tmp, { force: true });
}

const errCode = (e: unknown): string | undefined => (e as NodeJS.ErrnoException)?.code;

/**
 * mkdir -p that fails where a folder cannot be made: Node 20's recursive mkdir loops for ever under /proc. The first
 * existing ancestor is found with stat, then each missing level made on its own.
 */
export async function makeDirs(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    const st = await fs.stat(d).catch((e: unknown) => {
      if (errCode(e) === 'ENOENT') return null;
      throw e;
    });
    if (st) {
      if (!st.isDirectory()) throw Object.assign(new Error(`${d} is not a folder`), { code: 'ENOTDIR' });
      break;
    }
    missing.push(d);
    if (path.dirname(d) === d) break;
  }
  for (const d of missing.reverse())
    await fs.mkdir(d).catch((e: unknown) => {
      if (errCode(e) !== 'EEXIST') throw e;
    });
}
