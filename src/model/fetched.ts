// What `models get` recorded about a file it fetched (a JSON sidecar `FILE.json` beside it), and the check on later
// use: size and mtime first, as make and git's index judge a file unchanged, the sha256 again only when those moved,
// so that a cold start never pays for hashing 300 MB.
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { GpenLabError } from '../errors.js';
import { writeFileAtomicSafe } from '../io/files.js';
import { sha256File } from '../io/hash.js';
import { catalogEntry, modelsDir } from './catalog.js';

/** Marks a sidecar as ours: another tool's `x.pth.json` is never taken for a record. */
const BY = 'gpen-lab models get';

export interface FetchRecord {
  by: typeof BY;
  name: string;
  /** The file's name in its folder (the record sits beside it). */
  file: string;
  url: string;
  size: number;
  mtimeMs: number;
  sha256: string;
  fetchedAt: string;
}

export function recordPathFor(file: string): string {
  return `${file}.json`;
}

/** The record beside `file`, or null where there is none (or it is not one of ours, or unreadable). */
export async function readRecord(file: string): Promise<FetchRecord | null> {
  try {
    const r = JSON.parse(await readFile(recordPathFor(file), 'utf8')) as FetchRecord;
    return r.by === BY && typeof r.sha256 === 'string' && typeof r.size === 'number' && typeof r.mtimeMs === 'number'
      ? r
      : null;
  } catch {
    return null;
  }
}

export async function writeRecord(file: string, r: Omit<FetchRecord, 'by' | 'file'>): Promise<FetchRecord> {
  const record: FetchRecord = { by: BY, file: path.basename(file), ...r };
  await writeFileAtomicSafe(recordPathFor(file), JSON.stringify(record, null, 2) + '\n');
  return record;
}

/** The `models get` command line that fetches `name` into `dir` again (`--dir` only where dir is not the default). */
export function getCommand(name: string, dir: string, force = false): string {
  const inDefault = path.resolve(dir) === path.resolve(modelsDir());
  return `gpen-lab models get ${name}${inDefault ? '' : ` --dir ${dir}`}${force ? ' --force' : ''}`;
}

// files judged unchanged in this process ("path|size|mtime"): resolution runs more than once per command
const checked = new Set<string>();

/**
 * Checks a fetched file against its record: equal size and mtime pass without reading the file; otherwise it is hashed,
 * and an equal sha256 passes (the record takes the new size and mtime, so the next process does not hash again) while
 * another is E_CHECKSUM. `rehashed` says whether the file was read.
 */
export async function verifyFetched(file: string, record: FetchRecord): Promise<{ rehashed: boolean }> {
  const st = await stat(file);
  const key = `${path.resolve(file)}|${st.size}|${st.mtimeMs}`;
  if (checked.has(key) || (st.size === record.size && st.mtimeMs === record.mtimeMs)) return { rehashed: false };
  const sha256 = await sha256File(file);
  if (sha256 !== record.sha256) {
    throw new GpenLabError(
      'E_CHECKSUM',
      `${file} has changed since \`${BY}\` fetched it: sha256 ${sha256}, recorded ${record.sha256} (${st.size} bytes, recorded ${record.size})`,
      `Fetch it again: \`${getCommand(record.name, path.dirname(file), true)}\`.`,
      { input: file, sha256, recorded: record.sha256 },
    );
  }
  checked.add(key);
  try {
    await writeRecord(file, { ...record, size: st.size, mtimeMs: st.mtimeMs });
  } catch {
    // a read-only models folder: every later process hashes the file again, nothing else changes
  }
  return { rehashed: true };
}

/**
 * The file a model argument means. A path that exists is itself (checked against its record when `models get` wrote
 * one). A catalog name (`GPEN-BFR-512`, `GPEN-BFR-512.pth`) with no path of that name is the file fetched into the
 * models folder. Anything else missing is E_FILE_MISSING whose fix names `gpen-lab models get`.
 */
export async function locateModel(arg: string, what: string): Promise<string> {
  if (existsSync(arg)) {
    const record = existsSync(recordPathFor(arg)) ? await readRecord(arg) : null;
    if (record) await verifyFetched(arg, record);
    return arg;
  }
  const bare = !arg.includes('/') && !arg.includes(path.sep);
  const entry = bare ? catalogEntry(arg) : null;
  if (entry) {
    const dir = modelsDir();
    const file = path.join(dir, entry.file);
    if (!existsSync(file)) {
      throw new GpenLabError(
        'E_FILE_MISSING',
        `Input file is missing: ${arg} (expected ${what}): ${entry.name} has not been fetched, there is no ${file}`,
        entry.runnable
          ? `Fetch it with \`${getCommand(entry.name, dir)}\`${entry.url ? '' : ` (upstream publishes it on ModelScope only: pass --url BASE of a mirror that has ${entry.file}, or download it there and pass the file to --model)`}, then pass --model ${entry.name} again.`
          : `${entry.name} is not a model gpen-lab runs (${entry.runs}); pass a GPEN-BFR checkpoint (\`gpen-lab models\` lists them).`,
        { input: arg, name: entry.name, file },
      );
    }
    const record = await readRecord(file);
    if (record) await verifyFetched(file, record);
    return file;
  }
  return arg;
}
