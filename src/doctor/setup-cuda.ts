// `gpen-lab setup cuda`: puts the CUDA (and TensorRT) execution provider libraries for onnxruntime-node 1.29.0 next to
// libonnxruntime.so.1, from the npm package built for exactly that version, checked against sums recorded here.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, promises as fs, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { GpenLabError, errorMessage } from '../errors.js';
import { BUILD_SPECS } from '../runtime/builds.js';
import { ortBinDir, ortVersion } from '../runtime/providers.js';

/** The npm package that carries the provider libraries, and the onnxruntime-node version they were built for. */
const BUILD = BUILD_SPECS['ort1.29-cuda13'];
export const GPU_PACKAGE = BUILD.providerPackage.name;
export const GPU_PACKAGE_VERSION = BUILD.providerPackage.version;
export const GPU_PACKAGE_ORT = BUILD.ortVersion;
/** Where the libraries sit inside the package. */
export const PACKAGE_LIB_DIR = 'Plugins/Linux/x64';

export interface ProviderFile {
  name: string;
  sha256: string;
  bytes: number;
  /** Installed unless --no-tensorrt. */
  optional: boolean;
}

/** Recorded from com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9 (npm pack, 2026-11-24). */
export const PROVIDER_FILES: readonly ProviderFile[] = [
  {
    name: 'libonnxruntime_providers_shared.so',
    sha256: 'c6a12593396095f5670160e284c35d1700b7708cf3037b7042e2a5200ccae772',
    bytes: 14632,
    optional: false,
  },
  {
    name: 'libonnxruntime_providers_cuda.so',
    sha256: '56cf3254b118ad837ccc4ed8f6d1b23504bbf7ef91b34cbc0b289cb7f10b3037',
    bytes: 229780440,
    optional: false,
  },
  {
    name: 'libonnxruntime_providers_tensorrt.so',
    sha256: 'ef6071798a339038ad66c428fb1a809cf8e499bffc3b6870e4e8bc4f4c6a6320',
    bytes: 859144,
    optional: true,
  },
];

export interface SetupOptions {
  /** An npm tarball (.tgz) of the package, or a folder holding the libraries (as is, or under Plugins/Linux/x64). */
  from?: string;
  tensorrt?: boolean;
  remove?: boolean;
  /** For tests: where to install, the version to check, the files expected. */
  binDir?: string;
  runtimeVersion?: string;
  files?: readonly ProviderFile[];
  /** Progress lines (stderr in the CLI). */
  log?: (line: string) => void;
}

export interface SetupAction {
  file: string;
  action: 'installed' | 'already-installed' | 'replaced' | 'removed' | 'absent';
  path: string;
  sha256: string | null;
}

export interface SetupResult {
  schema: 'gpen-lab.setup/1';
  provider: 'cuda';
  source: string | null;
  binDir: string;
  runtimeVersion: string;
  actions: SetupAction[];
}

export async function sha256Of(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

function sourceError(message: string, fix: string, input?: string): GpenLabError {
  return new GpenLabError('E_SETUP_SOURCE', message, fix, input ? { input } : {});
}

/** Fetches the package tarball with `npm pack` (the npm registry only) into `dir`; returns its path. */
function npmPack(dir: string, log: (l: string) => void): string {
  const spec = `${GPU_PACKAGE}@${GPU_PACKAGE_VERSION}`;
  log(`downloading ${spec} from the npm registry (about 230 MB)`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, ['pack', spec, '--pack-destination', dir, '--silent'], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (r.error || r.status !== 0) {
    throw sourceError(
      `npm pack ${spec} failed: ${r.error ? errorMessage(r.error) : (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}`,
      `Check access to the npm registry, or fetch the package on another machine (npm pack ${spec}) and run gpen-lab setup cuda --from ${GPU_PACKAGE}-${GPU_PACKAGE_VERSION}.tgz`,
    );
  }
  const tgz = path.join(dir, `${GPU_PACKAGE}-${GPU_PACKAGE_VERSION}.tgz`);
  if (!existsSync(tgz))
    throw sourceError(
      `npm pack ${spec} wrote no ${path.basename(tgz)} in ${dir}`,
      'Run it by hand and pass the file with --from.',
    );
  return tgz;
}

/** Extracts only the wanted libraries from the package tarball into `dir`. */
async function extract(tgz: string, names: string[], dir: string): Promise<void> {
  const wanted = new Set(names.map((n) => `package/${PACKAGE_LIB_DIR}/${n}`));
  try {
    await tar.x({ file: tgz, cwd: dir, filter: (p) => wanted.has(p.replace(/^\.\//, '')), strict: true });
  } catch (e) {
    throw sourceError(
      `Cannot read ${tgz} as the npm tarball of ${GPU_PACKAGE}: ${errorMessage(e)}`,
      `Pass the .tgz written by npm pack ${GPU_PACKAGE}@${GPU_PACKAGE_VERSION}, or a folder holding the libraries.`,
      tgz,
    );
  }
}

/** The folder holding the libraries within --from DIR (as is, under Plugins/Linux/x64, or package/Plugins/...). */
function libraryDir(dir: string, names: string[]): string {
  for (const d of [dir, path.join(dir, PACKAGE_LIB_DIR), path.join(dir, 'package', PACKAGE_LIB_DIR)]) {
    if (names.every((n) => existsSync(path.join(d, n)))) return d;
  }
  const missing = names.filter((n) => !existsSync(path.join(dir, n)));
  throw sourceError(
    `${dir} does not hold ${missing.join(', ')} (looked in it, in ${PACKAGE_LIB_DIR} and in package/${PACKAGE_LIB_DIR})`,
    `Pass the folder with the provider libraries of ${GPU_PACKAGE}@${GPU_PACKAGE_VERSION}, or its .tgz.`,
    dir,
  );
}

/** Copies src to dest through a temporary file and a rename: never a half-written library. */
async function installFile(src: string, dest: string): Promise<void> {
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
      `Check that ${path.dirname(dest)} is writable (it is inside node_modules/onnxruntime-node).`,
      { input: dest },
    );
  }
}

export async function setupCuda(opts: SetupOptions = {}): Promise<SetupResult> {
  const log = opts.log ?? (() => undefined);
  const binDir = opts.binDir ?? ortBinDir();
  const version = opts.runtimeVersion ?? ortVersion();
  const files = (opts.files ?? PROVIDER_FILES).filter((f) => !f.optional || opts.tensorrt !== false);
  const result: SetupResult = {
    schema: 'gpen-lab.setup/1',
    provider: 'cuda',
    source: null,
    binDir,
    runtimeVersion: version,
    actions: [],
  };

  if (opts.remove) {
    for (const f of opts.files ?? PROVIDER_FILES) {
      const p = path.join(binDir, f.name);
      const there = existsSync(p);
      if (there) await fs.rm(p, { force: true });
      result.actions.push({ file: f.name, action: there ? 'removed' : 'absent', path: p, sha256: null });
      log(`${there ? 'removed' : 'not installed'}: ${p}`);
    }
    return result;
  }

  if (version !== GPU_PACKAGE_ORT) {
    throw new GpenLabError(
      'E_RUNTIME_VERSION',
      `onnxruntime-node ${version} is installed, but the provider libraries of ${GPU_PACKAGE}@${GPU_PACKAGE_VERSION} are built for ${GPU_PACKAGE_ORT} exactly (a mismatch fails to load or crashes)`,
      `Reinstall the pinned version: npm install --save-exact onnxruntime-node@${GPU_PACKAGE_ORT}`,
      { input: 'onnxruntime-node', installed: version },
    );
  }
  if (!existsSync(path.join(binDir, 'libonnxruntime.so.1'))) {
    throw new GpenLabError(
      'E_FILE_MISSING',
      `libonnxruntime.so.1 is not in ${binDir}: the provider libraries must sit next to it`,
      'Reinstall the dependencies (npm ci) so that onnxruntime-node provides its binary.',
      { input: binDir },
    );
  }

  // Already there with the recorded sums: nothing to do (and no download).
  const present = await Promise.all(
    files.map(async (f) => {
      const p = path.join(binDir, f.name);
      return existsSync(p) && statSync(p).size === f.bytes && (await sha256Of(p)) === f.sha256;
    }),
  );
  if (present.every(Boolean)) {
    for (const f of files) {
      result.actions.push({
        file: f.name,
        action: 'already-installed',
        path: path.join(binDir, f.name),
        sha256: f.sha256,
      });
      log(`already installed: ${path.join(binDir, f.name)}`);
    }
    return result;
  }

  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'gpen-lab-setup-'));
  try {
    let srcDir: string;
    const names = files.map((f) => f.name);
    if (opts.from) {
      if (!existsSync(opts.from))
        throw sourceError(
          `--from ${opts.from} does not exist`,
          `Pass the .tgz of ${GPU_PACKAGE}@${GPU_PACKAGE_VERSION} or a folder holding its libraries.`,
          opts.from,
        );
      result.source = path.resolve(opts.from);
      if (statSync(opts.from).isDirectory()) {
        srcDir = libraryDir(opts.from, names);
      } else {
        log(`extracting ${names.join(', ')} from ${opts.from}`);
        await extract(opts.from, names, work);
        srcDir = libraryDir(work, names);
      }
    } else {
      const tgz = npmPack(work, log);
      result.source = `npm:${GPU_PACKAGE}@${GPU_PACKAGE_VERSION}`;
      log(`extracting ${names.join(', ')}`);
      await extract(tgz, names, work);
      await fs.rm(tgz, { force: true });
      srcDir = libraryDir(work, names);
    }
    // Every source file is checked before any is installed: all or nothing.
    for (const f of files) {
      const src = path.join(srcDir, f.name);
      const sum = await sha256Of(src);
      if (sum !== f.sha256) {
        throw new GpenLabError(
          'E_CHECKSUM',
          `${src} has sha256 ${sum}, not the ${f.sha256} recorded for ${f.name} of ${GPU_PACKAGE}@${GPU_PACKAGE_VERSION}`,
          `Use the files of ${GPU_PACKAGE}@${GPU_PACKAGE_VERSION} unchanged (npm pack ${GPU_PACKAGE}@${GPU_PACKAGE_VERSION}); nothing was installed.`,
          { input: src, sha256: sum, expected: f.sha256 },
        );
      }
    }
    for (const [i, f] of files.entries()) {
      const dest = path.join(binDir, f.name);
      if (present[i]) {
        result.actions.push({ file: f.name, action: 'already-installed', path: dest, sha256: f.sha256 });
        log(`already installed: ${dest}`);
        continue;
      }
      const existed = existsSync(dest);
      await installFile(path.join(srcDir, f.name), dest);
      result.actions.push({ file: f.name, action: existed ? 'replaced' : 'installed', path: dest, sha256: f.sha256 });
      log(`${existed ? 'replaced' : 'installed'}: ${dest} (sha256 ${f.sha256.slice(0, 12)}…)`);
    }
    return result;
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}
