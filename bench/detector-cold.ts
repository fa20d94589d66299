// BlazeFace's first use in a fresh process, per placement and CUDA option set: the detector's creation, its first
// detection of a photo and the next ones (warm). It decides where a cold start detects (runtime/routes.ts
// detectorPlacement) and the options of the CUDA detector (face/blazeface-capi.ts). Each variant runs in a child
// process of its own; JSON out:
//   node --import tsx bench/detector-cold.ts --out detector-cold.json [--photo FILE] [--rounds 2]
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: a } = parseArgs({
  options: {
    out: { type: 'string' },
    photo: { type: 'string', default: 'assets/Solvay_conference_1927.png' },
    rounds: { type: 'string', default: '2' },
    child: { type: 'string' },
  },
});

interface Variant {
  name: string;
  provider: 'cpu' | 'cuda';
  capi: boolean;
  cudaOptions?: Record<string, string>;
}
const VARIANTS: Variant[] = [
  { name: 'cpu, stock binding', provider: 'cpu', capi: false },
  { name: "cuda, graphs, NHWC (the detector's set)", provider: 'cuda', capi: true },
  { name: 'cuda, graphs, NCHW', provider: 'cuda', capi: true, cudaOptions: { prefer_nhwc: '0' } },
  {
    name: 'cuda, no graphs, NCHW',
    provider: 'cuda',
    capi: true,
    cudaOptions: { prefer_nhwc: '0', enable_cuda_graph: '0' },
  },
  { name: 'cuda, no graphs, NHWC', provider: 'cuda', capi: true, cudaOptions: { enable_cuda_graph: '0' } },
];

if (a.child !== undefined) {
  const v = VARIANTS[Number(a.child)];
  const t0 = performance.now();
  const { createBlazeFace } = await import('../src/face/blazeface.js');
  const { decodeImage } = await import('../src/io/image.js');
  const imported = performance.now() - t0;
  const dec = await decodeImage(a.photo!);
  const img = { width: dec.width, height: dec.height, data: dec.rgb };
  const t1 = performance.now();
  const det = await createBlazeFace({
    provider: v.provider,
    capi: v.capi,
    ...(v.cudaOptions ? { cudaOptions: v.cudaOptions } : {}),
  });
  const createMs = performance.now() - t1;
  const detects: { ms: number; faces: number }[] = [];
  for (let i = 0; i < 4; i++) {
    const t = performance.now();
    const faces = await det.detect(img);
    detects.push({ ms: performance.now() - t, faces: faces.length });
  }
  await det.release();
  process.stdout.write(
    `${JSON.stringify({ importMs: imported, createMs, firstMs: detects[0].ms, warmMs: detects.slice(1).map((d) => d.ms), faces: detects.map((d) => d.faces) })}\n`,
  );
  process.exit(0);
}

if (!a.out) throw new Error('usage: detector-cold.ts --out OUT.json [--photo FILE] [--rounds N]');
const self = fileURLToPath(import.meta.url);
const rows: Record<string, unknown>[] = [];
for (let r = 0; r < Number(a.rounds); r++) {
  for (let i = 0; i < VARIANTS.length; i++) {
    const c = spawnSync(process.execPath, ['--import', 'tsx', self, '--child', String(i), '--photo', a.photo!], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    const line = c.stdout.trim().split('\n').pop() ?? '';
    let got: Record<string, unknown> | null = null;
    try {
      got = JSON.parse(line) as Record<string, unknown>;
    } catch {
      /* reported below */
    }
    const row = { variant: VARIANTS[i].name, round: r, code: c.status, ...(got ?? { error: c.stderr.slice(-1500) }) };
    rows.push(row);
    process.stderr.write(
      `${VARIANTS[i].name}: ${got ? `create ${(got.createMs as number).toFixed(0)} ms, first ${(got.firstMs as number).toFixed(0)} ms, warm ${(got.warmMs as number[]).map((x) => x.toFixed(0)).join('/')} ms, faces ${String(got.faces)}` : `exit ${c.status}`}\n`,
    );
  }
}
mkdirSync(path.dirname(path.resolve(a.out)), { recursive: true });
writeFileSync(
  a.out,
  JSON.stringify(
    {
      schema: 'gpen-lab.detector-cold/1',
      at: new Date().toISOString(),
      host: os.hostname(),
      cpus: os.cpus().length,
      photo: a.photo,
      rows,
    },
    null,
    1,
  ),
);
