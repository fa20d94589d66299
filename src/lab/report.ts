// report.md and report.html from results.json alone (never by measuring again). The HTML is one self-contained file:
// the data embedded as JSON, charts drawn by its own script as SVG (radar per cell, latency bars with spread, the
// agreement heat map), images embedded as WebP thumbnails (<= 1024 px).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomicSafe } from '../io/files.js';
import { thumbnailWebp } from '../io/image.js';
import type { TimingStats } from '../metrics/stats.js';
import { LOSSLESS_DB, cellPassed } from './verdicts.js';
import type { CellResult, LabResults, StageVerdict } from './types.js';

const sec = (ms: number): string => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms >= 100 ? 0 : 1)} ms`);
const stat = (s: TimingStats | null | undefined): string => (s ? `${sec(s.mean)} ± ${sec(s.stddev)} (${s.runs})` : '—');
const verdict = (v: StageVerdict): string => (v === null ? '—' : v.ok ? 'pass' : 'FAIL');
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const md = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const db = (x: number | null): string => (x === null ? '—' : x >= 100 ? '∞' : x.toFixed(2));

const STAGE_ROWS = ['spawn', 'module', 'model', 'session', 'decode', 'detect', 'align', 'infer', 'paste', 'encode', 'write'];

/** The rows of the main table: dimension -> one value per cell. */
export function tableRows(res: LabResults): [string, string[]][] {
  const cs = res.cells;
  const row = (name: string, f: (c: CellResult) => string): [string, string[]] => [name, cs.map(f)];
  const rows: [string, string[]][] = [
    row('provider, route, precision', (c) => `${c.env.provider} ${c.env.route ?? 'fast'} ${c.env.precision}`),
    row('environment', (c) => Object.entries(c.env.vars).map(([k, v]) => `${k}=${v}`).join(' ') || 'default'),
    row('start-up', (c) => verdict(c.stages.startup)),
    row('dependencies', (c) => verdict(c.stages.dependencies)),
    row('inference (ran on)', (c) => `${verdict(c.stages.inference)}${c.provider.ran ? ` (${c.provider.ran.join('+')})` : ''}`),
    row('output', (c) => verdict(c.stages.output)),
    row('first image, cold (mean ± σ, runs)', (c) => (cellPassed(c) ? stat(c.cold.total) : '—')),
  ];
  for (const k of STAGE_ROWS) {
    if (cs.some((c) => c.cold.stages[k])) rows.push(row(`  cold: ${k}`, (c) => (c.cold.stages[k] ? sec(c.cold.stages[k].median) : '—')));
  }
  rows.push(
    row('warm per image (mean ± σ, runs)', (c) => stat(c.warm.total)),
    row('GPU utilisation mean / peak', (c) => (c.gpu.utilMean !== null ? `${c.gpu.utilMean.toFixed(0)}% / ${c.gpu.utilPeak}%` : '—')),
    row('GPU memory peak (process / device)', (c) => (c.gpu.memUsedPeakMiB !== null ? `${c.gpu.processPeakMiB !== null ? `${c.gpu.processPeakMiB.toFixed(0)}` : '?'} / ${c.gpu.memUsedPeakMiB.toFixed(0)} MiB` : '—')),
    row('PSNR / SSIM vs input', (c) => (c.output.psnr !== null ? `${db(c.output.psnr)} dB / ${c.output.ssim!.toFixed(4)}` : '—')),
    row(`Δ PSNR vs reference (< ${LOSSLESS_DB} dB)`, (c) => (c.id === res.reference ? 'reference' : c.output.deltaDbVsReference !== null ? `${c.output.deltaDbVsReference >= 0 ? '+' : ''}${c.output.deltaDbVsReference.toFixed(3)} dB ${c.output.visuallyLossless ? 'lossless' : 'DIFFERS'}` : '—')),
    row('output vs reference (PSNR / SSIM)', (c) => (c.output.vsReference ? `${db(c.output.vsReference.psnr)} dB / ${c.output.vsReference.ssim.toFixed(4)}` : '—')),
    row('flags', (c) => c.flags.filter((f) => f !== 'reference').map((f) => f.split(';')[0]).join('; ') || '—'),
  );
  return rows;
}

function failures(res: LabResults): { id: string; stage: string; error: string; fixes: string[]; stderr: string }[] {
  return res.cells.filter((c) => !cellPassed(c)).map((c) => {
    const run = c.runs.find((r) => !r.ok);
    const all = (c.doctor?.findings ?? []).filter((f) => f.verdict === 'fail').map((f) => `${f.message}${f.fix ? ` — fix: ${f.fix}` : ''}`);
    const fixes = all.length > 4 ? [...all.slice(0, 4), `${all.length - 4} more doctor findings in results.json`] : all;
    return { id: c.id, stage: run?.stage ?? (c.status === 'running' ? 'interrupted' : 'startup'), error: run?.error ?? 'no run recorded', fixes, stderr: (run?.stderrTail ?? '').split('\n').slice(-6).join('\n') };
  });
}

export function renderMarkdown(res: LabResults): string {
  const cs = res.cells;
  const m = res.machine as { cpu?: string; cores?: number; node?: string; onnxruntime?: string; gpu?: { devices?: { name: string }[]; driver?: string | null } };
  const lines: string[] = [
    `# gpen-lab compatibility report${res.config.name ? `: ${res.config.name}` : ''}`, '',
    `Started ${res.startedAt}${res.finishedAt ? `, finished ${res.finishedAt}` : ' (not finished)'}. Machine: ${m.cpu ?? '?'} (${m.cores ?? '?'} cores), Node ${m.node ?? '?'}, onnxruntime-node ${m.onnxruntime ?? '?'}, GPU: ${m.gpu?.devices?.length ? `${m.gpu.devices.map((d) => d.name).join(', ')}, driver ${m.gpu.driver ?? '?'}` : 'none'}.`,
    `Model: ${res.config.model.file ?? (res.config.model.identity ? `identity-${res.config.model.identity}` : `synthetic GPEN-${res.config.model.synthetic} (seeded weights: outputs are not restorations)`)}; ${res.config.coldRuns} fresh processes per cell, ${res.config.warmRuns} warm runs in the last. Reference: ${res.reference ?? 'none (no cell passed)'}.`, '',
    `| | ${cs.map((c) => c.id).join(' | ')} |`, `|---|${cs.map(() => '---').join('|')}|`,
    ...tableRows(res).map(([name, vals]) => `| ${md(name)} | ${vals.map(md).join(' | ')} |`), '',
  ];
  const fails = failures(res);
  if (fails.length) {
    lines.push('## Failures', '');
    for (const f of fails) {
      lines.push(`- **${f.id}** fails at ${f.stage}: ${md(f.error)}`);
      for (const x of f.fixes) lines.push(`  - ${md(x)}`);
      if (f.stderr.trim()) lines.push('', '  ```', ...f.stderr.split('\n').map((l) => `  ${l}`), '  ```');
    }
    lines.push('');
  }
  if (res.pairs.length) {
    lines.push('## Agreement between passing cells', '', '| a | b | PSNR | SSIM |', '|---|---|---|---|', ...res.pairs.map((p) => `| ${p.a} | ${p.b} | ${db(p.psnr)} dB | ${p.ssim.toFixed(4)} |`), '');
  }
  lines.push('## Recommendations', '', ...res.recommendations.map((r) => `- ${md(r)}`), '');
  return lines.join('\n');
}

async function embed(file: string | null, base: string): Promise<string | null> {
  if (!file) return null;
  const f = path.isAbsolute(file) ? file : path.join(base, file);
  if (!existsSync(f)) return null;
  try {
    return `data:image/webp;base64,${(await thumbnailWebp(f, 1024)).toString('base64')}`;
  } catch {
    return null;
  }
}

/** The dimensions of the radar chart, each in [0, 1] (1 is best). */
export function radarValues(res: LabResults, c: CellResult): Record<string, number> {
  const speeds = res.cells.filter(cellPassed).map((x) => x.warm.total?.median ?? x.cold.total?.median ?? Infinity);
  const best = Math.min(...speeds);
  const s = c.warm.total?.median ?? c.cold.total?.median ?? null;
  const coldBest = Math.min(...res.cells.filter(cellPassed).map((x) => x.cold.total?.mean ?? Infinity));
  const ok = (v: StageVerdict) => (v?.ok ? 1 : 0);
  return {
    'start-up': ok(c.stages.startup), dependencies: ok(c.stages.dependencies), inference: ok(c.stages.inference), output: ok(c.stages.output),
    'warm speed': cellPassed(c) && s ? best / s : 0,
    'cold start': cellPassed(c) && c.cold.total ? coldBest / c.cold.total.mean : 0,
    agreement: c.output.deltaDbVsReference === null ? (c.id === res.reference ? 1 : 0) : Math.max(0, 1 - Math.abs(c.output.deltaDbVsReference) / (4 * LOSSLESS_DB)),
  };
}

export async function renderHtml(res: LabResults, base: string): Promise<string> {
  const input = res.cells.find((c) => c.restore)?.restore?.input ?? null;
  const images: { title: string; src: string }[] = [];
  const inImg = await embed(input, base);
  if (inImg) images.push({ title: `input: ${path.basename(input!)}`, src: inImg });
  for (const c of res.cells.filter(cellPassed)) {
    const o = await embed(c.restore?.outputs.gpen ?? null, base);
    if (o) images.push({ title: `${c.id}: output`, src: o });
    const d = await embed(c.output.vsReference?.heatmap ?? null, base);
    if (d) images.push({ title: `${c.id}: difference vs ${res.reference} (x8)`, src: d });
  }
  const data = {
    reference: res.reference,
    cells: res.cells.map((c) => ({ id: c.id, passed: cellPassed(c), radar: radarValues(res, c), cold: c.cold.total && { mean: c.cold.total.mean, min: c.cold.total.min, max: c.cold.total.max, sd: c.cold.total.stddev }, warm: c.warm.total && { mean: c.warm.total.mean, min: c.warm.total.min, max: c.warm.total.max, sd: c.warm.total.stddev } })),
    pairs: res.pairs,
  };
  const rows = tableRows(res);
  const table = `<table><thead><tr><th></th>${res.cells.map((c) => `<th>${esc(c.id)}</th>`).join('')}</tr></thead><tbody>${rows.map(([n, v]) => `<tr><th>${esc(n)}</th>${v.map((x) => `<td class="${/FAIL|DIFFERS/.test(x) ? 'bad' : x.startsWith('pass') || x.includes('lossless') ? 'good' : ''}">${esc(x)}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
  const fails = failures(res).map((f) => `<li><b>${esc(f.id)}</b> fails at ${esc(f.stage)}: ${esc(f.error)}${f.fixes.length ? `<ul>${f.fixes.map((x) => `<li>${esc(x)}</li>`).join('')}</ul>` : ''}${f.stderr.trim() ? `<pre>${esc(f.stderr)}</pre>` : ''}</li>`).join('');
  const json = JSON.stringify(data).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gpen-lab report${res.config.name ? `: ${esc(res.config.name)}` : ''}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d2330;max-width:1400px}
table{border-collapse:collapse;margin:12px 0;font-size:13px}td,th{border:1px solid #d5d9e0;padding:4px 8px;text-align:left;vertical-align:top}
thead th{background:#eef1f5}.good{background:#e7f6ea}.bad{background:#fbe6e6}pre{background:#f5f6f8;padding:6px;overflow:auto;font-size:12px}
.charts{display:flex;flex-wrap:wrap;gap:16px}.chart{border:1px solid #e1e4ea;border-radius:6px;padding:8px}
.imgs{display:flex;flex-wrap:wrap;gap:12px}.imgs figure{margin:0;max-width:420px}.imgs img{max-width:420px;height:auto;display:block;border:1px solid #ccc}
</style></head><body>
<h1>gpen-lab compatibility report${res.config.name ? `: ${esc(res.config.name)}` : ''}</h1>
<p>Started ${esc(res.startedAt)}. Reference cell: <b>${esc(res.reference ?? 'none')}</b>. Environments within ${LOSSLESS_DB} dB PSNR of the reference count as visually lossless.</p>
${table}
<h2>Charts</h2>
<div class="charts">
<div class="chart" data-chart="radar" id="radar"><h3>Each cell over the dimensions</h3></div>
<div class="chart" data-chart="latency" id="latency"><h3>Latency: cold first image and warm per image (mean, min…max)</h3></div>
<div class="chart" data-chart="agreement" id="agreement"><h3>Agreement between passing cells (PSNR, dB)</h3></div>
</div>
<h2>Images</h2>
<div class="imgs">${images.map((i) => `<figure><img alt="${esc(i.title)}" src="${i.src}"><figcaption>${esc(i.title)}</figcaption></figure>`).join('')}</div>
${fails ? `<h2>Failures</h2><ul>${fails}</ul>` : ''}
<h2>Recommendations</h2><ul>${res.recommendations.map((r) => `<li>${esc(r)}</li>`).join('')}</ul>
<script type="application/json" id="lab-data">${json}</script>
<script>
(function () {
  var D = JSON.parse(document.getElementById('lab-data').textContent);
  var NS = 'http://www.w3.org/2000/svg';
  function el(n, a, p) { var e = document.createElementNS(NS, n); for (var k in a) e.setAttribute(k, a[k]); if (p) p.appendChild(e); return e; }
  function svg(host, w, h) { return el('svg', { width: w, height: h, viewBox: '0 0 ' + w + ' ' + h }, host); }
  function text(p, x, y, s, a) { var t = el('text', Object.assign({ x: x, y: y, 'font-size': 11 }, a || {}), p); t.textContent = s; return t; }
  var colors = ['#3366cc', '#dc3912', '#ff9900', '#109618', '#990099', '#0099c6', '#dd4477', '#66aa00', '#b82e2e', '#316395'];
  // radar
  (function () {
    var host = document.getElementById('radar');
    var axes = D.cells.length ? Object.keys(D.cells[0].radar) : [];
    var W = 420, H = 360, cx = 200, cy = 180, R = 130, s = svg(host, W + 140, H);
    axes.forEach(function (a, i) {
      var t = -Math.PI / 2 + (2 * Math.PI * i) / axes.length;
      el('line', { x1: cx, y1: cy, x2: cx + R * Math.cos(t), y2: cy + R * Math.sin(t), stroke: '#ccc' }, s);
      text(s, cx + (R + 14) * Math.cos(t), cy + (R + 14) * Math.sin(t), a, { 'text-anchor': 'middle' });
    });
    [0.25, 0.5, 0.75, 1].forEach(function (f) { el('circle', { cx: cx, cy: cy, r: R * f, fill: 'none', stroke: '#eee' }, s); });
    D.cells.forEach(function (c, k) {
      var pts = axes.map(function (a, i) { var t = -Math.PI / 2 + (2 * Math.PI * i) / axes.length, v = Math.max(0.02, c.radar[a]); return (cx + R * v * Math.cos(t)).toFixed(1) + ',' + (cy + R * v * Math.sin(t)).toFixed(1); });
      el('polygon', { points: pts.join(' '), fill: colors[k % colors.length], 'fill-opacity': 0.12, stroke: colors[k % colors.length], 'stroke-width': 1.5, 'data-cell': c.id }, s);
      el('rect', { x: W - 10, y: 20 + k * 16, width: 10, height: 10, fill: colors[k % colors.length] }, s);
      text(s, W + 4, 29 + k * 16, c.id);
    });
    host.setAttribute('data-rendered', 'true');
  })();
  // latency bars with spread
  (function () {
    var host = document.getElementById('latency');
    var rows = [];
    D.cells.forEach(function (c) { if (c.cold) rows.push({ id: c.id + ' cold', v: c.cold }); if (c.warm) rows.push({ id: c.id + ' warm', v: c.warm }); });
    var W = 520, L = 150, H = 30 + rows.length * 22, s = svg(host, W, Math.max(H, 60));
    var max = Math.max.apply(null, rows.map(function (r) { return r.v.max; }).concat([1]));
    var x = function (v) { return L + ((W - L - 60) * v) / max; };
    rows.forEach(function (r, i) {
      var y = 20 + i * 22;
      text(s, L - 6, y + 11, r.id, { 'text-anchor': 'end' });
      el('rect', { x: L, y: y, width: Math.max(1, x(r.v.mean) - L), height: 14, fill: /cold$/.test(r.id) ? '#8fa8d8' : '#3366cc', 'data-bar': r.id }, s);
      el('line', { x1: x(r.v.min), x2: x(r.v.max), y1: y + 7, y2: y + 7, stroke: '#222' }, s);
      text(s, x(r.v.max) + 4, y + 11, (r.v.mean >= 1000 ? (r.v.mean / 1000).toFixed(2) + ' s' : r.v.mean.toFixed(0) + ' ms'));
    });
    if (!rows.length) text(s, 10, 30, 'no cell produced an image');
    host.setAttribute('data-rendered', 'true');
  })();
  // agreement heat map
  (function () {
    var host = document.getElementById('agreement');
    var ids = D.cells.filter(function (c) { return c.passed; }).map(function (c) { return c.id; });
    var C = 46, L = 120, s = svg(host, L + C * ids.length + 20, L + C * ids.length + 20);
    var val = function (a, b) { if (a === b) return Infinity; for (var i = 0; i < D.pairs.length; i++) { var p = D.pairs[i]; if ((p.a === a && p.b === b) || (p.a === b && p.b === a)) return p.psnr; } return null; };
    ids.forEach(function (a, i) {
      text(s, L - 6, L + i * C + C / 2 + 4, a, { 'text-anchor': 'end' });
      text(s, L + i * C + C / 2, L - 6, a, { 'text-anchor': 'start', transform: 'rotate(-45 ' + (L + i * C + C / 2) + ' ' + (L - 6) + ')' });
      ids.forEach(function (b, j) {
        var v = val(a, b), f = v === null ? null : Math.max(0, Math.min(1, (Math.min(v, 60) - 20) / 40));
        el('rect', { x: L + j * C, y: L + i * C, width: C - 2, height: C - 2, fill: f === null ? '#eee' : 'hsl(' + Math.round(120 * f) + ',65%,55%)', 'data-cell': a + '|' + b }, s);
        text(s, L + j * C + C / 2 - 1, L + i * C + C / 2 + 3, v === null ? '–' : v === Infinity || v >= 100 ? '∞' : v.toFixed(1), { 'text-anchor': 'middle', 'font-size': 10 });
      });
    });
    if (!ids.length) text(s, 10, 30, 'no passing cells to compare');
    host.setAttribute('data-rendered', 'true');
  })();
})();
</script>
</body></html>
`;
}

export async function writeReport(res: LabResults, outDir: string): Promise<{ md: string; html: string }> {
  const mdFile = path.join(outDir, 'report.md');
  const htmlFile = path.join(outDir, 'report.html');
  await writeFileAtomicSafe(mdFile, renderMarkdown(res));
  await writeFileAtomicSafe(htmlFile, await renderHtml(res, outDir));
  return { md: mdFile, html: htmlFile };
}
