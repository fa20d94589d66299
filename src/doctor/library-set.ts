// A CUDA library set: a folder a cell or user puts on LD_LIBRARY_PATH (a toolkit's lib64, Debian's packages unpacked,
// a pip wheel's lib). Which CUDA it is (its libcudart's version), and whether the build in use takes its libraries
// from it: a set of another CUDA major is skipped by the loader without a word, which is a finding.
import { existsSync, readdirSync, realpathSync } from 'node:fs';
import path from 'node:path';
import type { RuntimeBuild } from '../runtime/builds.js';
import { RUNTIME_BUILDS, buildSpec } from '../runtime/builds.js';
import { readVersion } from './libs.js';
import { BUILD_REQUIREMENTS, familyOf, installLine } from './requirements.js';
import type { Finding, LibraryCheck } from './types.js';

export interface SetLibrary {
  /** The file's soname-style name in the folder: libcudart.so.12. */
  soname: string;
  /** The file it is (symlinks followed). */
  file: string;
  version: string | null;
}

export interface LibrarySet {
  dir: string;
  /** The CUDA version of the set: its libcudart's, else null (a set without the runtime). */
  cuda: string | null;
  /** The CUDA libraries of known families it holds, by soname (libfoo.so.N). */
  libraries: SetLibrary[];
}

const real = (p: string): string => {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
};

/** The CUDA libraries in `dir` (files named libX.so.N of the doctor's families, not the driver's), with versions. */
export function describeSet(dir: string): LibrarySet {
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    /* an absent folder is an empty set */
  }
  const libraries = names
    .filter(
      (n) => /\.so\.\d+(\.0)?$/.test(n) && familyOf(n) && !n.startsWith('libcuda.so') && !n.startsWith('libvulkan'),
    )
    .sort()
    .map((n) => {
      const file = path.join(dir, n);
      const to = real(file);
      // CUDA 11's runtime answers no version without a driver: the file's name has it (libcudart.so.11.8.89)
      const named = /\.so\.(\d+\.\d+(?:\.\d+)*)$/.exec(path.basename(to))?.[1] ?? null;
      return { soname: n, file: to, version: readVersion(file, n).version ?? named };
    });
  const rt = libraries.find((l) => l.soname.startsWith('libcudart.so.'));
  return { dir, cuda: rt?.version?.split('.').slice(0, 2).join('.') ?? null, libraries };
}

/** The folders `cellPath` puts ahead of `basePath` (a cell's LD_LIBRARY_PATH over the lab's): the cell's own sets. */
export function addedDirs(cellPath: string | undefined, basePath: string | undefined): string[] {
  const base = new Set((basePath ?? '').split(':').filter(Boolean));
  return [...new Set((cellPath ?? '').split(':').filter((d) => d && !base.has(d)))];
}

/** The libraries a CUDA runtime set holds: the runtime, cuBLAS(Lt), cuRAND, cuFFT, NVRTC. */
const TOOLKIT = /^lib(cudart|cublasLt|cublas|curand|cufft|nvrtc)\.so\./;

const majorOf = (v: string | null): number | null => (v && /^\d+/.test(v) ? Number(/^\d+/.exec(v)![0]) : null);
const fmt = (l: SetLibrary): string => `${l.soname}${l.version ? ` ${l.version}` : ''}`;

/** The builds of a CUDA major, for a fix that names the one a set serves. */
const buildsFor = (cuda: number | null): RuntimeBuild[] =>
  RUNTIME_BUILDS.filter((b) => cuda !== null && buildSpec(b).cudaMajor === cuda);

/**
 * Findings for the library sets a cell or user put on LD_LIBRARY_PATH, given what the build's libraries resolved to
 * (`libraries`, the doctor's check of `build`): a set of another CUDA major that the build skips ('library-set-unused',
 * a warning where its libraries resolve elsewhere), one no build runs on ('library-set-no-build', where the build's
 * libraries are missing), and a set of the build's CUDA that lacks one of its libraries ('library-set-incomplete').
 */
export function librarySetFindings(sets: LibrarySet[], build: RuntimeBuild, libraries: LibraryCheck[]): Finding[] {
  const out: Finding[] = [];
  const need = buildSpec(build).cudaMajor;
  const required = new Set(BUILD_REQUIREMENTS[build].cuda.filter((r) => !r.system).map((r) => r.soname));
  for (const s of sets.filter((x) => x.libraries.length > 0)) {
    const files = new Set(s.libraries.map((l) => l.file));
    const used = libraries.filter((c) => c.path && (files.has(c.path) || path.dirname(c.path) === real(s.dir)));
    const major = majorOf(s.cuda);
    const listed = s.libraries.map(fmt).join(', ');
    const what = `${s.dir} holds ${s.cuda ? `CUDA ${s.cuda}` : 'CUDA libraries'} (${listed})`;
    if (major !== null && major !== need) {
      const missing = libraries.filter((c) => !c.path && required.has(c.soname)).map((c) => c.soname);
      const fits = buildsFor(major);
      const other = RUNTIME_BUILDS.filter((b) => b !== build).map((b) => `${b} (CUDA ${buildSpec(b).cudaMajor})`);
      if (missing.length > 0) {
        out.push({
          id: fits.length ? 'library-set-wrong-build' : 'library-set-no-build',
          verdict: 'fail',
          message: `${what}: ${build} needs CUDA ${need} (${missing.join(', ')}), and ${fits.length ? `this set serves ${fits.join(', ')}` : `no gpen-lab build runs on CUDA ${major}`}`,
          fix: fits.length
            ? `run with --runtime ${fits[0]}, which this set serves, or put a CUDA ${need} set on LD_LIBRARY_PATH`
            : `put a CUDA ${need} set on LD_LIBRARY_PATH (${installLine(missing[0], need)}), or use ${other.join(' or ')} with a set of its CUDA; CUDA ${major} runs none`,
        });
      } else {
        const from = libraries
          .filter((c) => c.path && c.soname.startsWith('libcudart.so.'))
          .map((c) => `${c.soname} from ${c.path} (${c.foundVia})`);
        const taken = used.length
          ? `the loader takes only ${used.map((c) => `${c.soname}${c.version ? ` ${c.version}` : ''}`).join(', ')} from it`
          : 'the loader skips the whole set';
        out.push({
          id: 'library-set-unused',
          verdict: 'warn',
          message: `${what}, but ${build} needs CUDA ${need}: ${taken}${from.length ? ` and takes ${from.join(', ')}` : ''}; the cell does not run on the set it names`,
          fix: fits.length
            ? `run with --runtime ${fits[0]} to use this set, or take ${s.dir} off LD_LIBRARY_PATH`
            : `take ${s.dir} off LD_LIBRARY_PATH: no gpen-lab build runs on CUDA ${major}`,
        });
      }
      continue;
    }
    if (major === need) {
      const held = new Set(s.libraries.map((l) => l.soname));
      // the toolkit's own libraries (cuDNN and the driver come apart from a CUDA set)
      const absent = libraries.filter(
        (c) => required.has(c.soname) && !held.has(c.soname) && !c.path && TOOLKIT.test(c.soname),
      );
      for (const c of absent) {
        out.push({
          id: 'library-set-incomplete',
          verdict: 'fail',
          message: `${what}: it lacks ${c.soname} (${familyOf(c.soname)?.what ?? 'library'}), which ${build} needs (${c.neededBy}), and no other folder on the loader's path has it`,
          fix: existsSync(s.dir)
            ? `put ${c.soname} of CUDA ${need} in ${s.dir} or its folder on LD_LIBRARY_PATH (${installLine(c.soname, need)})`
            : `install ${installLine(c.soname, need)}`,
        });
      }
    }
  }
  return out;
}
