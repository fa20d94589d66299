// report.html in a real browser (Debian's chromium through playwright-core): it loads offline with no console
// errors, every chart has rendered its SVG, the images are embedded; the verdict, the machine and the model notice
// lead; failing cells are grouped by cause with their raw logs folded and nothing wider than the page; a screenshot is
// kept in test-artifacts/.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { chromium } from 'playwright-core';
import { normalizeConfig } from '../src/lab/config.js';
import { renderHtml } from '../src/lab/report.js';
import { readResults, runLab } from '../src/lab/runner.js';
import type { LabResults } from '../src/lab/types.js';

function findChromium(): string {
  for (const c of ['chromium', 'chromium-browser']) {
    const r = spawnSync('sh', ['-c', `command -v ${c}`], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  }
  throw new Error(
    'chromium is not installed: the report test needs a real browser (apt-get install -y chromium; npm test installs it when run as root: scripts/ensure-test-deps.sh)',
  );
}

let tmp: string;
let html: string;
let res: LabResults;
let browser: Browser;
before(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-report-'));
  // two CPU cells pass; two CUDA cells fail for one reason on a machine without the GPU provider (or without a GPU)
  const cfg = normalizeConfig(
    {
      inputs: [path.resolve('assets/demo-face.png')],
      model: { identity: 64 },
      coldRuns: 2,
      warmRuns: 2,
      timeoutSec: 60,
      cells: [
        { provider: 'cpu', id: 'cpu' },
        { provider: 'cpu', id: 'cpu-1t', session: { intraOpNumThreads: 1 } },
        { provider: 'cuda', id: 'cuda' },
        { provider: 'cuda', id: 'cuda-stock', route: 'stock' },
      ],
    },
    tmp,
  );
  await runLab(cfg, { out: tmp });
  html = path.join(tmp, 'report.html');
  res = readResults(path.join(tmp, 'results.json'));
  browser = await chromium.launch({ executablePath: findChromium(), args: ['--no-sandbox'] });
});
after(async () => {
  await browser?.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function open(width = 1400): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width, height: 1000 } });
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  // offline: any request leaving the file is an error
  await page.route(/^(?!file:|data:)/, (route) => {
    errors.push(`network request: ${route.request().url()}`);
    return route.abort();
  });
  await page.goto(`file://${html}`);
  return { page, errors };
}

const text = (page: Page, sel: string) => page.$eval(sel, (e) => (e as HTMLElement).innerText.trim());

describe('report.html in a browser', () => {
  it('loads offline with no console errors and every chart rendered', async () => {
    const { page, errors } = await open();
    const charts = await page.$$eval('[data-chart]', (els) =>
      els.map((e) => ({
        id: e.id,
        rendered: e.getAttribute('data-rendered'),
        shapes: e.querySelectorAll('svg polygon, svg rect, svg line').length,
      })),
    );
    assert.deepEqual(
      charts.map((c) => [c.id, c.rendered]),
      [
        ['radar', 'true'],
        ['latency', 'true'],
        ['agreement', 'true'],
      ],
    );
    for (const c of charts) assert.ok(c.shapes > 3, `${c.id} drew ${c.shapes} shapes`);
    assert.equal(
      await page.$$eval('rect[data-bar]', (p) => p.length),
      4,
      'cold and warm bars of the two passing cells',
    );
    const imgs = await page.$$eval('img', (is) =>
      is.map((i) => ({
        ok: (i as HTMLImageElement).complete && (i as HTMLImageElement).naturalWidth > 0,
        src: i.getAttribute('src')!.slice(0, 15),
      })),
    );
    assert.ok(imgs.length >= 3 && imgs.every((i) => i.ok && i.src === 'data:image/webp'), JSON.stringify(imgs));
    assert.deepEqual(errors, []);
    const shots = path.resolve('test-artifacts');
    mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: path.join(shots, 'report.png'), fullPage: true });
    assert.ok(statSync(path.join(shots, 'report.png')).size > 10_000);
    await page.close();
    assert.ok(statSync(html).size < 4 * 2 ** 20, 'the report stays under 4 MB');
    assert.match(readFileSync(html, 'utf8'), /<script type="application\/json" id="lab-data">/);
  });

  it('leads with the verdict, the machine and GPU line, and the notice that the outputs are not restorations', async () => {
    const { page } = await open();
    const cpu = res.cells
      .filter((c) => c.id.startsWith('cpu'))
      .sort((a, b) => a.warm.total!.median - b.warm.total!.median)[0];
    const verdict = await text(page, '#verdict');
    assert.ok(
      verdict.startsWith(
        `2 of 4 cells pass; fastest: ${cpu.id} (median ${(cpu.warm.total!.median / 1000).toFixed(3)} s per image warm); reference: cpu; 2 fail: `,
      ),
      verdict,
    );
    assert.ok(verdict.endsWith(' (cuda, cuda-stock).'), verdict);
    const gpu = res.machine.gpu as { devices: { name: string }[] };
    if (gpu.devices.length === 0) assert.match(verdict, /2 fail: this machine has no NVIDIA GPU/);
    const machine = await text(page, '#machine');
    assert.match(
      machine,
      new RegExp(
        `^Machine: .* \\(${res.machine.cores as number} cores.*\\), .*Node v\\d+.*, onnxruntime-node ${(res.machine.onnxruntime as string).replace(/\./g, '\\.')}; GPU: `,
      ),
    );
    assert.ok(
      machine.includes(gpu.devices.length ? gpu.devices[0].name : 'GPU: none (no NVIDIA GPU or driver found)'),
      machine,
    );
    assert.match(
      await text(page, '#model-notice'),
      /^Test model: identity-64 returns its input, so the outputs are not restorations/,
    );
    // the same results with synthetic weights: the notice says so
    const synthetic = await renderHtml({ ...res, config: { ...res.config, model: { synthetic: 512, seed: 0 } } }, tmp);
    await page.setContent(synthetic);
    assert.match(
      await text(page, '#model-notice'),
      /^Synthetic weights: GPEN-512 with seeded random weights \(seed 0\), so the outputs are not restorations/,
    );
    await page.close();
  });

  it('groups the cells that fail for one reason: both names, one cause and fix, the raw logs folded, nothing wider than the page', async () => {
    const { page } = await open(760);
    const groups = await page.$$eval('#failures .fail-group', (gs) =>
      gs.map((g) => ({
        cells: g.getAttribute('data-cells'),
        heading: (g.querySelector('h3') as HTMLElement).innerText,
        causes: g.querySelectorAll('.cause').length,
        fixes: [...g.querySelectorAll('.fix')].map((f) => (f as HTMLElement).innerText),
        raw: [...g.querySelectorAll('details.raw')].map((d) => ({
          cell: d.getAttribute('data-cell'),
          open: (d as HTMLDetailsElement).open,
          shown: d.querySelector('pre')!.checkVisibility(),
          log: d.querySelector('pre')!.textContent,
        })),
      })),
    );
    assert.equal(groups.length, 1, JSON.stringify(groups));
    const [g] = groups;
    assert.equal(g.cells, 'cuda cuda-stock');
    assert.equal(g.heading, 'cuda, cuda-stock fail at inference');
    assert.equal(g.causes, 1);
    assert.equal(g.fixes.length, 1);
    const gpu = res.machine.gpu as { devices: unknown[] };
    if (gpu.devices.length === 0)
      assert.match(
        g.fixes[0],
        /^Fix: run on a host with an NVIDIA GPU and driver .*, or use the cells that pass here: cpu, cpu-1t$/,
      );
    else assert.equal(g.fixes[0], 'Fix: gpen-lab setup cuda');
    assert.deepEqual(
      g.raw.map((r) => [r.cell, r.open, r.shown]),
      [
        ['cuda', false, false],
        ['cuda-stock', false, false],
      ],
      'the raw logs are folded',
    );
    for (const r of g.raw) assert.match(r.log ?? '', /E_PROVIDER_UNAVAILABLE/);
    // unfolded, the logs wrap: neither the section nor a log scrolls sideways
    await page.$$eval('#failures details', (ds) =>
      ds.forEach((d) => {
        (d as HTMLDetailsElement).open = true;
      }),
    );
    const widths = await page.$$eval('#failures, #failures pre, #failures li', (es) =>
      es.map((e) => [e.scrollWidth, e.clientWidth, e.tagName]),
    );
    assert.ok(widths.length > 3);
    for (const [scroll, client, tag] of widths)
      assert.ok(scroll <= client, `${tag}: scrollWidth ${scroll} > clientWidth ${client}`);
    assert.ok(
      await page.$eval('#failures pre', (e) => e.getBoundingClientRect().height > 40),
      'a log is shown once unfolded',
    );
    await page.close();
  });

  it("shows each cell's settings only where they differ from the reference", async () => {
    const { page } = await open();
    const row = await page.$$eval('tbody tr', (trs) =>
      trs
        .map((tr) => [...tr.children].map((td) => (td as HTMLElement).innerText))
        .find((r) => r[0] === 'settings vs reference'),
    );
    assert.deepEqual(row, [
      'settings vs reference',
      'reference (defaults)',
      'session intraOpNumThreads 1 (reference: default)',
      'as reference',
      'route stock (reference: fast)',
    ]);
    // in the failure group: the cell that differs, and only it
    assert.deepEqual(await page.$$eval('#failures .settings li', (ls) => ls.map((l) => (l as HTMLElement).innerText)), [
      'cuda-stock: route stock (reference: fast)',
    ]);
    await page.close();
  });

  it('draws cells with the same radar polygon once, its legend naming each of them', async () => {
    const { page } = await open();
    const polygons = await page.$$eval('#radar svg polygon', (ps) =>
      ps.map((p) => ({ cells: p.getAttribute('data-cells')!.split(' '), points: p.getAttribute('points') })),
    );
    const legend = await page.$$eval('#radar g[data-legend]', (gs) =>
      gs.map((g) => [...g.querySelectorAll('text')].map((t) => t.textContent)),
    );
    const data = JSON.parse(await page.$eval('#lab-data', (e) => e.textContent!)) as {
      cells: { id: string; radar: Record<string, number> }[];
    };
    const distinct = new Set(data.cells.map((c) => JSON.stringify(Object.values(c.radar).map((v) => v.toFixed(3)))));
    assert.equal(polygons.length, distinct.size, 'one polygon per distinct set of values');
    assert.ok(polygons.length < data.cells.length);
    assert.equal(new Set(polygons.map((p) => p.points)).size, polygons.length, 'no polygon drawn twice');
    assert.deepEqual(
      polygons.flatMap((p) => p.cells).sort(),
      ['cpu', 'cpu-1t', 'cuda', 'cuda-stock'],
      'every cell in exactly one polygon',
    );
    assert.ok(
      polygons.some((p) => p.cells.join() === 'cuda,cuda-stock'),
      JSON.stringify(polygons),
    );
    assert.ok(
      legend.some((l) => l.join('|') === 'cuda|cuda-stock (fails)'),
      JSON.stringify(legend),
    );
    await page.close();
  });
});
