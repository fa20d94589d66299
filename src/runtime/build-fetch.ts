// A runtime build's libonnxruntime, made present: onnxruntime-node's own for ort1.29, else the one file taken from
// the build's npm package with `npm pack` (which runs no install script: onnxruntime-node@1.19.2's would download
// CUDA files from outside the npm registry), checked against the sum recorded in builds.ts and kept in the cache.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { copyFile, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { GpenLabError, errorMessage } from '../errors.js';
import { cacheDir as defaultCacheDir } from '../io/cache.js';
import { makeDirs } from '../io/files.js';
import { buildDir, buildLibraryPath, buildSpec, type RuntimeBuild } from './builds.js';

export interface FetchOptions {
  /** The gpen-lab cache (default cacheDir(): $GPEN_LAB_CACHE, else $XDG_CACHE_HOME/gpen-lab). */
  cacheDir?: string;
  /** The npm command (default npm): tests pass a stub. */
  npm?: string;
  /** Progress lines. */
  log?: (line: string) => void;
  /** A folder that may hold the library file already (`setup cuda --from DIR` offline): taken from there when it does. */
  from?: string;
}

async function sha256Of(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Runs `npm pack SPEC --pack-destination DIR`; its exit status, or the spawn error's message, and its output. */
function npmPack(npm: string, spec: string, dir: string): Promise<{ ok: boolean; said: string }> {
  return new Promise((resolve) => {
    const child = spawn(npm, ['pack', spec, '--pack-destination', dir, '--silent'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', (e) => resolve({ ok: false, said: errorMessage(e) }));
    child.on('close', (code) => resolve({ ok: code === 0, said: out.trim().split('\n').slice(-3).join(' ') }));
  });
}

/**
 * The path of build `build`'s libonnxruntime, fetched into `<cache>/runtimes/<build>/` when absent. A file present
 * there was checked when it was written (a temporary name in the same folder, renamed once its sha256 matched); its
 * size is checked again here. Failures: E_NETWORK (npm pack failed), E_CHECKSUM (the package is not the recorded one).
 */
export async function ensureBuildLibrary(build: RuntimeBuild, opts: FetchOptions = {}): Promise<string> {
  const lib = buildSpec(build).library;
  const cache = opts.cacheDir ?? defaultCacheDir();
  const dest = buildLibraryPath(build, cache);
  if (lib.from === 'onnxruntime-node') return dest;
  if (existsSync(dest) && statSync(dest).size === lib.bytes) return dest;
  const dir = buildDir(build, cache);
  await makeDirs(dir);
  const local = opts.from ? path.join(opts.from, lib.file) : null;
  if (local && existsSync(local)) return copyChecked(local, lib, build, dir, dest, opts.log);
  const packDir = await mkdtemp(path.join(os.tmpdir(), 'gpen-lab-pack-'));
  // extracted beside the destination, so that the rename that puts it in place is atomic
  const work = await mkdtemp(path.join(dir, '.fetch-'));
  try {
    const npm = opts.npm ?? (process.platform === 'win32' ? 'npm.cmd' : 'npm');
    const command = `npm pack ${lib.spec} --pack-destination ${packDir}`;
    opts.log?.(`fetching ${lib.spec} from the npm registry with npm pack (about 70 MB; its library only is kept)`);
    const r = await npmPack(npm, lib.spec, packDir);
    const tgz = (await readdir(packDir)).find((f) => f.endsWith('.tgz'));
    if (!r.ok || !tgz) {
      throw new GpenLabError(
        'E_NETWORK',
        `${command} failed${r.said ? `: ${r.said}` : r.ok ? ': it wrote no .tgz' : ''}`,
        `\`npm pack ${lib.spec}\` needs the npm registry: check the network (and npm's registry setting), or run it on a machine that has it and put ${lib.member.replace(/^package\//, '')} from the tarball in ${dir}.`,
        { input: lib.spec, command },
      );
    }
    const tarball = path.join(packDir, tgz);
    try {
      await tar.x({ file: tarball, cwd: work, filter: (p) => p.replace(/^\.\//, '') === lib.member, strict: true });
    } catch (e) {
      throw checksumError(lib, build, `${tgz} cannot be read as an npm tarball: ${errorMessage(e)}`, dir);
    }
    const got = path.join(work, lib.member);
    if (!existsSync(got)) throw checksumError(lib, build, `${tgz} holds no ${lib.member}`, dir);
    const sum = await sha256Of(got);
    if (sum !== lib.sha256) {
      throw checksumError(lib, build, `${lib.member} of ${tgz} has sha256 ${sum}, not the recorded ${lib.sha256}`, dir);
    }
    await rename(got, dest);
    return dest;
  } finally {
    await rm(work, { recursive: true, force: true });
    await rm(packDir, { recursive: true, force: true });
  }
}

/** The library file from a folder, checked against its recorded sum, put in place by a rename in the cache's folder. */
async function copyChecked(
  file: string,
  lib: { file: string; sha256: string; spec: string },
  build: RuntimeBuild,
  dir: string,
  dest: string,
  log?: (line: string) => void,
): Promise<string> {
  const sum = await sha256Of(file);
  if (sum !== lib.sha256)
    throw checksumError(lib, build, `${file} has sha256 ${sum}, not the recorded ${lib.sha256}`, dir);
  const tmp = path.join(dir, `.${lib.file}.${process.pid}.part`);
  try {
    await copyFile(file, tmp);
    await rename(tmp, dest);
  } finally {
    await rm(tmp, { force: true });
  }
  log?.(`took ${lib.file} from ${path.dirname(file)} (sha256 checked)`);
  return dest;
}

function checksumError(lib: { spec: string }, build: RuntimeBuild, what: string, dir: string): GpenLabError {
  return new GpenLabError(
    'E_CHECKSUM',
    `The package fetched for the runtime ${build} is not the one recorded: ${what}`,
    `Check which registry npm uses (npm config get registry): ${lib.spec} from the npm registry holds the recorded file. Nothing was written to ${dir}.`,
    { input: lib.spec },
  );
}
