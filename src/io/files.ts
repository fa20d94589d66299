// File helpers shared by every writer: inputs are checked with a coded error, outputs are written atomically.
import { promises as fs, constants as fsc } from 'node:fs';
import path from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { GpenLabError, errorMessage } from '../errors.js';

/** Throws E_FILE_MISSING / E_FILE_UNREADABLE for a path that cannot be read as a file. */
export async function assertReadableFile(file: string, what: string): Promise<void> {
  let st;
  try {
    st = await fs.stat(file);
  } catch {
    throw new GpenLabError('E_FILE_MISSING', `Input file is missing: ${file} (expected ${what})`,
      `Check the path; it is resolved from ${process.cwd()}.`, { input: file });
  }
  if (!st.isFile()) {
    throw new GpenLabError('E_FILE_UNREADABLE', `Input is not a file: ${file} (expected ${what})`,
      'Pass the path of a file, not a directory.', { input: file });
  }
  try {
    await fs.access(file, fsc.R_OK);
  } catch (e) {
    throw new GpenLabError('E_FILE_UNREADABLE', `Input file cannot be read: ${file}: ${errorMessage(e)}`,
      'Check the file permissions.', { input: file });
  }
}

export async function readInputFile(file: string, what: string): Promise<Buffer> {
  await assertReadableFile(file, what);
  try {
    return await fs.readFile(file);
  } catch (e) {
    throw new GpenLabError('E_FILE_UNREADABLE', `Input file cannot be read: ${file}: ${errorMessage(e)}`,
      'Check the file and the disk.', { input: file });
  }
}

/**
 * Writes to a temporary file beside the target and renames it into place: never a half-written output. `fsync: false`
 * leaves the flush to disk to the system (the rename is still atomic for every reader; only a power cut can lose the
 * file): restore's images, which any other image writer (sharp, OpenCV) leaves so too; two fsyncs were ~6-10 ms of a
 * cold start on the H200's disk.
 */
export async function writeFileAtomicSafe(file: string, data: Uint8Array | string, opts: { fsync?: boolean } = {}): Promise<void> {
  try {
    await fs.mkdir(path.dirname(path.resolve(file)), { recursive: true });
    await writeFileAtomic(file, data as Buffer | string, { fsync: opts.fsync ?? true });
  } catch (e) {
    throw new GpenLabError('E_WRITE', `Could not write ${file}: ${errorMessage(e)}`,
      'Check that the output folder is writable and the disk has room.', { input: file });
  }
}
