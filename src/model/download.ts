// `models get`: one catalog file over HTTP(S) into the models folder. Bytes go to `FILE.part` (resumed with a Range
// request after a cut), and only a complete file whose size is the one expected is renamed to its name, its sha256
// recorded beside it (model/fetched.ts); nothing ever appears at the final name half-written.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { GpenLabError, errorMessage } from '../errors.js';
import { makeDirs, writeFileAtomicSafe } from '../io/files.js';
import type { CatalogEntry } from './catalog.js';
import { urlFor } from './catalog.js';
import type { FetchRecord } from './fetched.js';
import { getCommand, readRecord, verifyFetched, writeRecord } from './fetched.js';

export const DEFAULT_STALL_MS = 30_000;

export interface Progress {
  /** Bytes in the `.part` file so far, resumed ones included. */
  received: number;
  /** The whole file's size, where the server or the catalog says it. */
  total: number | null;
  /** The byte this transfer started from (0 unless it resumed). */
  resumedFrom: number;
}

export interface GetOptions {
  /** The models folder. */
  dir: string;
  /** A base URL to fetch `<base>/<file>` from instead of upstream's link (a mirror, a test server). */
  baseUrl?: string | null;
  /** Abort when no byte arrives for this long (headers or body). */
  stallMs?: number;
  /** Fetch again even where a recorded file is there. */
  force?: boolean;
  onProgress?: (p: Progress) => void;
}

export interface GetResult {
  name: string;
  file: string;
  url: string;
  size: number;
  sha256: string;
  /** The byte the last transfer resumed from (0: from the start). */
  resumedFrom: number;
  /** The file was there already and matched its record: nothing was fetched. */
  alreadyThere: boolean;
}

/** What the `.part` file was fetched from: a resume asks the same URL for the same version of the file. */
interface PartMeta {
  url: string;
  total: number | null;
  etag: string | null;
  lastModified: string | null;
}

function netError(url: string, message: string, fix: string, details: Record<string, unknown> = {}): GpenLabError {
  return new GpenLabError('E_NETWORK', message, fix, { input: url, url, ...details });
}

/** The words for a refused or failed connection, from the system error under fetch's "fetch failed". */
function connectionFailure(e: unknown): string {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code ?? (e as NodeJS.ErrnoException).code;
  const words: Record<string, string> = {
    ECONNREFUSED: 'the connection was refused',
    ENOTFOUND: 'the host name does not resolve',
    EAI_AGAIN: 'the host name could not be resolved now',
    ECONNRESET: 'the connection was reset',
    ETIMEDOUT: 'the connection timed out',
    EHOSTUNREACH: 'the host is unreachable',
    ENETUNREACH: 'the network is unreachable',
  };
  return code && words[code] ? `${words[code]} (${code})` : (cause?.message ?? errorMessage(e));
}

/** A lock beside the `.part` file: two processes appending to it would corrupt it. A dead process's lock is taken over. */
async function lock(file: string, url: string): Promise<() => Promise<void>> {
  const lockFile = `${file}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(lockFile, String(process.pid), { flag: 'wx' });
      return () => rm(lockFile, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number(await readFile(lockFile, 'utf8').catch(() => ''));
      if (Number.isInteger(pid) && pid > 0 && alive(pid)) {
        throw new GpenLabError(
          'E_BUSY',
          `Another gpen-lab (pid ${pid}) is fetching ${path.basename(file)} into ${path.dirname(file)}`,
          `Wait for it to finish, or end process ${pid} and run the command again (it resumes).`,
          { input: url, pid, lock: lockFile },
        );
      }
      await rm(lockFile, { force: true });
    }
  }
  throw new GpenLabError('E_BUSY', `Could not take the lock ${lockFile}`, 'Run the command again.', { input: url });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function hashPrefix(file: string, bytes: number): Promise<Hash> {
  const hash = createHash('sha256');
  if (bytes > 0)
    for await (const chunk of createReadStream(file, { start: 0, end: bytes - 1 })) hash.update(chunk as Buffer);
  return hash;
}

async function readPartMeta(file: string): Promise<PartMeta | null> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as PartMeta;
  } catch {
    return null;
  }
}

/**
 * Fetches one catalog entry into `opts.dir`. A recorded file already there is checked (model/fetched.ts) and kept.
 * A failure keeps the `.part` file where the bytes so far can be resumed, and removes it where they cannot (a wrong size).
 */
export async function getModel(entry: CatalogEntry, opts: GetOptions): Promise<GetResult> {
  const url = urlFor(entry, opts.baseUrl ?? undefined);
  if (!url) {
    throw new GpenLabError(
      'E_ARGUMENT',
      `${entry.name} has no direct download: ${entry.source}`,
      `Download it there and pass the file to --model, or pass --url BASE of a mirror that serves ${entry.file}.`,
      { input: entry.name },
    );
  }
  const dir = path.resolve(opts.dir);
  const final = path.join(dir, entry.file);
  const part = `${final}.part`;
  const metaFile = `${part}.json`;
  const retry = `${getCommand(entry.name, opts.dir)}${opts.baseUrl ? ` --url ${opts.baseUrl}` : ''}`;
  if (!opts.force && existsSync(final)) {
    const record = await readRecord(final);
    if (!record) {
      throw new GpenLabError(
        'E_OUTPUT_EXISTS',
        `${final} is already there, but no record says gpen-lab fetched it (its sha256 is unknown)`,
        `Pass --force to fetch it again over it, or pass the file to --model as it is.`,
        { input: final },
      );
    }
    await verifyFetched(final, record);
    return {
      name: entry.name,
      file: final,
      url: record.url,
      size: record.size,
      sha256: record.sha256,
      resumedFrom: 0,
      alreadyThere: true,
    };
  }
  try {
    await makeDirs(dir);
  } catch (e) {
    throw new GpenLabError(
      'E_WRITE',
      `Could not make the models folder ${dir}: ${errorMessage(e)}`,
      'Pass --dir with a writable folder, or set GPEN_LAB_MODELS.',
      { input: dir },
    );
  }
  const unlock = await lock(part, url);
  try {
    return await transfer(entry, url, final, part, metaFile, opts, retry);
  } finally {
    await unlock();
  }
}

async function transfer(
  entry: CatalogEntry,
  url: string,
  final: string,
  part: string,
  metaFile: string,
  opts: GetOptions,
  retry: string,
): Promise<GetResult> {
  const stallMs = opts.stallMs ?? DEFAULT_STALL_MS;
  const discard = () => Promise.all([rm(part, { force: true }), rm(metaFile, { force: true })]);
  const meta = await readPartMeta(metaFile);
  let offset = 0;
  if (!opts.force && meta?.url === url && existsSync(part)) offset = (await stat(part)).size;
  else await discard();
  let hash = await hashPrefix(part, offset);
  const wrongSize = (got: number, where: string) =>
    netError(
      url,
      `${url} is ${got} bytes (${where}) but ${entry.name} is ${entry.size} bytes (${entry.sizeSource})`,
      "The server holds another file than the catalog's: check the URL (--url, GPEN_LAB_MODELS_URL), or report it if upstream changed the file.",
      { expected: entry.size, got },
    );

  const controller = new AbortController();
  let stalled = false;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      stalled = true;
      controller.abort();
    }, stallMs);
  };
  const stallError = (received: number) =>
    netError(
      url,
      `${url} sent nothing for ${(stallMs / 1000).toFixed(1)} s${received > 0 ? ` after ${received} bytes` : ''}: the transfer stalled`,
      `Run \`${retry}\` again${received > 0 ? `: it resumes from byte ${received}` : ''}; on a slow link pass a longer --stall-timeout.`,
      { stallMs, received },
    );

  arm();
  try {
    let res: Response;
    const headers: Record<string, string> = { 'accept-encoding': 'identity', 'user-agent': 'gpen-lab' };
    if (offset > 0) {
      headers.range = `bytes=${offset}-`;
      const validator = meta?.etag && !meta.etag.startsWith('W/') ? meta.etag : meta?.lastModified;
      if (validator) headers['if-range'] = validator;
    }
    try {
      res = await fetch(url, { headers, signal: controller.signal, redirect: 'follow' });
    } catch (e) {
      if (stalled) throw stallError(offset);
      throw netError(
        url,
        `Could not fetch ${url}: ${connectionFailure(e)}`,
        `Check the network and the host name (Node's fetch does not go through HTTP_PROXY); from where the host is unreachable, pass --url BASE of a mirror. Then run \`${retry}\` again.`,
      );
    }
    arm();
    let total: number | null;
    let resumedFrom = 0;
    if (res.status === 416 && offset > 0) {
      // the part already holds every byte (a run that ended between the last byte and the rename), or is stale
      const whole = Number(/\/(\d+)$/.exec(res.headers.get('content-range') ?? '')?.[1]);
      await res.body?.cancel();
      if (whole !== offset) {
        await discard();
        throw netError(
          url,
          `${url} refused to resume ${path.basename(part)} at byte ${offset} (HTTP 416): the file on the server changed`,
          `Run \`${retry}\` again: it starts over.`,
          { status: 416 },
        );
      }
      total = offset;
      resumedFrom = offset;
    } else {
      if (res.status === 404 || res.status === 410) {
        await res.body?.cancel();
        throw netError(
          url,
          `${url} answered HTTP ${res.status} ${res.statusText || 'Not Found'}: the file is not there`,
          `Check the name and the URL (--url, GPEN_LAB_MODELS_URL; upstream's links are in docs/models.md and its README). If upstream moved it, download it by hand and pass the file to --model.`,
          { status: res.status },
        );
      }
      if (res.status !== 200 && res.status !== 206) {
        await res.body?.cancel();
        throw netError(
          url,
          `${url} answered HTTP ${res.status} ${res.statusText}`,
          `Run \`${retry}\` again later; if it persists, the host refuses the download: use a mirror with --url BASE.`,
          { status: res.status },
        );
      }
      const length = res.headers.get('content-length') !== null ? Number(res.headers.get('content-length')) : null;
      if (res.status === 206) {
        const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
        if (!m || Number(m[1]) !== offset) {
          await res.body?.cancel();
          await discard();
          throw netError(
            url,
            `${url} answered a resume from byte ${offset} with the range "${res.headers.get('content-range')}"`,
            `Run \`${retry}\` again: it starts over.`,
            { status: 206 },
          );
        }
        total = m[3] === '*' ? null : Number(m[3]);
        resumedFrom = offset;
      } else {
        if (offset > 0) {
          // the server ignored the range or the file changed (If-Range): the body is the whole file
          offset = 0;
          hash = createHash('sha256');
        }
        total = length;
      }
      if (entry.size !== null && total !== null && total !== entry.size) {
        await res.body?.cancel();
        await discard();
        throw wrongSize(total, res.status === 206 ? 'Content-Range' : 'Content-Length');
      }
      await writeFileAtomicSafe(
        metaFile,
        JSON.stringify({
          url,
          total,
          etag: res.headers.get('etag'),
          lastModified: res.headers.get('last-modified'),
        } satisfies PartMeta),
        { fsync: false },
      );
      offset = await receive(res, part, offset, hash, total ?? entry.size, arm, opts.onProgress).catch(
        async (e: unknown) => {
          const got = existsSync(part) ? (await stat(part)).size : 0;
          if (stalled) throw stallError(got);
          if (e instanceof GpenLabError) throw e;
          if (e instanceof TooLong) {
            await discard();
            throw wrongSize(e.at, 'received so far, without a Content-Length');
          }
          throw netError(
            url,
            `${url} stopped sending after ${got}${total !== null ? ` of ${total}` : ''} bytes: ${connectionFailure(e)}`,
            `Run \`${retry}\` again: it resumes from byte ${got}.`,
            { received: got, total },
          );
        },
      );
      if (total !== null && offset !== total) {
        throw netError(
          url,
          `${url} ended the transfer after ${offset} of ${total} bytes`,
          `Run \`${retry}\` again: it resumes from byte ${offset}.`,
          { received: offset, total },
        );
      }
    }
    if (entry.size !== null && offset !== entry.size) {
      await discard();
      throw wrongSize(offset, 'received');
    }
    const sha256 = hash.digest('hex');
    if (entry.sha256 !== null && sha256 !== entry.sha256) {
      await discard();
      throw new GpenLabError(
        'E_CHECKSUM',
        `${url} gave a file whose sha256 is ${sha256}, not ${entry.name}'s ${entry.sha256}`,
        `Run \`${retry}\` again; if it repeats, the server holds another file: use a mirror with --url BASE.`,
        { input: url, sha256, expected: entry.sha256 },
      );
    }
    // the record first, then the rename (which keeps the mtime the record states): the final name never holds a file
    // without its record, and a record whose file never arrived is found missing
    const st = await stat(part);
    const record: FetchRecord = await writeRecord(final, {
      name: entry.name,
      url,
      size: st.size,
      mtimeMs: st.mtimeMs,
      sha256,
      fetchedAt: new Date().toISOString(),
    });
    await rename(part, final);
    await rm(metaFile, { force: true });
    return { name: entry.name, file: final, url, size: record.size, sha256, resumedFrom, alreadyThere: false };
  } finally {
    clearTimeout(timer);
  }
}

/** A body that goes on past the size expected: ended at once rather than after the whole wrong file. */
class TooLong extends Error {
  constructor(readonly at: number) {
    super(`more than expected: ${at} bytes`);
  }
}

/**
 * Appends the body to `part` from `offset`, hashing as it goes; returns the part's size at the end of the body. `total`:
 * the size expected, from the headers or else the catalog.
 */
async function receive(
  res: Response,
  part: string,
  offset: number,
  hash: Hash,
  total: number | null,
  arm: () => void,
  onProgress?: (p: Progress) => void,
): Promise<number> {
  const fh = await open(part, offset > 0 ? 'r+' : 'w');
  const resumedFrom = offset;
  let at = offset;
  try {
    onProgress?.({ received: at, total, resumedFrom });
    if (!res.body) return at;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      arm();
      for (let off = 0; off < chunk.byteLength;) {
        const bytesWritten = await fh.write(chunk, off, chunk.byteLength - off, at).then(
          (w) => w.bytesWritten,
          (e: unknown) => {
            throw new GpenLabError(
              'E_WRITE',
              `Could not write ${part}: ${errorMessage(e)}`,
              'Free space on that disk, or pass --dir on another; the command resumes.',
              { input: part },
            );
          },
        );
        if (bytesWritten <= 0)
          throw new GpenLabError(
            'E_WRITE',
            `Could not write ${part}: ${at} bytes written, then none`,
            'Free space on that disk, or pass --dir on another; the command resumes.',
            { input: part },
          );
        off += bytesWritten;
        at += bytesWritten;
      }
      hash.update(chunk);
      if (total !== null && at > total) throw new TooLong(at);
      onProgress?.({ received: at, total, resumedFrom });
    }
    await fh.sync();
    return at;
  } finally {
    await fh.close();
  }
}
