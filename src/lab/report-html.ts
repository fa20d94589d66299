// report.html: one self-contained file, drawn from results.json alone. The verdict, the machine and the model notice
// lead; then the table, the failures grouped by cause (raw logs folded), the charts (radar, latency bars with their
// spread, agreement heat map) drawn as SVG by the page's own script from the embedded data, and the images embedded
// as WebP thumbnails (<= 1024 px).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { thumbnailWebp } from '../io/image.js';
import type { TimingStats } from '../metrics/stats.js';
import { headline } from './analyse.js';
import { failureGroups, rawLog } from './causes.js';
import { studyRows } from './report-study.js';
import { groupSettings, machineLine, modelLine, tableRows } from './report-table.js';
import { LOSSLESS_DB, cellPassed } from './verdicts.js';
import type { CellResult, LabResults, StageVerdict } from './types.js';

/** A fix to paste set as code; one in words stays text. */
const fixHtml = (s: string): string =>
  /^(gpen-lab|export|apt|pip|npm|sudo|unset)\b/.test(s) ? `<code>${esc(s)}</code>` : esc(s);
const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

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

/** The dimensions of the radar chart, each in [0, 1] (1 is best); speeds are medians, as in the table. */
export function radarValues(res: LabResults, c: CellResult): Record<string, number> {
  const speeds = res.cells.filter(cellPassed).map((x) => x.warm.total?.median ?? x.cold.total?.median ?? Infinity);
  const best = Math.min(...speeds);
  const s = c.warm.total?.median ?? c.cold.total?.median ?? null;
  const coldBest = Math.min(...res.cells.filter(cellPassed).map((x) => x.cold.total?.median ?? Infinity));
  const ok = (v: StageVerdict) => (v?.ok ? 1 : 0);
  return {
    'start-up': ok(c.stages.startup),
    dependencies: ok(c.stages.dependencies),
    inference: ok(c.stages.inference),
    output: ok(c.stages.output),
    'warm speed': cellPassed(c) && s ? best / s : 0,
    'cold start': cellPassed(c) && c.cold.total ? coldBest / c.cold.total.median : 0,
    agreement:
      c.output.deltaDbVsReference === null
        ? c.id === res.reference
          ? 1
          : 0
        : Math.max(0, 1 - Math.abs(c.output.deltaDbVsReference) / (4 * LOSSLESS_DB)),
  };
}

/** Cells whose radar polygons would be the same drawn once, named together (failing cells are often all alike). */
export function radarGroups(res: LabResults): { ids: string[]; passed: boolean; radar: Record<string, number> }[] {
  const groups = new Map<string, { ids: string[]; passed: boolean; radar: Record<string, number> }>();
  for (const c of res.cells) {
    const radar = radarValues(res, c);
    const key = `${cellPassed(c)}|${Object.values(radar)
      .map((v) => v.toFixed(3))
      .join(',')}`;
    const g = groups.get(key);
    if (g) g.ids.push(c.id);
    else groups.set(key, { ids: [c.id], passed: cellPassed(c), radar });
  }
  return [...groups.values()];
}

const spread = (t: TimingStats | null) => t && { median: t.median, min: t.min, max: t.max, runs: t.runs };

function failuresHtml(res: LabResults): string {
  const groups = failureGroups(res);
  if (!groups.length) return '';
  const parts = groups.map((g) => {
    const ids = g.cells.map((c) => c.id);
    const settings = groupSettings(res, g);
    return `<article class="fail-group" data-cells="${esc(ids.join(' '))}">
<h3><span class="cells">${esc(ids.join(', '))}</span> ${ids.length > 1 ? 'fail' : 'fails'} at ${esc(g.stage)}</h3>
<p class="cause"><b>Cause:</b> ${esc(g.cause.cause)}</p>
<p class="fix"><b>Fix:</b> ${g.cause.fix ? fixHtml(g.cause.fix) : "none known: the raw log has the process's own words"}</p>
${g.elsewhere.map((e) => `<p class="elsewhere">On a GPU host, this install's missing provider files also need: ${fixHtml(e.fix)}${e.cells.length < ids.length ? ` <i>(${esc(e.cells.join(', '))})</i>` : ''}</p>\n`).join('')}${settings.length ? `<p class="settings-head">Settings where they differ from the reference:</p><ul class="settings">${settings.map((s) => `<li>${esc(s)}</li>`).join('')}</ul>\n` : ''}${g.also.length ? `<details class="findings"><summary>${g.also.length} more ${g.also.length === 1 ? 'finding' : 'findings'}</summary><ul>${g.also.map((a) => `<li>${esc(a.finding.message)}${a.finding.fix ? ` — fix: ${fixHtml(a.finding.fix)}` : ''}${a.cells.length < ids.length ? ` <i>(${esc(a.cells.join(', '))})</i>` : ''}</li>`).join('')}</ul></details>\n` : ''}${g.cells.map((c) => `<details class="raw" data-cell="${esc(c.id)}"><summary>raw log: ${esc(c.id)}</summary><pre>${esc(rawLog(c))}</pre></details>`).join('\n')}
</article>`;
  });
  return `<section id="failures"><h2>Failures</h2>\n${parts.join('\n')}\n</section>`;
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
    cells: res.cells.map((c) => ({
      id: c.id,
      passed: cellPassed(c),
      radar: radarValues(res, c),
      cold: spread(c.cold.total),
      warm: spread(c.warm.total),
    })),
    radar: radarGroups(res),
    pairs: res.pairs,
  };
  const tableOf = (rows: [string, string[]][]): string =>
    `<table><thead><tr><th></th>${res.cells.map((c) => `<th>${esc(c.id)}</th>`).join('')}</tr></thead><tbody>${rows.map(([n, v]) => `<tr><th>${esc(n)}</th>${v.map((x) => `<td class="${/FAIL|DIFFERS|do not use/.test(x) ? 'bad' : x.startsWith('pass') || x.startsWith('recommended') || x.includes('lossless') ? 'good' : ''}">${esc(x)}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
  const glance = tableOf(studyRows(res));
  const table = tableOf(tableRows(res));
  const { model, notice } = modelLine(res);
  const title = `gpen-lab compatibility report${res.config.name ? `: ${esc(res.config.name)}` : ''}`;
  const json = JSON.stringify(data).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d2330;max-width:1400px}
table{border-collapse:collapse;margin:12px 0;font-size:13px}td,th{border:1px solid #d5d9e0;padding:4px 8px;text-align:left;vertical-align:top}
thead th{background:#eef1f5}.good{background:#e7f6ea}.bad{background:#fbe6e6}.table-wrap{overflow-x:auto}
.verdict{font-size:17px;font-weight:600;margin:8px 0}.machine{color:#3a4150;margin:4px 0}
.notice{background:#fff6dd;border:1px solid #e8d48a;border-radius:6px;padding:6px 10px;margin:8px 0}
#failures{overflow-wrap:anywhere}.fail-group{border:1px solid #efc9c9;border-left:4px solid #c83232;border-radius:6px;padding:4px 12px 8px;margin:10px 0;background:#fffbfb}
.fail-group h3{margin:6px 0;font-size:15px}.fail-group p{margin:4px 0}.fail-group ul{margin:4px 0}
code{background:#f1f2f5;padding:0 3px;border-radius:3px;overflow-wrap:anywhere}
details{margin:4px 0}summary{cursor:pointer;color:#3a4a6a}
pre{background:#f5f6f8;padding:6px;font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere;margin:4px 0}
.charts{display:flex;flex-wrap:wrap;gap:16px}.chart{border:1px solid #e1e4ea;border-radius:6px;padding:8px;max-width:100%;overflow-x:auto}
.imgs{display:flex;flex-wrap:wrap;gap:12px}.imgs figure{margin:0;max-width:420px}.imgs img{max-width:420px;height:auto;display:block;border:1px solid #ccc}
</style></head><body>
<h1>${title}</h1>
<p class="verdict" id="verdict">${esc(headline(res))}</p>
<p class="machine" id="machine">${esc(machineLine(res))}</p>
${notice ? `<p class="notice" id="model-notice">${esc(notice)}</p>\n` : ''}<p>Started ${esc(res.startedAt)}${res.finishedAt ? `, finished ${esc(res.finishedAt)}` : ' (not finished)'}. Model: ${esc(model)}; ${res.config.coldRuns} fresh processes per cell, ${res.config.warmRuns} warm runs in the last. Reference cell: <b>${esc(res.reference ?? 'none')}</b>. Times are medians (min … max; every raw timing in results.json). Environments within ${LOSSLESS_DB} dB PSNR of the reference count as visually lossless.</p>
<h2>At a glance</h2>
<div class="table-wrap" id="glance">${glance}</div>
<h2>Every dimension</h2>
<div class="table-wrap">${table}</div>
${failuresHtml(res)}
<h2>Charts</h2>
<div class="charts">
<div class="chart" data-chart="radar" id="radar"><h3>Each cell over the dimensions</h3></div>
<div class="chart" data-chart="latency" id="latency"><h3>Latency: cold first image and warm per image (median, min…max)</h3></div>
<div class="chart" data-chart="agreement" id="agreement"><h3>Agreement between passing cells (PSNR, dB)</h3></div>
</div>
<h2>Images</h2>
<div class="imgs">${images.map((i) => `<figure><img alt="${esc(i.title)}" src="${i.src}"><figcaption>${esc(i.title)}</figcaption></figure>`).join('')}</div>
<h2>Recommendations (median times)</h2><ul>${res.recommendations.map((r) => `<li>${esc(r)}</li>`).join('')}</ul>
<script type="application/json" id="lab-data">${json}</script>
<script>
(function () {
  var D = JSON.parse(document.getElementById('lab-data').textContent);
  var NS = 'http://www.w3.org/2000/svg';
  function el(n, a, p) { var e = document.createElementNS(NS, n); for (var k in a) e.setAttribute(k, a[k]); if (p) p.appendChild(e); return e; }
  function svg(host, w, h) { return el('svg', { width: w, height: h, viewBox: '0 0 ' + w + ' ' + h }, host); }
  function text(p, x, y, s, a) { var t = el('text', Object.assign({ x: x, y: y, 'font-size': 11 }, a || {}), p); t.textContent = s; return t; }
  function ms(v) { return v >= 1000 ? (v / 1000).toFixed(2) + ' s' : v.toFixed(0) + ' ms'; }
  var colors = ['#3366cc', '#dc3912', '#ff9900', '#109618', '#990099', '#0099c6', '#dd4477', '#66aa00', '#b82e2e', '#316395'];
  // radar: one polygon per group of cells that would draw the same one, its legend naming every cell of it
  (function () {
    var host = document.getElementById('radar');
    var axes = D.radar.length ? Object.keys(D.radar[0].radar) : [];
    var lines = D.radar.reduce(function (n, g) { return n + g.ids.length; }, 0) + D.radar.length;
    var W = 420, cx = 200, cy = 180, R = 130, H = Math.max(360, 24 + lines * 14), s = svg(host, W + 190, H);
    axes.forEach(function (a, i) {
      var t = -Math.PI / 2 + (2 * Math.PI * i) / axes.length;
      el('line', { x1: cx, y1: cy, x2: cx + R * Math.cos(t), y2: cy + R * Math.sin(t), stroke: '#ccc' }, s);
      text(s, cx + (R + 14) * Math.cos(t), cy + (R + 14) * Math.sin(t), a, { 'text-anchor': 'middle' });
    });
    [0.25, 0.5, 0.75, 1].forEach(function (f) { el('circle', { cx: cx, cy: cy, r: R * f, fill: 'none', stroke: '#eee' }, s); });
    var y = 20;
    D.radar.forEach(function (g, k) {
      var color = colors[k % colors.length];
      var pts = axes.map(function (a, i) { var t = -Math.PI / 2 + (2 * Math.PI * i) / axes.length, v = Math.max(0.02, g.radar[a]); return (cx + R * v * Math.cos(t)).toFixed(1) + ',' + (cy + R * v * Math.sin(t)).toFixed(1); });
      el('polygon', Object.assign({ points: pts.join(' '), fill: color, 'fill-opacity': g.passed ? 0.12 : 0.05, stroke: color, 'stroke-width': 1.5, 'data-cells': g.ids.join(' ') }, g.passed ? {} : { 'stroke-dasharray': '4 3' }), s);
      var item = el('g', { 'data-legend': g.ids.join(' ') }, s);
      el('rect', { x: W - 10, y: y, width: 10, height: 10, fill: color }, item);
      g.ids.forEach(function (id, j) { text(item, W + 4, y + 9 + j * 14, id + (j === g.ids.length - 1 && !g.passed ? ' (fails)' : '')); });
      y += g.ids.length * 14 + 8;
    });
    host.setAttribute('data-rendered', 'true');
  })();
  // latency bars: the median, with min…max
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
      el('rect', { x: L, y: y, width: Math.max(1, x(r.v.median) - L), height: 14, fill: /cold$/.test(r.id) ? '#8fa8d8' : '#3366cc', 'data-bar': r.id }, s);
      el('line', { x1: x(r.v.min), x2: x(r.v.max), y1: y + 7, y2: y + 7, stroke: '#222' }, s);
      text(s, x(r.v.max) + 4, y + 11, ms(r.v.median));
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
