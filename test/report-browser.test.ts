// report.html in a real browser (Debian's chromium through playwright-core): it loads offline with no console
// errors, every chart has rendered its SVG, the images are embedded; a screenshot is kept in test-artifacts/.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { normalizeConfig } from '../src/lab/config.js';
import { runLab } from '../src/lab/runner.js';

function findChromium(): string {
  for (const c of ['chromium', 'chromium-browser']) {
    const r = spawnSync('sh', ['-c', `command -v ${c}`], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  }
  throw new Error('chromium is not installed: the report test needs a real browser (apt-get install -y chromium; npm test installs it when run as root: scripts/ensure-test-deps.sh)');
}

let tmp: string;
let html: string;
before(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-report-'));
  const cfg = normalizeConfig({
    inputs: [path.resolve('assets/demo-face.png')], model: { identity: 64 }, coldRuns: 2, warmRuns: 2, timeoutSec: 60,
    cells: [{ provider: 'cpu', id: 'cpu' }, { provider: 'cpu', id: 'cpu-1t', session: { intraOpNumThreads: 1 } }, { provider: 'cuda', id: 'cuda' }],
  }, tmp);
  await runLab(cfg, { out: tmp });
  html = path.join(tmp, 'report.html');
});
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('report.html in a browser', () => {
  it('loads offline with no console errors and every chart rendered', async () => {
    const browser = await chromium.launch({ executablePath: findChromium(), args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      const errors: string[] = [];
      page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
      page.on('pageerror', (e) => errors.push(e.message));
      // offline: any request leaving the file is an error
      await page.route(/^(?!file:|data:)/, (route) => { errors.push(`network request: ${route.request().url()}`); return route.abort(); });
      await page.goto(`file://${html}`);
      const charts = await page.$$eval('[data-chart]', (els) => els.map((e) => ({ id: e.id, rendered: e.getAttribute('data-rendered'), shapes: e.querySelectorAll('svg polygon, svg rect, svg line').length })));
      assert.deepEqual(charts.map((c) => [c.id, c.rendered]), [['radar', 'true'], ['latency', 'true'], ['agreement', 'true']]);
      for (const c of charts) assert.ok(c.shapes > 3, `${c.id} drew ${c.shapes} shapes`);
      assert.equal(await page.$$eval('svg polygon[data-cell]', (p) => p.length), 3, 'one radar polygon per cell');
      assert.equal(await page.$$eval('rect[data-bar]', (p) => p.length), 4, 'cold and warm bars of the two passing cells');
      const imgs = await page.$$eval('img', (is) => is.map((i) => ({ ok: (i as HTMLImageElement).complete && (i as HTMLImageElement).naturalWidth > 0, src: i.getAttribute('src')!.slice(0, 15) })));
      assert.ok(imgs.length >= 3 && imgs.every((i) => i.ok && i.src === 'data:image/webp'), JSON.stringify(imgs));
      assert.deepEqual(errors, []);
      const shots = path.resolve('test-artifacts');
      mkdirSync(shots, { recursive: true });
      await page.screenshot({ path: path.join(shots, 'report.png'), fullPage: true });
      assert.ok(statSync(path.join(shots, 'report.png')).size > 10_000);
    } finally {
      await browser.close();
    }
    assert.ok(statSync(html).size < 4 * 2 ** 20, 'the report stays under 4 MB');
    assert.match(readFileSync(html, 'utf8'), /<script type="application\/json" id="lab-data">/);
  });
});
