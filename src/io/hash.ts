// Content hashes of input files, streamed so a 1 GB model never sits in memory twice.
import { createReadStream } from 'node:fs';
import { createHash } from 'node:crypto';
import { GpenLabError, errorMessage } from '../errors.js';
import { assertReadableFile } from './files.js';

/** Lower-case hex SHA-256 of a file's bytes. */
export async function sha256File(file: string): Promise<string> {
  await assertReadableFile(file, 'a file to hash');
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  } catch (e) {
    throw new GpenLabError(
      'E_FILE_UNREADABLE',
      `Input file cannot be read: ${file}: ${errorMessage(e)}`,
      'Check the file and the disk.',
      { input: file },
    );
  }
  return hash.digest('hex');
}
