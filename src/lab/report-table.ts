// What report.md and report.html both say, from results.json alone: the table (rows are the dimensions, columns the
// cells), the machine and GPU line, the model notice. Times are medians everywhere (the recommendations' too), with
// min … max and the run count; every raw timing stays in results.json.
import type { TimingStats } from '../metrics/stats.js';
import { settingsDiff, settingsOf } from './analyse.js';
import type { FailureGroup } from './causes.js';
import { LOSSLESS_DB, cellPassed } from './verdicts.js';
import type { CellResult, LabResults, StageVerdict } from './types.js';

export const sec = (ms: number): string =>
  ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms >= 100 ? 0 : 1)} ms`;
/** "1.57 s (1.52 s … 1.63 s, 3 runs)": the median, the range, the count. */
export const stat = (s: TimingStats | null | undefined): string =>
  s ? `${sec(s.median)} (${sec(s.min)} … ${sec(s.max)}, ${s.runs} ${s.runs === 1 ? 'run' : 'runs'})` : '—';
const verdict = (v: StageVerdict): string => (v === null ? '—' : v.ok ? 'pass' : 'FAIL');
export const db = (x: number | null): string => (x === null ? '—' : x >= 100 ? '∞' : x.toFixed(2));

const STAGE_ROWS = [
  'spawn',
  'module',
  'model',
  'session',
  'decode',
  'detect',
  'align',
  'infer',
  'paste',
  'encode',
  'write',
  'command',
];

/** A cell's settings against the reference's: "reference (…)", "as reference", or what differs. */
export function settingsCell(res: LabResults, c: CellResult): string {
  const ref = res.cells.find((x) => x.id === res.reference);
  if (c === ref) return `reference (${settingsOf(c)})`;
  if (!ref) return settingsOf(c);
  const d = settingsDiff(res, ref, c);
  return d.length ? d.join('; ') : 'as reference';
}

/** How the cells of a failure group differ from the reference, one line per cell that does. */
export function groupSettings(res: LabResults, g: FailureGroup): string[] {
  return g.cells
    .map((c) => [c.id, settingsCell(res, c)] as const)
    .filter(([, s]) => s !== 'as reference')
    .map(([id, s]) => `${id}: ${s}`);
}

/** The rows of the main table: dimension -> one value per cell. */
export function tableRows(res: LabResults): [string, string[]][] {
  const cs = res.cells;
  const row = (name: string, f: (c: CellResult) => string): [string, string[]] => [name, cs.map(f)];
  const rows: [string, string[]][] = [
    row('provider, route, precision', (c) =>
      c.env.command
        ? `command ${c.env.command.argv.slice(0, 2).join(' ')}… ${c.env.precision} (${c.env.launcher})`
        : `${c.env.provider} ${c.env.route ?? 'fast'} ${c.env.precision}${c.env.runtime ? ` (${c.env.runtime})` : ''}${c.env.launcher !== 'local' ? ` (${c.env.launcher})` : ''}`,
    ),
    row('settings vs reference', (c) => settingsCell(res, c)),
    row('start-up', (c) => verdict(c.stages.startup)),
    row('dependencies', (c) => verdict(c.stages.dependencies)),
    row(
      'inference (ran on)',
      (c) => `${verdict(c.stages.inference)}${c.provider.ran ? ` (${c.provider.ran.join('+')})` : ''}`,
    ),
    row('output', (c) => verdict(c.stages.output)),
    row('first image, cold (median, min … max, runs)', (c) => (cellPassed(c) ? stat(c.cold.total) : '—')),
  ];
  for (const k of STAGE_ROWS) {
    if (cs.some((c) => c.cold.stages[k]))
      rows.push(
        row(`  cold: ${k} (median)`, (c) =>
          c.cold.stages[k]
            ? sec(c.cold.stages[k].median)
            : c.env.command && cellPassed(c) && k !== 'command'
              ? 'not reported'
              : '—',
        ),
      );
  }
  rows.push(
    row('warm per image (median, min … max, runs)', (c) =>
      c.env.command && cellPassed(c) && !c.warm.total ? 'not reported' : stat(c.warm.total),
    ),
    row('GPU utilisation mean / peak', (c) =>
      c.gpu.utilMean !== null ? `${c.gpu.utilMean.toFixed(0)}% / ${c.gpu.utilPeak}%` : '—',
    ),
    row('GPU memory peak (process / device)', (c) =>
      c.gpu.memUsedPeakMiB !== null
        ? `${c.gpu.processPeakMiB !== null ? `${c.gpu.processPeakMiB.toFixed(0)}` : '?'} / ${c.gpu.memUsedPeakMiB.toFixed(0)} MiB`
        : '—',
    ),
    row('PSNR / SSIM vs input', (c) =>
      c.output.psnr !== null ? `${db(c.output.psnr)} dB / ${c.output.ssim!.toFixed(4)}` : '—',
    ),
    row(`Δ PSNR vs reference (< ${LOSSLESS_DB} dB)`, (c) =>
      c.id === res.reference
        ? 'reference'
        : c.output.deltaDbVsReference !== null
          ? `${c.output.deltaDbVsReference >= 0 ? '+' : ''}${c.output.deltaDbVsReference.toFixed(3)} dB ${c.output.visuallyLossless ? 'lossless' : 'DIFFERS'}`
          : '—',
    ),
    row('output vs reference (PSNR / SSIM)', (c) =>
      c.output.vsReference ? `${db(c.output.vsReference.psnr)} dB / ${c.output.vsReference.ssim.toFixed(4)}` : '—',
    ),
    row(
      'flags',
      (c) =>
        c.flags
          .filter((f) => f !== 'reference')
          .map((f) => f.split(';')[0])
          .join('; ') || '—',
    ),
  );
  return rows;
}

interface Machine {
  cpu?: string;
  cores?: number;
  memoryGiB?: number;
  os?: string;
  node?: string;
  onnxruntime?: string;
  gpu?: {
    source?: string;
    devices?: { name: string; computeCapability?: string | null; memoryTotalMiB?: number | null }[];
    driver?: string | null;
    cuda?: string | null;
  };
}

/** "Machine: … (16 cores, 125.8 GiB), …; GPU: NVIDIA H100 80GB HBM3 (compute 9.0, 81559 MiB), driver …, CUDA 13.0." */
export function machineLine(res: LabResults): string {
  const m = res.machine as Machine;
  const g = m.gpu;
  const devices = g?.devices ?? [];
  const gpu = devices.length
    ? `${devices.map((d) => `${d.name}${d.computeCapability ? ` (compute ${d.computeCapability}${d.memoryTotalMiB ? `, ${d.memoryTotalMiB} MiB` : ''})` : ''}`).join(', ')}, driver ${g?.driver ?? '?'}${g?.cuda ? `, CUDA ${g.cuda}` : ''}`
    : g
      ? 'none (no NVIDIA GPU or driver found)'
      : 'not recorded';
  return `Machine: ${m.cpu ?? '?'} (${m.cores ?? '?'} cores${m.memoryGiB ? `, ${m.memoryGiB} GiB` : ''})${m.os ? `, ${m.os}` : ''}, Node ${m.node ?? '?'}, onnxruntime-node ${m.onnxruntime ?? '?'}; GPU: ${gpu}.`;
}

/** The model, and where its outputs are not restorations, a notice saying so (the timings are real either way). */
export function modelLine(res: LabResults): { model: string; notice: string | null } {
  const m = res.config.model;
  if (m.file) return { model: m.file, notice: null };
  if (m.identity)
    return {
      model: `identity-${m.identity}`,
      notice: `Test model: identity-${m.identity} returns its input, so the outputs are not restorations; the timings and the agreement between cells are real.`,
    };
  return {
    model: `synthetic GPEN-${m.synthetic ?? 512}`,
    notice: `Synthetic weights: GPEN-${m.synthetic ?? 512} with seeded random weights (seed ${m.seed ?? 0}), so the outputs are not restorations; the timings and the agreement between cells are real.`,
  };
}
