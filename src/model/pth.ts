// Reads PyTorch checkpoints (.pth) without Python: the zip format of torch >= 1.6 and the legacy pickle
// stream of older torch (pth-file.ts). The pickle is read by the refusing VM in pickle.ts; the state dict is picked
// and its tensors read out in pth-state.ts.
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { GpenLabError, errorMessage, isGpenLabError } from '../errors.js';
import { assertReadableFile } from '../io/files.js';
import { readAt, readLegacyPth, readZipPth } from './pth-file.js';
import { REDO_FIX, corrupt, type Checkpoint } from './pth-state.js';

export type { Checkpoint } from './pth-state.js';

export interface ReadPthOptions {
  /** Top-level key holding the state dict; without it the usual ones are tried. */
  key?: string;
}

export async function readPth(file: string, opts: ReadPthOptions = {}): Promise<Checkpoint> {
  await assertReadableFile(file, 'a PyTorch checkpoint (.pth)');
  let fh: FileHandle | undefined;
  try {
    fh = await fs.open(file, 'r');
    const size = (await fh.stat()).size;
    if (size === 0) throw corrupt(file, 'the file is empty (0 bytes)');
    const head = await readAt(fh, file, size, 0, Math.min(size, 512), 'the header');
    if (head[0] === 0x50 && head[1] === 0x4b && (head[2] === 3 || head[2] === 5))
      return await readZipPth(fh, file, size, opts.key);
    if (head[0] === 0x80 && head[1] >= 2 && head[1] <= 5) return await readLegacyPth(fh, file, size, opts.key);
    if (size > 262 && new TextDecoder().decode(await readAt(fh, file, size, 257, 5, 'the header')) === 'ustar') {
      throw new GpenLabError(
        'E_FORMAT_UNKNOWN',
        `${file} is a tar-format checkpoint from a very old torch, which gpen-lab does not read`,
        'Load it with an old torch and re-save it: torch.save(model.state_dict(), path).',
        { input: file },
      );
    }
    throw new GpenLabError(
      'E_FORMAT_UNKNOWN',
      `${file} is not a PyTorch checkpoint: it starts with neither a zip header (PK) nor a pickle (0x80)`,
      'Pass the .pth file of a GPEN generator, e.g. GPEN-BFR-512.pth.',
      { input: file },
    );
  } catch (e) {
    if (isGpenLabError(e)) throw e;
    throw new GpenLabError(
      'E_PTH_CORRUPT',
      `${file} is not a readable PyTorch checkpoint: ${errorMessage(e)}`,
      REDO_FIX,
      { input: file },
      { cause: e },
    );
  } finally {
    await fh?.close();
  }
}
