// Why a failing cell failed: its doctor findings ranked root cause first (the machine, the driver, the provider
// files, the libraries they load), so the first fix is one that can help on this machine; and the failing cells
// grouped by that cause, for the report and the recommendations.
import type { Finding } from '../doctor/types.js';
import { PROVIDER_SPECS } from '../runtime/providers.js';
import type { CellResult, LabResults } from './types.js';
import { cellPassed } from './verdicts.js';

/**
 * The doctor's finding ids (src/doctor/index.ts, src/doctor/signatures.ts) by how far down the chain they sit: a
 * missing GPU makes every library below it moot, missing provider files make the libraries they would load moot,
 * and "the provider library could not be loaded" only restates whichever library did not load.
 */
const RANK: Record<string, number> = {
  'no-gpu': 0,
  'driver-too-old': 1,
  'driver-insufficient': 1,
  'no-cuda-device': 1,
  'no-kernel-image': 1,
  'ptx-too-new': 1,
  'build-not-installed': 2,
  // a library set of the wrong CUDA (or lacking a library) explains every library of it that does not load
  'library-set-no-build': 2,
  'library-set-wrong-build': 2,
  'library-set-incomplete': 2,
  'provider-files-missing': 2,
  'provider-shared-missing': 2,
  'provider-file-missing': 2,
  'provider-unreadable': 2,
  'provider-unsupported': 2,
  'provider-dependency-missing': 3,
  'tensorrt-missing': 3,
  'tensorrt-not-installed': 3,
  'cudnn8-nvrtc': 3,
  'cudnn-missing': 3,
  'cudnn-unavailable': 3,
  'lib-missing': 3,
  'lib-wrong-major': 3,
  'vulkan-missing': 3,
  'undefined-symbol': 3,
  'webgpu-no-adapter': 4,
  'generic-cuda-requirements': 4,
  'ep-append-failed': 5,
};
const rankOf = (f: Finding): number => RANK[f.id] ?? 4;

/** The failing finding nearest the root (lowest rank, then first listed), or undefined where none fails. */
export function rootFinding(findings: Finding[]): Finding | undefined {
  return findings
    .map((f, i) => ({ f, i }))
    .filter((x) => x.f.verdict === 'fail')
    .sort((a, b) => rankOf(a.f) - rankOf(b.f) || a.i - b.i)[0]?.f;
}
const PROVIDER_FILES = 2;

export interface RootCause {
  /** The finding the cause came from ('no-gpu', 'lib-missing', ...), or 'run' where no finding explains it. */
  id: string;
  cause: string;
  /** What to do first; null where nothing known fits (the raw log is all there is). */
  fix: string | null;
  /** The cell's other failing findings, deduplicated, in rank order: what comes next once the cause is fixed. */
  also: Finding[];
  /** Where the machine is the cause: what this install would still need on a GPU host (its provider files' fix). */
  elsewhere: string | null;
}

/** Whether the lab's machine has an NVIDIA GPU: null where results.json does not say. */
export function machineHasGpu(res: LabResults): boolean | null {
  const g = res.machine.gpu as { source?: string; devices?: unknown[] } | undefined;
  if (!g || typeof g !== 'object') return null;
  return g.source !== 'none' && Array.isArray(g.devices) && g.devices.length > 0;
}

/** The stage a failing cell reached. */
export function failedStage(c: CellResult): string {
  return c.runs.find((r) => !r.ok)?.stage ?? (c.status === 'running' ? 'interrupted' : 'startup');
}

const sentence = (s: string): string => (/[.!?)]$/.test(s.trim()) ? s.trim() : `${s.trim()}.`);

/** The root cause of a failing cell and the fix that follows from it; null for a passing cell. */
export function rootCause(res: LabResults, c: CellResult): RootCause | null {
  if (cellPassed(c)) return null;
  if (c.status === 'running')
    return {
      id: 'run',
      cause: 'the lab stopped before this cell finished (--resume runs it)',
      fix: null,
      also: [],
      elsewhere: null,
    };
  const fails = (c.doctor?.findings ?? []).filter((f) => f.verdict === 'fail');
  // the CUDA and TensorRT providers need an NVIDIA GPU; WebGPU counts as stopped by the machine only where it found
  // no adapter (or no Vulkan) on a machine without one: another vendor's GPU would have given it an adapter
  const gpu = PROVIDER_SPECS[c.env.provider]?.gpu ?? false;
  const noNvidia = machineHasGpu(res) === false || fails.some((f) => f.id === 'no-gpu');
  const noGpu =
    gpu &&
    noNvidia &&
    (c.env.provider !== 'webgpu' ||
      (fails.length > 0 && fails.every((f) => f.id === 'webgpu-no-adapter' || f.id === 'vulkan-missing')));
  const ranked = fails
    .map((f, i) => ({ f, i }))
    .sort((a, b) => rankOf(a.f) - rankOf(b.f) || a.i - b.i)
    .map((x) => x.f);
  const lowest = Math.min(...ranked.map(rankOf));
  // a restatement ("could not be loaded") says nothing once the file or library that did not load is named
  const rest = (skip: (f: Finding) => boolean, fix: string | null): Finding[] => {
    const seen = new Set<string>();
    return ranked.filter((f) => {
      const key = `${f.message}\n${f.fix}`;
      if (skip(f) || seen.has(key) || (f.fix !== null && f.fix === fix) || (rankOf(f) === 5 && lowest <= 3))
        return false;
      seen.add(key);
      return true;
    });
  };
  if (noGpu) {
    const here = res.cells.filter(cellPassed).map((x) => x.id);
    const fix = `run on a host with an NVIDIA GPU and driver (in a container: --gpus all with the NVIDIA Container Toolkit), or use ${here.length ? `the cells that pass here: ${here.join(', ')}` : 'the cpu provider'}`;
    const others = rest((f) => f.id === 'no-gpu', fix);
    const elsewhere =
      others.find((f) => rankOf(f) === PROVIDER_FILES && !f.id.startsWith('library-set-') && f.fix)?.fix ?? null;
    return {
      id: 'no-gpu',
      cause: 'this machine has no NVIDIA GPU (or no driver for one), so no GPU cell can run here',
      fix,
      also: others.filter((f) => f.fix !== elsewhere),
      elsewhere,
    };
  }
  const first = ranked[0];
  if (first)
    return {
      id: first.id,
      cause: first.message,
      fix: first.fix,
      also: rest((f) => f === first, first.fix),
      elsewhere: null,
    };
  const run = c.runs.find((r) => !r.ok);
  // an unrecognised error has no fix of its own: the raw log is the lead
  return { id: 'run', cause: run?.error ?? 'no run recorded', fix: null, also: [], elsewhere: null };
}

/** One line for a failing cell: "<id> fails at <stage>: <cause>. Fix: <fix>". */
export function failureLine(res: LabResults, c: CellResult): string {
  const rc = rootCause(res, c)!;
  if (!rc.fix) return `${c.id} fails at ${failedStage(c)}: ${rc.cause}`;
  return `${c.id} fails at ${failedStage(c)}: ${sentence(rc.cause)} Fix: ${rc.fix}${rc.elsewhere ? `; on a GPU host, this install's missing provider files also need: ${rc.elsewhere}` : ''}`;
}

export interface FailureGroup {
  stage: string;
  cause: RootCause;
  cells: CellResult[];
  /** The other findings of the group's cells, each with the cells it applies to. */
  also: { finding: Finding; cells: string[] }[];
  /** What the cells' install would still need on a GPU host, with the cells it applies to (see RootCause). */
  elsewhere: { fix: string; cells: string[] }[];
}

/** The failing cells grouped by stage, cause and fix, in the order of their first cell. */
export function failureGroups(res: LabResults): FailureGroup[] {
  const groups = new Map<string, FailureGroup>();
  for (const c of res.cells.filter((x) => !cellPassed(x))) {
    const rc = rootCause(res, c)!;
    const stage = failedStage(c);
    const key = JSON.stringify([stage, rc.id, rc.cause, rc.fix]);
    const g = groups.get(key) ?? { stage, cause: rc, cells: [], also: [], elsewhere: [] };
    groups.set(key, g);
    g.cells.push(c);
    if (rc.elsewhere) {
      const e = g.elsewhere.find((x) => x.fix === rc.elsewhere);
      if (e) e.cells.push(c.id);
      else g.elsewhere.push({ fix: rc.elsewhere, cells: [c.id] });
    }
    for (const f of rc.also) {
      const m = g.also.find((a) => a.finding.message === f.message && a.finding.fix === f.fix);
      if (m) m.cells.push(c.id);
      else g.also.push({ finding: f, cells: [c.id] });
    }
  }
  return [...groups.values()];
}

/** A failing cell's raw log: the run's error and the tail of its stderr. */
export function rawLog(c: CellResult, lines = 40): string {
  const run = c.runs.find((r) => !r.ok);
  const tail = (run?.stderrTail ?? '').trim().split('\n').slice(-lines).join('\n');
  return [run?.error ?? 'no run recorded', tail].filter(Boolean).join('\n\n');
}
