// Shared libraries as the dynamic loader finds them (RUNPATH, LD_LIBRARY_PATH, ld.so.cache, default folders), their
// versions read by calling them through koffi, and copies of any major found elsewhere for the fix.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import koffi from '../runtime/koffi.js';
import type { LibraryHandle } from 'koffi';
import { familyOf } from './requirements.js';
import type { LibraryCandidate, LibraryCheck } from './types.js';

export const DEFAULT_DIRS = [
  '/lib/x86_64-linux-gnu',
  '/usr/lib/x86_64-linux-gnu',
  '/lib64',
  '/usr/lib64',
  '/lib',
  '/usr/lib',
];

export interface SearchOptions {
  runpath?: string[];
  ldLibraryPath?: string;
  cache?: Map<string, string>;
  defaultDirs?: string[];
}

const isFile = (p: string): boolean => {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
};

const real = (p: string): string => {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
};

/** Where the loader would find `soname`, in its own order. */
export function loaderSearch(
  soname: string,
  opts: SearchOptions = {},
): { path: string | null; foundVia: LibraryCheck['foundVia'] } {
  for (const d of opts.runpath ?? [])
    if (isFile(path.join(d, soname))) return { path: real(path.join(d, soname)), foundVia: 'runpath' };
  for (const d of (opts.ldLibraryPath ?? '').split(':').filter(Boolean))
    if (isFile(path.join(d, soname))) return { path: real(path.join(d, soname)), foundVia: 'ld_library_path' };
  const c = opts.cache?.get(soname);
  if (c && isFile(c)) return { path: real(c), foundVia: 'ld.so.cache' };
  for (const d of opts.defaultDirs ?? DEFAULT_DIRS)
    if (isFile(path.join(d, soname))) return { path: real(path.join(d, soname)), foundVia: 'default' };
  return { path: null, foundVia: null };
}

/** The loader cache (soname -> path, x86-64 entries) as `ldconfig -p` prints it; empty when ldconfig is absent. */
export function readLdCache(): Map<string, string> {
  const map = new Map<string, string>();
  const ldconfig = ['/sbin/ldconfig', '/usr/sbin/ldconfig', 'ldconfig'].find((p) => p === 'ldconfig' || existsSync(p))!;
  const r = spawnSync(ldconfig, ['-p'], { encoding: 'utf8', maxBuffer: 32 << 20 });
  if (r.status !== 0 || !r.stdout) return map;
  for (const line of r.stdout.split('\n')) {
    const m = /^\s+(\S+) \(([^)]*)\) => (\S+)$/.exec(line);
    if (!m) continue;
    if (process.arch === 'x64' && !m[2].includes('x86-64')) continue;
    if (!map.has(m[1])) map.set(m[1], m[3]);
  }
  return map;
}

const fmtCuda = (n: number): string => `${Math.floor(n / 1000)}.${Math.floor((n % 1000) / 10)}`;
const fmtCurand = (n: number): string => `${Math.floor(n / 1000)}.${Math.floor((n % 1000) / 100)}.${n % 100}`;
const fmtMmp = (n: number): string => `${Math.floor(n / 10000)}.${Math.floor((n % 10000) / 100)}.${n % 100}`;

/** Asks the library at `file` its version through koffi; never throws. */
export function readVersion(
  file: string,
  soname: string = path.basename(file),
): { version: string | null; error?: string } {
  const fam = familyOf(soname);
  if (!fam?.version) return { version: null, error: `no version function is known for ${soname}` };
  let lib: LibraryHandle;
  try {
    lib = koffi.load(file);
  } catch (e) {
    return { version: null, error: `cannot load ${file}: ${(e as Error).message}` };
  }
  const v = fam.version;
  try {
    switch (v.kind) {
      case 'out-int': {
        const out = [0];
        const rc = lib.func(`int ${v.symbol}(_Out_ int *v)`)(out) as number;
        if (rc !== 0 && out[0] === 0) return { version: null, error: `${v.symbol} in ${file} returned ${rc}` };
        return { version: v.format === 'cuda' ? fmtCuda(out[0]) : fmtCurand(out[0]) };
      }
      case 'ret-size':
        return { version: fmtMmp(Number(lib.func(`size_t ${v.symbol}(void)`)() as number | bigint)) };
      case 'ret-int':
        return { version: fmtMmp(lib.func(`int32_t ${v.symbol}(void)`)() as number) };
      case 'property': {
        const f = lib.func(`int ${v.symbol}(int type, _Out_ int *value)`);
        const parts = [0, 1, 2].map((t) => {
          const o = [0];
          f(t, o);
          return o[0];
        });
        return { version: parts.join('.') };
      }
      case 'major-minor': {
        const a = [0],
          b = [0];
        lib.func(`int ${v.symbol}(_Out_ int *major, _Out_ int *minor)`)(a, b);
        return { version: `${a[0]}.${b[0]}` };
      }
    }
  } catch (e) {
    return { version: null, error: `${v.symbol} not callable in ${file}: ${(e as Error).message}` };
  }
}

/** Libraries whose own version major must equal the soname's (cudart 13.x is libcudart.so.13; not libcuda.so.1). */
export function versionTiedToSoname(soname: string): boolean {
  return !!familyOf(soname)?.version && !soname.startsWith('libcuda.so');
}

const majorOf = (soname: string): number | null => {
  const m = /\.so\.(\d+)/.exec(soname);
  return m ? Number(m[1]) : null;
};

/** Candidate roots: label -> folders, expanded from the usual install places. */
function roots(opts: { ldLibraryPath?: string; extraRoots?: string[]; usual?: boolean }): [string, string][] {
  const out: [string, string][] = [];
  for (const d of (opts.ldLibraryPath ?? '').split(':').filter(Boolean)) out.push(['LD_LIBRARY_PATH', d]);
  for (const d of opts.extraRoots ?? []) out.push(['given', d]);
  if (opts.usual === false) return out;
  const ls = (d: string): string[] => {
    try {
      return readdirSync(d);
    } catch {
      return [];
    }
  };
  for (const c of ls('/usr/local').filter((n) => /^cuda/.test(n))) {
    out.push(
      [`/usr/local/${c}`, `/usr/local/${c}/lib64`],
      [`/usr/local/${c}`, `/usr/local/${c}/targets/x86_64-linux/lib`],
    );
  }
  const home = os.homedir();
  const pyRoots = ['/usr/lib', '/usr/local/lib', path.join(home, '.local/lib'), '/opt/conda/lib'];
  if (process.env.VIRTUAL_ENV) pyRoots.push(path.join(process.env.VIRTUAL_ENV, 'lib'));
  if (process.env.CONDA_PREFIX) pyRoots.push(path.join(process.env.CONDA_PREFIX, 'lib'));
  for (const r of pyRoots) {
    for (const py of ls(r).filter((n) => /^python3/.test(n))) {
      for (const sp of ['site-packages', 'dist-packages']) {
        const nv = path.join(r, py, sp, 'nvidia');
        for (const pkg of ls(nv)) out.push(['pip wheel', path.join(nv, pkg, 'lib')]);
        for (const pkg of ls(path.join(r, py, sp)).filter((n) => /^tensorrt/.test(n)))
          out.push(['pip wheel', path.join(r, py, sp, pkg)]);
      }
    }
  }
  for (const d of [
    process.env.CONDA_PREFIX ? path.join(process.env.CONDA_PREFIX, 'lib') : '',
    '/opt/conda/lib',
    path.join(home, 'miniconda3/lib'),
    path.join(home, 'anaconda3/lib'),
  ].filter(Boolean))
    out.push(['conda', d]);
  // /opt, four levels down at most
  const walk = (d: string, depth: number) => {
    if (depth > 4) return;
    out.push(['/opt', d]);
    for (const n of ls(d)) {
      const p = path.join(d, n);
      try {
        if (statSync(p).isDirectory() && !n.startsWith('.')) walk(p, depth + 1);
      } catch {
        /* unreadable */
      }
    }
  };
  walk('/opt', 1);
  return out;
}

/** Every copy of `soname`'s family (any major) in the usual places, with versions; sorted right major first. */
export function findCandidates(
  soname: string,
  opts: { ldLibraryPath?: string; cache?: Map<string, string>; extraRoots?: string[]; usual?: boolean } = {},
): LibraryCandidate[] {
  const base = soname.replace(/\.so(\.\d+)*$/, '.so');
  const need = majorOf(soname);
  const seen = new Set<string>();
  const out: LibraryCandidate[] = [];
  const add = (file: string, source: string) => {
    const name = path.basename(file);
    if (!/^.*\.so\.\d+$/.test(name) || !name.startsWith(`${base}.`) || !isFile(file)) return;
    const r = real(file);
    if (seen.has(r)) return;
    seen.add(r);
    const major = majorOf(name);
    const v = readVersion(file, name);
    const vMajor = v.version ? Number(v.version.split('.')[0]) : null;
    const versionOk = vMajor === null || !versionTiedToSoname(name) || vMajor === major;
    out.push({
      path: file,
      soname: name,
      major,
      version: v.version,
      source,
      matches: major !== null && major === need && versionOk,
    });
  };
  for (const [label, dir] of roots(opts)) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const n of names) if (n.startsWith(`${base}.`)) add(path.join(dir, n), label);
  }
  for (const [name, file] of opts.cache ?? []) if (name.startsWith(`${base}.`)) add(file, 'ld.so.cache');
  return out.sort((a, b) => Number(b.matches) - Number(a.matches));
}

export function checkLibrary(
  soname: string,
  neededBy: string,
  needMajor: number,
  opts: SearchOptions & { extraRoots?: string[] } = {},
): LibraryCheck {
  const found = loaderSearch(soname, opts);
  const v = found.path ? readVersion(found.path, soname) : { version: null };
  const vMajor = v.version ? Number(v.version.split('.')[0]) : null;
  // a file named for the right major that reports another (a stub, a renamed copy) is the wrong major
  const wrong = found.path !== null && versionTiedToSoname(soname) && vMajor !== null && vMajor !== needMajor;
  return {
    soname,
    neededBy: neededBy === 'dlopen' ? 'dlopen at run time' : `${neededBy}`,
    foundVia: found.foundVia,
    path: found.path,
    version: v.version,
    ...(v.error && found.path ? { versionError: v.error } : {}),
    // missing or wrong: every copy anywhere; resolved: copies of another major on LD_LIBRARY_PATH (a user who put
    // them there expected them to be used)
    candidates:
      !found.path || wrong
        ? findCandidates(soname, {
            ldLibraryPath: opts.ldLibraryPath ?? '',
            cache: opts.cache ?? new Map(),
            extraRoots: opts.extraRoots ?? [],
          })
        : findCandidates(soname, { ldLibraryPath: opts.ldLibraryPath ?? '', usual: false }).filter((k) => !k.matches),
  };
}

export function formatCandidate(c: LibraryCandidate, needMajor: number): string {
  return `${c.soname}${c.version ? ` (${c.version})` : ''} at ${path.dirname(c.path)}: ${c.matches ? 'the major this build needs' : `wrong major, this build needs ${needMajor}`} [${c.source}]`;
}

export function exportLine(dir: string): string {
  const d = /[\s'"$]/.test(dir) ? `'${dir.replace(/'/g, "'\\''")}'` : dir;
  return `export LD_LIBRARY_PATH=${d}:$LD_LIBRARY_PATH`;
}
