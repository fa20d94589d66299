// What a lab's results say, from the cells alone: the reference, agreement between outputs, "runs but slow" flags,
// each cell's settings against the reference's, the headline and the recommendations; and the results file read
// back with its shape checked (report, --resume).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { GpenLabError } from '../errors.js';
import { writeFileAtomicSafe } from '../io/files.js';
import { encodeImage, readRgb } from '../io/image.js';
import type { Rgb8 } from '../metrics/quality.js';
import { diffHeatmap, psnr, ssim } from '../metrics/quality.js';
import type { Route } from '../runtime/routes.js';
import { fastIsStock } from './config.js';
import type { CellResult, LabResults, PairResult } from './types.js';
import { RESULTS_SCHEMA } from './types.js';
import { failureGroups, failureLine } from './causes.js';
import { LOSSLESS_DB, SLOW_RATIO, cellPassed } from './verdicts.js';

export async function rgbOf(file: string): Promise<Rgb8> {
  const r = await readRgb(file);
  return { width: r.width, height: r.height, data: r.data, channels: 3 };
}

function envDiff(a: CellResult, b: CellResult): string[] {
  const out: string[] = [];
  const keys = new Set([...Object.keys(a.env.vars), ...Object.keys(b.env.vars)]);
  for (const k of keys)
    if (a.env.vars[k] !== b.env.vars[k])
      out.push(`${k}: ${b.env.vars[k] ?? '(unset)'} vs ${a.env.vars[k] ?? '(unset)'}`);
  const sk = new Set([...Object.keys(a.env.session), ...Object.keys(b.env.session)]) as Set<
    keyof CellResult['env']['session']
  >;
  for (const k of sk)
    if (a.env.session[k] !== b.env.session[k])
      out.push(`session ${k}: ${b.env.session[k] ?? 'default'} vs ${a.env.session[k] ?? 'default'}`);
  const la = a.doctor?.libraries ?? [],
    lb = b.doctor?.libraries ?? [];
  for (const l of lb) {
    const m = la.find((x) => x.soname === l.soname);
    if (m && (m.path !== l.path || m.version !== l.version))
      out.push(
        `${l.soname}: ${l.path ?? 'missing'} (${l.version ?? '?'}) vs ${m.path ?? 'missing'} (${m.version ?? '?'})`,
      );
  }
  return out;
}

export const inputsKey = (c: CellResult): string => c.env.inputs.join('\n');
const shown = (v: unknown): string =>
  v === undefined
    ? 'default'
    : v !== null && typeof v === 'object'
      ? Object.entries(v)
          .map(([k, x]) => `${k}=${String(x)}`)
          .join(', ') || 'none'
      : String(v);

/** A cell's own settings, what it sets beyond the defaults: session options and variables ("defaults" where none). */
export function settingsOf(c: CellResult): string {
  const s = Object.entries(c.env.session)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `session ${k} ${shown(v)}`);
  const e = Object.entries(c.env.vars).map(([k, v]) => `${k}=${v}`);
  return [...s, ...e].join('; ') || 'defaults';
}

/**
 * How a cell's settings differ from the reference's: route, precision, batch, session options, variables, inputs,
 * and the library files and versions each resolved (the runtime build, where cells point at several); [] where none.
 * The provider is left out: it is the cell's column.
 */
export function settingsDiff(res: LabResults, ref: CellResult, c: CellResult): string[] {
  const out: string[] = [];
  const diff = (what: string, a: unknown, b: unknown) => {
    if (JSON.stringify(a) !== JSON.stringify(b)) out.push(`${what} ${shown(a)} (reference: ${shown(b)})`);
  };
  diff('route', routeOf(res, c), routeOf(res, ref));
  diff('precision', c.env.precision, ref.env.precision);
  const batch = (x: CellResult) => res.config.cells.find((s) => s.id === x.id)?.batch;
  diff('batch', batch(c), batch(ref));
  for (const k of new Set([...Object.keys(c.env.session), ...Object.keys(ref.env.session)]) as Set<
    keyof CellResult['env']['session']
  >)
    diff(`session ${k}`, c.env.session[k], ref.env.session[k]);
  for (const k of new Set([...Object.keys(c.env.vars), ...Object.keys(ref.env.vars)])) {
    const [a, b] = [c.env.vars[k], ref.env.vars[k]];
    if (a !== b)
      out.push(
        `${a === undefined ? `${k} unset` : `${k}=${a}`} (reference: ${b === undefined ? 'unset' : `${k}=${b}`})`,
      );
  }
  if (inputsKey(c) !== inputsKey(ref))
    out.push(
      `inputs ${c.env.inputs.map((i) => path.basename(i)).join(', ')} (reference: ${ref.env.inputs.map((i) => path.basename(i)).join(', ')})`,
    );
  const lib = (l: { path: string | null; version: string | null }) => `${l.path ?? 'missing'} (${l.version ?? '?'})`;
  for (const l of c.doctor?.libraries ?? []) {
    const m = (ref.doctor?.libraries ?? []).find((x) => x.soname === l.soname);
    if (m && (m.path !== l.path || m.version !== l.version)) out.push(`${l.soname} ${lib(l)} (reference: ${lib(m)})`);
  }
  return out;
}

const speedOf = (c: CellResult): number | null => c.warm.total?.median ?? c.cold.total?.median ?? null;

/** A cell's first output and its input: a restore's, or a command cell's. */
export function outputOf(c: CellResult): { input: string; output: string } | null {
  if (c.restore?.outputs.gpen) return { input: c.restore.input, output: c.restore.outputs.gpen };
  return c.commandOutputs?.[0] ?? null;
}

async function compareOutputs(
  a: CellResult,
  b: CellResult,
): Promise<{ psnr: number; ssim: number; diff: Rgb8 } | null> {
  const [oa, ob] = [outputOf(a), outputOf(b)];
  if (!oa || !ob || oa.input !== ob.input) return null;
  const [x, y] = [await rgbOf(oa.output), await rgbOf(ob.output)];
  if (x.width !== y.width || x.height !== y.height) return null;
  return { psnr: Math.min(psnr(x, y), 100), ssim: ssim(x, y), diff: diffHeatmap(x, y) };
}

const LATER = /^run \d+ failed at /;

/**
 * The flags read from the runs alone, made again on every reading (`gpen-lab report` too): a later run failing where
 * the first passed, and "runs but slow": >= 20% slower than the best passing cell of the same provider, route and
 * precision (the stock route is the baseline, slower by design), warm against warm, else first image against first.
 */
export function deriveFlags(res: LabResults): void {
  for (const c of res.cells) {
    c.flags = c.flags.filter((f) => !f.startsWith('runs but slow') && !LATER.test(f));
    // the warm set's own session failing after two good cold runs is not a pass to keep quiet about
    const later = c.runs.find((x, i) => i > 0 && !x.ok);
    if (later && c.runs[0]?.ok)
      c.flags.push(`run ${later.run + 1} failed at ${later.stage}: ${later.error ?? 'no result'}`);
  }
  const passing = res.cells.filter(cellPassed);
  const routeOf = (c: CellResult) => res.config.cells.find((x) => x.id === c.id)?.route ?? 'fast';
  for (const c of passing) {
    const kind = c.warm.total ? 'warm' : 'cold';
    const s = c[kind].total?.median;
    if (s === undefined) continue;
    const peers = passing.filter(
      (p) =>
        p.env.provider === c.env.provider &&
        p.env.precision === c.env.precision &&
        routeOf(p) === routeOf(c) &&
        p[kind].total,
    );
    const best = peers.sort((a, b) => a[kind].total!.median - b[kind].total!.median)[0];
    const b = best?.[kind].total?.median;
    if (best && best !== c && b !== undefined && s >= SLOW_RATIO * b) {
      const diff = envDiff(best, c);
      c.flags.push(
        `runs but slow: ${Math.round((s / b - 1) * 100)}% slower than ${best.id}${kind === 'cold' ? ' (first image)' : ''}${diff.length ? `; differences: ${diff.join('; ')}` : ''}`,
      );
    }
  }
}

/** Reference, agreement, slow flags and recommendations, from the cells alone. */
export async function analyse(res: LabResults, out: string): Promise<void> {
  const passing = res.cells.filter(cellPassed);
  const ref =
    passing.find((c) => c.id === res.config.reference) ??
    passing.find((c) => c.env.provider === 'cpu' && c.env.precision === 'fp32') ??
    passing[0] ??
    null;
  res.reference = ref?.id ?? null;
  res.pairs = [];
  for (const c of res.cells) {
    c.flags = c.flags.filter((f) => !f.startsWith('reference'));
    c.output.deltaDbVsReference = null;
    c.output.visuallyLossless = null;
    c.output.vsReference = null;
  }
  if (ref) {
    for (const c of passing) {
      if (c.output.psnr !== null && ref.output.psnr !== null && c.env.inputs.join() === ref.env.inputs.join()) {
        c.output.deltaDbVsReference = c.output.psnr - ref.output.psnr;
        c.output.visuallyLossless = Math.abs(c.output.deltaDbVsReference) < LOSSLESS_DB;
      }
      if (c === ref) continue;
      const cmp = await compareOutputs(ref, c);
      if (cmp) {
        const file = path.join(out, 'cells', c.id, 'diff-vs-reference.png');
        await writeFileAtomicSafe(
          file,
          await encodeImage(
            { width: cmp.diff.width, height: cmp.diff.height, rgb: cmp.diff.data, alpha: null },
            '.png',
          ),
        );
        c.output.vsReference = { psnr: cmp.psnr, ssim: cmp.ssim, heatmap: path.relative(out, file) };
      }
    }
    ref.flags.push('reference');
  }
  for (let i = 0; i < passing.length; i++) {
    for (let j = i + 1; j < passing.length; j++) {
      const cmp = await compareOutputs(passing[i], passing[j]);
      if (cmp)
        res.pairs.push({ a: passing[i].id, b: passing[j].id, psnr: cmp.psnr, ssim: cmp.ssim } satisfies PairResult);
    }
  }
  deriveFlags(res);
  res.recommendations = recommend(res);
}

/** A cell's route: what its restore ran, else its config's, else fast (a lab written before routes). */
function routeOf(res: LabResults, c: CellResult): Route {
  return c.restore?.route?.route ?? res.config.cells.find((x) => x.id === c.id)?.route ?? 'fast';
}

/** How the cell's session ran, from its restore's route: "C API warm set", "stock binding"; null when not recorded. */
function bindingOf(c: CellResult): string | null {
  const r = c.restore?.route;
  if (!r?.binding) return null;
  if (r.binding !== 'capi') return 'stock binding';
  const set = (x: { set: string | null }) => (x.set ? `${x.set} set` : 'with session.cudaOptions');
  return c.warmRoute ? `C API, ${set(r)} cold and ${set(c.warmRoute)} warm` : `C API ${set(r)}`;
}

/** The cells whose per-image times compare, and the fastest of them that passes everything. */
export function comparable(res: LabResults): {
  passing: CellResult[];
  common: string | undefined;
  fastest: CellResult | undefined;
} {
  const passing = res.cells.filter(cellPassed);
  // per-image times compare only on the same inputs: those of the reference (else of the most cells); the default
  // lab's CPU cells restore one face where its GPU cells restore the whole photo
  const ref = res.cells.find((c) => c.id === res.reference);
  const counts = new Map<string, number>();
  for (const c of passing) counts.set(inputsKey(c), (counts.get(inputsKey(c)) ?? 0) + 1);
  const common = ref ? inputsKey(ref) : [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
  const ok = passing.filter(
    (c) =>
      inputsKey(c) === common &&
      c.output.visuallyLossless !== false &&
      !c.flags.some(
        (f) =>
          f.startsWith('runs but slow') ||
          f.startsWith('asked for') ||
          f.startsWith("the library set is not the build's CUDA") ||
          LATER.test(f),
      ),
  );
  const fastest = [...ok].filter((c) => speedOf(c) !== null).sort((a, b) => speedOf(a)! - speedOf(b)!)[0];
  return { passing, common, fastest };
}

/** The report's first line: "2 of 8 cells pass; fastest: ... (median ...); reference ...; 6 fail for 2 reasons: ...". */
export function headline(res: LabResults): string {
  const { passing, fastest } = comparable(res);
  const parts = [`${passing.length} of ${res.cells.length} cells pass`];
  if (fastest)
    parts.push(
      `fastest: ${fastest.id} (median ${(speedOf(fastest)! / 1000).toFixed(3)} s per image ${fastest.warm.total ? 'warm' : 'cold'})`,
    );
  parts.push(`reference: ${res.reference ?? 'none'}`);
  const groups = failureGroups(res);
  const failing = groups.reduce((n, g) => n + g.cells.length, 0);
  if (groups.length === 1)
    parts.push(
      `${failing} ${failing === 1 ? 'fails' : 'fail'}: ${groups[0].cause.cause} (${groups[0].cells.map((c) => c.id).join(', ')})`,
    );
  else if (groups.length > 1)
    parts.push(
      `${failing} fail for ${groups.length} reasons (${groups.map((g) => g.cells.map((c) => c.id).join(', ')).join('; ')})`,
    );
  return `${parts.join('; ')}.`;
}

export function recommend(res: LabResults): string[] {
  const out: string[] = [];
  const { passing, common, fastest } = comparable(res);
  if (fastest) {
    const route = routeOf(res, fastest);
    const binding = bindingOf(fastest);
    // the stock route of the same provider, the baseline the fast route is measured against (the same precision
    // first); none where the provider's fast route is the stock binding too (the same session either way)
    const baseline =
      route === 'fast' && !fastIsStock(fastest.env.provider, fastest.env.precision)
        ? passing
            .filter(
              (c) => c.env.provider === fastest.env.provider && routeOf(res, c) === 'stock' && speedOf(c) !== null,
            )
            .sort(
              (a, b) =>
                Number(b.env.precision === fastest.env.precision) - Number(a.env.precision === fastest.env.precision) ||
                speedOf(a)! - speedOf(b)!,
            )[0]
        : undefined;
    // medians, as the report's table
    out.push(
      `Fastest cell that passes everything: ${fastest.id} (${fastest.env.provider} ${route} ${fastest.env.precision}${binding ? `, ${binding}` : ''}, ` +
        `median ${(speedOf(fastest)! / 1000).toFixed(3)} s per image warm${fastest.cold.total ? `, ${(fastest.cold.total.median / 1000).toFixed(2)} s cold` : ''}` +
        `${baseline ? `; ${(speedOf(baseline)! / speedOf(fastest)!).toFixed(1)}x the stock baseline ${baseline.id}` : ''}).`,
    );
  } else out.push('No cell passed every stage.');
  const apart = passing.filter((c) => inputsKey(c) !== common && speedOf(c) !== null);
  if (apart.length)
    out.push(
      `Restoring other inputs, so not compared: ${apart.map((c) => `${c.id} (${c.env.inputs.map((i) => path.basename(i)).join(', ')}: ${(speedOf(c)! / 1000).toFixed(3)} s per image warm)`).join('; ')}.`,
    );
  for (const c of passing.filter((x) => x.env.precision === 'fp16')) {
    if (c.output.deltaDbVsReference !== null)
      out.push(
        `${c.id}: fp16 ${c.output.visuallyLossless ? 'stays' : 'does not stay'} within ${LOSSLESS_DB} dB of the reference (${c.output.deltaDbVsReference >= 0 ? '+' : ''}${c.output.deltaDbVsReference.toFixed(3)} dB).`,
      );
  }
  // the fix that follows from the root cause (causes.ts), not the first finding that has one
  for (const c of res.cells.filter((x) => !cellPassed(x))) out.push(failureLine(res, c));
  for (const c of passing)
    for (const f of c.flags.filter((x) => x.startsWith('runs but slow') || x.startsWith('asked for')))
      out.push(`${c.id} ${f}.`);
  return out;
}

export function readResults(file: string): LabResults {
  let r: LabResults;
  try {
    r = JSON.parse(readFileSync(file, 'utf8')) as LabResults;
  } catch (e) {
    throw new GpenLabError(
      'E_CONFIG',
      `Cannot read lab results ${file}: ${(e as Error).message}`,
      'Pass the results.json a lab wrote (or run the lab without --resume).',
      { input: file },
    );
  }
  if (r === null || typeof r !== 'object' || r.schema !== RESULTS_SCHEMA)
    throw new GpenLabError(
      'E_CONFIG',
      `${file} is not gpen-lab lab results (schema ${String((r as { schema?: unknown } | null)?.schema)}, expected ${RESULTS_SCHEMA})`,
      'Pass the results.json a lab wrote.',
      { input: file },
    );
  // the shape the report and --resume read: a damaged or edited file is refused here, not met as a crash later
  const bad = !Array.isArray(r.cells)
    ? 'cells is not a list'
    : r.cells.find(
          (c) =>
            !c ||
            typeof c !== 'object' ||
            typeof c.id !== 'string' ||
            !c.env ||
            typeof c.env !== 'object' ||
            !Array.isArray(c.runs) ||
            !c.output ||
            !c.cold ||
            !c.warm,
        )
      ? 'a cell lacks id, env, runs, cold, warm or output'
      : !r.config || typeof r.config !== 'object' || !Array.isArray(r.config.cells) || !Array.isArray(r.config.inputs)
        ? 'config lacks its cells or inputs'
        : !r.machine || typeof r.machine !== 'object'
          ? 'machine is missing'
          : null;
  if (bad)
    throw new GpenLabError(
      'E_CONFIG',
      `${file} is damaged: ${bad}`,
      'Pass the results.json a lab wrote, unedited; or run the lab again without --resume.',
      { input: file },
    );
  return r;
}
