// `gpen-lab setup cuda`: installs a runtime build's CUDA (and TensorRT) execution provider libraries, from the npm
// package built for exactly that build, checked against the sums recorded in provider-files.ts. The build is the one
// the driver runs (setup-choice.ts) unless --runtime names one. ort1.29-cuda13's providers go beside
// onnxruntime-node's libonnxruntime.so.1, where its binding finds them; any other build's go in its own folder with
// its libonnxruntime, fetched by ensureBuildLibrary; builds sit side by side.
import { existsSync, promises as fs, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GpenLabError } from '../errors.js';
import { cacheDir as defaultCacheDir } from '../io/cache.js';
import { makeDirs } from '../io/files.js';
import { ensureBuildLibrary } from '../runtime/build-fetch.js';
import type { RuntimeBuild } from '../runtime/builds.js';
import {
  DEFAULT_BUILD,
  RUNTIME_BUILDS,
  buildDir,
  buildLibraryPath,
  buildSpec,
  providerDir,
} from '../runtime/builds.js';
import { ortVersion } from '../runtime/providers.js';
import { readGpus } from './gpu.js';
import type { ProviderFile } from './provider-files.js';
import { PROVIDER_PACKAGES } from './provider-files.js';
import type { SetupChoice } from './setup-choice.js';
import { chooseSetupBuild } from './setup-choice.js';
import type { PackageRef } from './setup-source.js';
import { extract, installFile, libraryDir, npmPack, sha256Of, sourceError } from './setup-source.js';
import type { GpuReport } from './types.js';

export type { ProviderFile } from './provider-files.js';
export { PACKAGE_LIB_DIR } from './provider-files.js';

/** The default build's provider files (com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9). */
export const PROVIDER_FILES: readonly ProviderFile[] = PROVIDER_PACKAGES[DEFAULT_BUILD].files;

export interface SetupOptions {
  /** An npm tarball (.tgz) of the package, or a folder holding the libraries (as is, or under Plugins/Linux/x64). */
  from?: string;
  tensorrt?: boolean;
  /** Removes the build's files; without `runtime`, those of every build that has a folder (and ort1.29-cuda13's). */
  remove?: boolean;
  /** The build (--runtime); default: the newest the driver runs (chooseSetupBuild). */
  runtime?: RuntimeBuild;
  /** The GPUs and driver as given instead of read, or where readGpus looks (tests fake a driver). */
  gpu?: GpuReport;
  gpuSources?: { nvmlPath?: string; cudaPath?: string; smi?: string };
  /** The gpen-lab cache (default cacheDir()): a build other than ort1.29 lives in <cache>/runtimes/<build>. */
  cacheDir?: string;
  /** The npm command ensureBuildLibrary runs (tests pass a stub). */
  npm?: string;
  /** For tests: where ort1.29-cuda13's providers go, its onnxruntime-node version, the files expected. */
  binDir?: string;
  runtimeVersion?: string;
  files?: readonly ProviderFile[];
  /** Progress lines (stderr in the CLI). */
  log?: (line: string) => void;
}

export interface SetupAction {
  build: RuntimeBuild;
  file: string;
  action: 'installed' | 'already-installed' | 'replaced' | 'removed' | 'absent';
  path: string;
  sha256: string | null;
}

export interface SetupResult {
  schema: 'gpen-lab.setup/1';
  provider: 'cuda';
  /** The build installed or removed; null for --remove of every build. */
  runtime: RuntimeBuild | null;
  /** Why this build (null for --remove). */
  choice: SetupChoice | null;
  source: string | null;
  /** Where the build's provider files are (ort1.29-cuda13's with --remove of every build). */
  binDir: string;
  /** ONNX Runtime's version of the build (onnxruntime-node's installed one for ort1.29-cuda13). */
  runtimeVersion: string;
  /** The build's own libonnxruntime (null for ort1.29-cuda13, which uses onnxruntime-node's). */
  library: { path: string; action: 'fetched' | 'copied' | 'already-installed' | 'removed' | 'absent' } | null;
  actions: SetupAction[];
}

interface Target {
  build: RuntimeBuild;
  dir: string;
  files: readonly ProviderFile[];
  pkg: PackageRef;
}

function target(build: RuntimeBuild, opts: SetupOptions, cache: string): Target {
  const spec = buildSpec(build);
  const own = build === DEFAULT_BUILD;
  return {
    build,
    dir: own ? (opts.binDir ?? providerDir(build, cache)) : providerDir(build, cache),
    files: opts.files ?? PROVIDER_PACKAGES[build].files,
    pkg: { ...spec.providerPackage, size: PROVIDER_PACKAGES[build].size },
  };
}

async function removeBuild(t: Target, cache: string, log: (l: string) => void): Promise<SetupResult['actions']> {
  const actions: SetupAction[] = [];
  for (const f of t.files) {
    const p = path.join(t.dir, f.name);
    const there = existsSync(p);
    if (there) await fs.rm(p, { force: true });
    actions.push({ build: t.build, file: f.name, action: there ? 'removed' : 'absent', path: p, sha256: null });
    log(`${there ? 'removed' : 'not installed'}: ${p}`);
  }
  if (t.build !== DEFAULT_BUILD) {
    const lib = buildLibraryPath(t.build, cache);
    if (existsSync(lib)) {
      await fs.rm(lib, { force: true });
      log(`removed: ${lib}`);
    }
    const dir = buildDir(t.build, cache);
    if (existsSync(dir) && readdirSync(dir).length === 0) await fs.rmdir(dir);
  }
  return actions;
}

async function remove(opts: SetupOptions, cache: string, log: (l: string) => void): Promise<SetupResult> {
  const builds = opts.runtime
    ? [opts.runtime]
    : RUNTIME_BUILDS.filter((b) => b === DEFAULT_BUILD || existsSync(buildDir(b, cache)));
  const result: SetupResult = {
    schema: 'gpen-lab.setup/1',
    provider: 'cuda',
    runtime: opts.runtime ?? null,
    choice: null,
    source: null,
    binDir: target(opts.runtime ?? DEFAULT_BUILD, opts, cache).dir,
    runtimeVersion: opts.runtime ? versionOf(opts.runtime, opts) : versionOf(DEFAULT_BUILD, opts),
    library: null,
    actions: [],
  };
  for (const b of builds) {
    const lib = b === DEFAULT_BUILD ? null : buildLibraryPath(b, cache);
    const had = lib !== null && existsSync(lib);
    result.actions.push(...(await removeBuild(target(b, opts, cache), cache, log)));
    if (lib && b === opts.runtime) result.library = { path: lib, action: had ? 'removed' : 'absent' };
  }
  return result;
}

const versionOf = (b: RuntimeBuild, opts: SetupOptions): string =>
  b === DEFAULT_BUILD ? (opts.runtimeVersion ?? ortVersion()) : buildSpec(b).ortVersion;

/** ort1.29-cuda13's providers must match onnxruntime-node exactly and sit beside its library. */
function checkDefaultBuild(t: Target, version: string): void {
  const spec = buildSpec(t.build);
  if (version !== spec.ortVersion) {
    throw new GpenLabError(
      'E_RUNTIME_VERSION',
      `onnxruntime-node ${version} is installed, but the provider libraries of ${t.pkg.name}@${t.pkg.version} are built for ${spec.ortVersion} exactly (a mismatch fails to load or crashes)`,
      `Reinstall the pinned version: npm install --save-exact onnxruntime-node@${spec.ortVersion}`,
      { input: 'onnxruntime-node', installed: version },
    );
  }
  if (!existsSync(path.join(t.dir, 'libonnxruntime.so.1'))) {
    throw new GpenLabError(
      'E_FILE_MISSING',
      `libonnxruntime.so.1 is not in ${t.dir}: the provider libraries must sit next to it`,
      'Reinstall the dependencies (npm ci) so that onnxruntime-node provides its binary.',
      { input: t.dir },
    );
  }
}

/** The folder holding the package's libraries, from --from or npm pack, extracted into `work` when a tarball. */
async function sourceDir(
  t: Target,
  names: string[],
  from: string | undefined,
  work: string,
  log: (l: string) => void,
): Promise<{ dir: string; source: string }> {
  if (!from) {
    const tgz = npmPack(t.pkg, work, log);
    log(`extracting ${names.join(', ')}`);
    await extract(t.pkg, tgz, names, work);
    await fs.rm(tgz, { force: true });
    return { dir: libraryDir(t.pkg, work, names), source: `npm:${t.pkg.name}@${t.pkg.version}` };
  }
  if (!existsSync(from))
    throw sourceError(
      `--from ${from} does not exist`,
      `Pass the .tgz of ${t.pkg.name}@${t.pkg.version} or a folder holding its libraries.`,
      from,
    );
  if (statSync(from).isDirectory()) return { dir: libraryDir(t.pkg, from, names), source: path.resolve(from) };
  log(`extracting ${names.join(', ')} from ${from}`);
  await extract(t.pkg, from, names, work);
  return { dir: libraryDir(t.pkg, work, names), source: path.resolve(from) };
}

export async function setupCuda(opts: SetupOptions = {}): Promise<SetupResult> {
  const log = opts.log ?? (() => undefined);
  const cache = opts.cacheDir ?? defaultCacheDir();
  if (opts.remove) return remove(opts, cache, log);

  const gpu = opts.gpu ?? (await readGpus(opts.gpuSources ?? {}));
  const choice = chooseSetupBuild(gpu, opts.runtime);
  log(`runtime ${choice.build}: ${choice.reason}`);
  const t = target(choice.build, opts, cache);
  const version = versionOf(t.build, opts);
  const own = t.build === DEFAULT_BUILD;
  const files = t.files.filter((f) => !f.optional || opts.tensorrt !== false);
  const result: SetupResult = {
    schema: 'gpen-lab.setup/1',
    provider: 'cuda',
    runtime: t.build,
    choice,
    source: null,
    binDir: t.dir,
    runtimeVersion: version,
    library: null,
    actions: [],
  };
  if (own) checkDefaultBuild(t, version);
  /** ort1.19's library: fetched (npm pack of its onnxruntime-node) unless there; E_NETWORK / E_CHECKSUM otherwise. */
  const library = async () => {
    if (own) return;
    const spec = buildSpec(t.build).library;
    const lib = buildLibraryPath(t.build, cache);
    const had = spec.from === 'npm-pack' && existsSync(lib) && statSync(lib).size === spec.bytes;
    const from = opts.from && existsSync(opts.from) && statSync(opts.from).isDirectory() ? opts.from : undefined;
    const p = await ensureBuildLibrary(t.build, {
      cacheDir: cache,
      ...(opts.npm ? { npm: opts.npm } : {}),
      ...(from ? { from } : {}),
      log,
    });
    const copied = !had && from !== undefined && existsSync(path.join(from, spec.file));
    const action = had ? 'already-installed' : copied ? 'copied' : 'fetched';
    result.library = { path: p, action };
    log(`${action.replace('-', ' ')}: ${p}`);
  };

  // Already there with the recorded sums: nothing to do (and no download of the provider package).
  const present = await Promise.all(
    files.map(async (f) => {
      const p = path.join(t.dir, f.name);
      return existsSync(p) && statSync(p).size === f.bytes && (await sha256Of(p)) === f.sha256;
    }),
  );
  if (present.every(Boolean)) {
    await library();
    for (const f of files) {
      const p = path.join(t.dir, f.name);
      result.actions.push({ build: t.build, file: f.name, action: 'already-installed', path: p, sha256: f.sha256 });
      log(`already installed: ${p}`);
    }
    return result;
  }

  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'gpen-lab-setup-'));
  try {
    const names = files.map((f) => f.name);
    const src = await sourceDir(t, names, opts.from, work, log);
    result.source = src.source;
    // Every source file is checked, and the build's library is in place, before any file is installed.
    for (const f of files) {
      const file = path.join(src.dir, f.name);
      const sum = await sha256Of(file);
      if (sum !== f.sha256) {
        throw new GpenLabError(
          'E_CHECKSUM',
          `${file} has sha256 ${sum}, not the ${f.sha256} recorded for ${f.name} of ${t.pkg.name}@${t.pkg.version}`,
          `Use the files of ${t.pkg.name}@${t.pkg.version} unchanged (npm pack ${t.pkg.name}@${t.pkg.version})${choice.by === 'runtime' ? '' : `, or name the build they are for with --runtime (${t.build} was chosen: ${choice.reason})`}; nothing was installed.`,
          { input: file, sha256: sum, expected: f.sha256 },
        );
      }
    }
    await library();
    if (!own) await makeDirs(t.dir);
    const where = own ? 'it is inside node_modules/onnxruntime-node' : `the gpen-lab cache: GPEN_LAB_CACHE moves it`;
    for (const [i, f] of files.entries()) {
      const dest = path.join(t.dir, f.name);
      if (present[i]) {
        result.actions.push({
          build: t.build,
          file: f.name,
          action: 'already-installed',
          path: dest,
          sha256: f.sha256,
        });
        log(`already installed: ${dest}`);
        continue;
      }
      const existed = existsSync(dest);
      await installFile(path.join(src.dir, f.name), dest, where);
      const action = existed ? 'replaced' : 'installed';
      result.actions.push({ build: t.build, file: f.name, action, path: dest, sha256: f.sha256 });
      log(`${action}: ${dest} (sha256 ${f.sha256.slice(0, 12)}…)`);
    }
    return result;
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}
