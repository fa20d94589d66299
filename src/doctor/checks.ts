// Checks the doctor runs on a provider file and the libraries it needs, shared by the provider sections (the default
// build, beside onnxruntime-node) and the per-build report: findings for the libraries, the file's ELF against the
// record, the GPUs against the kernels compiled in, and the loader's answer for each requirement, once per run.
import path from 'node:path';
import { expandOrigin, readElfDynamic } from './elf.js';
import { cudaForPtxIsa, kernelVerdict } from './fatbin.js';
import { driverBranchFor } from './gpu.js';
import { checkLibrary, exportLine, formatCandidate, versionTiedToSoname } from './libs.js';
import { REQUIRED_CUDA_MAJOR, familyOf, installLine } from './requirements.js';
import type { FatbinSummary, Finding, GpuReport, LibraryCheck, ProviderReport } from './types.js';

const major = (v: string | null): number | null => (v && /^\d+/.test(v) ? Number(/^\d+/.exec(v)![0]) : null);
export const sonameMajor = (s: string): number | null => {
  const m = /\.so\.(\d+)/.exec(s);
  return m ? Number(m[1]) : null;
};

/** Findings for the libraries checked, the fixes naming builds of CUDA major `cuda` (the default build's). */
export function libraryFindings(checks: LibraryCheck[], cuda: number = REQUIRED_CUDA_MAJOR): Finding[] {
  const out: Finding[] = [];
  // missing libraries grouped by family (cuDNN's nine files are one finding)
  const groups = new Map<string, LibraryCheck[]>();
  for (const c of checks.filter((x) => !x.path)) {
    const key = familyOf(c.soname)?.prefix ?? c.soname;
    groups.set(key, [...(groups.get(key) ?? []), c]);
  }
  for (const group of groups.values()) {
    const first = group[0];
    const need = sonameMajor(first.soname);
    const fam = familyOf(first.soname);
    const good = group.flatMap((c) => c.candidates).find((k) => k.matches);
    const others = [
      ...new Map(
        group
          .flatMap((c) => c.candidates)
          .filter((k) => !k.matches)
          .map((k) => [k.path, k]),
      ).values(),
    ].map((k) => formatCandidate(k, need ?? 0));
    const names = group.map((c) => c.soname).join(', ');
    out.push({
      id: 'lib-missing',
      verdict: 'fail',
      message: `${names} (${fam?.what ?? 'library'}, ${first.neededBy}) not found by the dynamic loader${good ? `; a matching copy is in ${path.dirname(good.path)}` : ''}${others.length ? `; elsewhere: ${others.join('; ')}` : ''}`,
      fix: good
        ? exportLine(path.dirname(good.path))
        : `install ${installLine(first.soname, cuda)}, then export LD_LIBRARY_PATH=<its folder>:$LD_LIBRARY_PATH`,
    });
  }
  for (const c of checks.filter((x) => x.path)) {
    const need = sonameMajor(c.soname);
    const good = c.candidates.find((k) => k.matches);
    if (c.version && need !== null && versionTiedToSoname(c.soname) && major(c.version) !== need) {
      out.push({
        id: 'lib-wrong-major',
        verdict: 'fail',
        message: `${c.soname} resolves to ${c.path}, version ${c.version}: this build needs ${need}.x`,
        fix: good
          ? exportLine(path.dirname(good.path))
          : `install ${familyOf(c.soname) ? installLine(c.soname, cuda) : `the CUDA ${need} runtime`}`,
      });
    } else if (c.candidates.length && c.candidates.every((k) => !k.matches)) {
      out.push({
        id: 'lib-other-major-on-path',
        verdict: 'warn',
        message: `LD_LIBRARY_PATH holds ${c.candidates.map((k) => formatCandidate(k, need ?? 0)).join('; ')}; it is not used: ${c.soname} resolves to ${c.path} (${c.version ?? 'version unknown'}) via ${c.foundVia}`,
        fix: `remove ${[...new Set(c.candidates.map((k) => path.dirname(k.path)))].join(', ')} from LD_LIBRARY_PATH if nothing else needs it`,
      });
    }
  }
  return out;
}

/** A requirement as the doctor checks it: system libraries are left out. */
export interface Needed {
  soname: string;
  neededBy: string;
}

/**
 * An installed provider file's DT_NEEDED and RUNPATH against the record: the RUNPATH the loader searches first, and a
 * finding when they differ (`recorded`: the package the record was read from) or the file is no shared library.
 */
export function checkProviderElf(
  file: string,
  record: Needed[],
  recorded: string,
  fixCommand: string,
): { elf: ProviderReport['elf']; runpath: string[]; findings: Finding[] } {
  try {
    const dyn = readElfDynamic(file);
    const runpath = expandOrigin(dyn.runpath.length ? dyn.runpath : dyn.rpath, file);
    const inRecord = new Set(record.filter((x) => x.neededBy === 'DT_NEEDED').map((x) => x.soname));
    const system = /^(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|ld-linux-[\w-]+)\.so/;
    const needed = dyn.needed.filter((n) => !system.test(n));
    const elf = {
      file,
      needed: dyn.needed,
      runpath,
      notInRecord: needed.filter((n) => !inRecord.has(n)),
      recordedNotNeeded: [...inRecord].filter((n) => !needed.includes(n)),
    };
    const findings: Finding[] = [];
    if (elf.notInRecord.length || elf.recordedNotNeeded.length) {
      findings.push({
        id: 'needed-differs',
        verdict: 'warn',
        message: `${path.basename(file)} needs ${needed.join(', ')}; the project's record differs (not recorded: ${elf.notInRecord.join(', ') || 'none'}; recorded but not needed: ${elf.recordedNotNeeded.join(', ') || 'none'}): another build than ${recorded}?`,
        fix: `${fixCommand} (installs the recorded build)`,
      });
    }
    return { elf, runpath, findings };
  } catch (e) {
    return {
      elf: null,
      runpath: [],
      findings: [
        {
          id: 'provider-unreadable',
          verdict: 'fail',
          message: `${file} cannot be read as a shared library: ${(e as Error).message}`,
          fix: `${fixCommand.replace('gpen-lab setup cuda', 'gpen-lab setup cuda --remove')} && ${fixCommand}`,
        },
      ],
    };
  }
}

/** The loader's answer for each requirement; `memo` keeps one answer per soname and RUNPATH for the whole run. */
export function checkNeeded(
  record: Needed[],
  opts: { runpath: string[]; ldLibraryPath: string; ldCache: Map<string, string>; memo: Map<string, LibraryCheck> },
): LibraryCheck[] {
  return record.map((req) => {
    const key = `${req.soname}\0${opts.runpath.join(':')}`;
    let c = opts.memo.get(key);
    if (!c) {
      c = checkLibrary(req.soname, 'DT_NEEDED', sonameMajor(req.soname) ?? 0, {
        runpath: opts.runpath,
        ldLibraryPath: opts.ldLibraryPath,
        cache: opts.ldCache,
      });
      opts.memo.set(key, c);
    }
    return { ...c, neededBy: req.neededBy === 'dlopen' ? 'dlopen at run time' : req.neededBy };
  });
}

/**
 * Each GPU against the kernels compiled in: a cubin, or PTX whose ISA the driver can JIT-compile (`cudaCeiling`: the
 * newest CUDA the driver runs), with a finding for each GPU that finds none.
 */
export function checkKernels(
  fatbin: FatbinSummary,
  gpu: GpuReport,
  cudaCeiling: string | null,
  fix: string,
): { kernels: ProviderReport['kernels']; findings: Finding[] } {
  const kernels: ProviderReport['kernels'] = [];
  const findings: Finding[] = [];
  for (const d of gpu.devices) {
    if (!d.computeCapability) continue;
    const v = kernelVerdict(d.computeCapability, fatbin);
    const ptxCuda = fatbin.ptxIsa ? cudaForPtxIsa(fatbin.ptxIsa) : null;
    const older = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true }) < 0;
    if (v.how === 'ptx-jit' && ptxCuda && cudaCeiling && older(cudaCeiling, ptxCuda)) {
      const branch = driverBranchFor(ptxCuda);
      const k = {
        runs: false,
        how: null,
        reason: `${v.reason}; but its PTX is ISA ${fatbin.ptxIsa} (CUDA ${ptxCuda}) and the driver JIT-compiles up to CUDA ${cudaCeiling}`,
      };
      kernels.push({ gpu: d.index, computeCapability: d.computeCapability, ...k });
      findings.push({
        id: 'ptx-too-new',
        verdict: 'fail',
        message: `GPU ${d.index} (${d.name}, compute capability ${d.computeCapability}): ${k.reason}`,
        fix: `update the NVIDIA driver to >= ${branch ?? '?'} (CUDA ${ptxCuda}), e.g. apt-get install nvidia-driver-${branch ?? '<branch>'}`,
      });
      continue;
    }
    kernels.push({ gpu: d.index, computeCapability: d.computeCapability, ...v });
    if (!v.runs)
      findings.push({
        id: 'no-kernel-image',
        verdict: 'fail',
        message: `GPU ${d.index} (${d.name}, compute capability ${d.computeCapability}): ${v.reason}`,
        fix,
      });
  }
  return { kernels, findings };
}
