// Where `gpen-lab setup cuda` takes a provider package from (npm pack from the npm registry, an npm tarball, or a
// folder) and how it puts a file in place, for any build's package.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import * as tar from 'tar';
import { GpenLabError, errorMessage } from '../errors.js';
import { PACKAGE_LIB_DIR } from './provider-files.js';

export async function sha256Of(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export function sourceError(message: string, fix: string, input?: string): GpenLabError {
  return new GpenLabError('E_SETUP_SOURCE', message, fix, input ? { input } : {});
}

/** A provider package: `name@version`, and what the download weighs in words. */
export interface PackageRef {
  name: string;
  version: string;
  size: string;
}

const spec = (p: PackageRef): string => `${p.name}@${p.version}`;

/** Fetches the package tarball with `npm pack` (the npm registry only) into `dir`; returns its path. */
export function npmPack(pkg: PackageRef, dir: string, log: (l: string) => void): string {
  log(`downloading ${spec(pkg)} from the npm registry (${pkg.size})`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, ['pack', spec(pkg), '--pack-destination', dir, '--silent'], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (r.error || r.status !== 0) {
    throw sourceError(
      `npm pack ${spec(pkg)} failed: ${r.error ? errorMessage(r.error) : (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}`,
      `Check access to the npm registry, or fetch the package on another machine (npm pack ${spec(pkg)}) and run gpen-lab setup cuda --from ${pkg.name}-${pkg.version}.tgz`,
    );
  }
  const tgz = path.join(dir, `${pkg.name}-${pkg.version}.tgz`);
  if (!existsSync(tgz))
    throw sourceError(
      `npm pack ${spec(pkg)} wrote no ${path.basename(tgz)} in ${dir}`,
      'Run it by hand and pass the file with --from.',
    );
  return tgz;
}

/** Extracts only the wanted libraries from the package tarball into `dir`. */
export async function extract(pkg: PackageRef, tgz: string, names: string[], dir: string): Promise<void> {
  const wanted = new Set(names.map((n) => `package/${PACKAGE_LIB_DIR}/${n}`));
  try {
    await tar.x({ file: tgz, cwd: dir, filter: (p) => wanted.has(p.replace(/^\.\//, '')), strict: true });
  } catch (e) {
    throw sourceError(
      `Cannot read ${tgz} as the npm tarball of ${pkg.name}: ${errorMessage(e)}`,
      `Pass the .tgz written by npm pack ${spec(pkg)}, or a folder holding the libraries.`,
      tgz,
    );
  }
}

/** The folder holding the libraries within --from DIR (as is, under Plugins/Linux/x64, or package/Plugins/...). */
export function libraryDir(pkg: PackageRef, dir: string, names: string[]): string {
  for (const d of [dir, path.join(dir, PACKAGE_LIB_DIR), path.join(dir, 'package', PACKAGE_LIB_DIR)]) {
    if (names.every((n) => existsSync(path.join(d, n)))) return d;
  }
  const missing = names.filter((n) => !existsSync(path.join(dir, n)));
  throw sourceError(
    `${dir} does not hold ${missing.join(', ')} (looked in it, in ${PACKAGE_LIB_DIR} and in package/${PACKAGE_LIB_DIR})`,
    `Pass the folder with the provider libraries of ${spec(pkg)}, or its .tgz.`,
    dir,
  );
}

/** Copies src to dest through a temporary file and a rename: never a half-written library. */
export async function installFile(src: string, dest: string, where: string): Promise<void> {
  const tmp = `${dest}.tmp-${process.pid}`;
  try {
    await fs.copyFile(src, tmp);
    await fs.chmod(tmp, 0o755);
    await fs.rename(tmp, dest);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw new GpenLabError(
      'E_WRITE',
      `Could not write ${dest}: ${errorMessage(e)}`,
      `Check that ${path.dirname(dest)} is writable (${where}).`,
      { input: dest },
    );
  }
}
