// The report's summary table, in the rows a hand-run compatibility study uses: start-up, dependency loading, a full
// restoration to a PNG, the first image over fresh processes with GPU utilisation, output agreement with the |ΔPSNR|
// verdict, and a recommendation per cell; one column per cell, drawn from results.json alone.
import path from 'node:path';
import { comparable, inputsKey } from './analyse.js';
import { rootCause } from './causes.js';
import { db, sec } from './report-table.js';
import type { CellResult, LabResults, StageVerdict } from './types.js';
import { LOSSLESS_DB, cellPassed } from './verdicts.js';

const short = (s: string | null | undefined, n = 160): string => {
  const t = (s ?? '').replace(/\s+/g, ' ').trim();
  return t.length > n ? `${t.slice(0, n - 1)}…` : t;
};

const stage = (v: StageVerdict, pass: string): string => (v === null ? '—' : v.ok ? pass : `FAIL: ${short(v.reason)}`);

/** The CUDA runtime a cell resolved (the doctor's libcudart): "CUDA 12.4 (libcudart.so.12, /opt/cuda-12.4)". */
export function cudaRuntimeOf(c: CellResult): string | null {
  const rt = c.doctor?.libraries.find((l) => l.soname.startsWith('libcudart.so.'));
  if (!rt) return null;
  return rt.path ? `CUDA ${rt.version ?? '?'} (${rt.soname}, ${path.dirname(rt.path)})` : `${rt.soname} not found`;
}

/**
 * The passing cell with the shortest median first image among those restoring the compared inputs, within 0.3 dB of
 * the reference and unflagged: the one the recommendation names.
 */
export function quickest(res: LabResults): CellResult | null {
  const { common } = comparable(res);
  const ok = res.cells.filter(
    (c) =>
      cellPassed(c) &&
      c.cold.total &&
      inputsKey(c) === common &&
      c.output.visuallyLossless !== false &&
      c.flags.every((f) => f === 'reference'),
  );
  return ok.sort((a, b) => a.cold.total!.median - b.cold.total!.median)[0] ?? null;
}

function recommendation(res: LabResults, c: CellResult, best: CellResult | null): string {
  if (!cellPassed(c)) {
    const why = rootCause(res, c);
    return why?.fix ? `do not use; fix: ${short(why.fix, 220)}` : 'do not use (the raw log in the failures below)';
  }
  const notes = c.flags.filter((f) => f !== 'reference').map((f) => short(f.split(' (fix:')[0], 120));
  const lossy = c.output.visuallyLossless === false ? [`output differs from the reference by > ${LOSSLESS_DB} dB`] : [];
  const caveats = [...lossy, ...notes];
  if (inputsKey(c) !== comparable(res).common)
    return `works; restores other inputs (${c.env.inputs.map((i) => path.basename(i)).join(', ')}), so not compared`;
  if (c === best) return `recommended: the fastest first image${caveats.length ? `; ${caveats.join('; ')}` : ''}`;
  const ratio = best?.cold.total && c.cold.total ? c.cold.total.median / best.cold.total.median : null;
  return `works${ratio ? ` (first image ${ratio.toFixed(2)}x ${best!.id}'s)` : ''}${caveats.length ? `; ${caveats.join('; ')}` : ''}`;
}

const faces = (c: CellResult): string => {
  const n = c.restore?.faces?.length;
  return n === undefined ? 'written' : `${n} ${n === 1 ? 'face' : 'faces'}`;
};

/** The summary rows: dimension -> one value per cell. */
export function studyRows(res: LabResults): [string, string[]][] {
  const best = quickest(res);
  const row = (name: string, f: (c: CellResult) => string): [string, string[]] => [name, res.cells.map(f)];
  return [
    row('start-up', (c) => stage(c.stages.startup, 'pass')),
    row('dependency loading', (c) => {
      const rt = cudaRuntimeOf(c);
      return stage(c.stages.dependencies, `pass${rt && c.stages.dependencies?.ok ? `: ${rt}` : ''}`);
    }),
    row('full restoration to a PNG', (c) =>
      cellPassed(c)
        ? `pass (${faces(c)}, decoded back)`
        : c.stages.inference?.ok === false || c.stages.output?.ok === false
          ? `FAIL: ${short((c.stages.output?.ok === false ? c.stages.output : c.stages.inference)?.reason)}`
          : '—',
    ),
    row(`first image, ${res.config.coldRuns} fresh processes (median, min … max); GPU utilisation mean / peak`, (c) =>
      cellPassed(c) && c.cold.total
        ? `${sec(c.cold.total.median)} (${sec(c.cold.total.min)} … ${sec(c.cold.total.max)}, ${c.cold.total.runs} runs)${c.gpu.utilMean !== null ? `; GPU ${c.gpu.utilMean.toFixed(0)}% / ${c.gpu.utilPeak}%` : ''}`
        : '—',
    ),
    row(`output agreement (PSNR / SSIM vs reference; |ΔPSNR| < ${LOSSLESS_DB} dB)`, (c) => {
      if (!cellPassed(c)) return '—';
      if (c.id === res.reference) return 'reference';
      const d = c.output.deltaDbVsReference;
      const v = c.output.vsReference;
      return `${v ? `${db(v.psnr)} dB / ${v.ssim.toFixed(4)}; ` : ''}${d !== null ? `|Δ| ${Math.abs(d).toFixed(3)} dB: ${c.output.visuallyLossless ? 'visually lossless' : 'DIFFERS'}` : '—'}`;
    }),
    row('recommendation', (c) => recommendation(res, c, best)),
  ];
}
