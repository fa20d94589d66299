// `npm run bench:pipeline` (and the second half of `npm run bench`): the restoration pipeline on the Solvay photo (29 faces) at 512.
// 1. Pre/post-processing per face: (decode + align + paste + encode) / faces, with the identity model (so that GPEN's
//    cost is out of the way) and detection excluded; target <= 3 ms per face on the 2-core machine.
// 2. The whole photo with synthetic GPEN-512 on the CPU, every stage.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Restorer } from '../src/face/restore.js';
import type { RestoreResult } from '../src/face/restore.js';
import { median, timingStats, formatStats } from '../src/metrics/stats.js';
import { runtimeVersion } from '../src/runtime/session.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const SOLVAY = path.join(root, 'assets', 'Solvay_conference_1927.png');
const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const FULL = process.env.BENCH_FULL !== '0';
const TARGET_MS_PER_FACE = 3;
const log = (s: string) => process.stderr.write(s + '\n');
const outDir = path.join(os.tmpdir(), 'gpen-bench-pipeline');

const pre = ['decode', 'align', 'paste', 'encode'] as const;
const id = await Restorer.create({ model: { type: 'identity', size: 512 }, outDir, write: false, batch: 32 });
const runs: RestoreResult[] = [];
await id.restoreFile(SOLVAY); // warm-up: mask, code paths
for (let i = 0; i < RUNS; i++) runs.push(await id.restoreFile(SOLVAY));
await id.release();
const faces = runs[0].faces.length;
const perFace = runs.map((r) => pre.reduce((a, k) => a + r.stages_ms[k], 0) / faces);
const stagesMedian = Object.fromEntries(pre.map((k) => [k, median(runs.map((r) => r.stages_ms[k]))]));
const s = timingStats(perFace);
log(
  `Solvay (${faces} faces), identity-512: (decode + align + paste + encode) per face ${formatStats(s)} -> ${s.median <= TARGET_MS_PER_FACE ? 'within' : 'OVER'} the ${TARGET_MS_PER_FACE} ms target`,
);
log(
  `  median stage totals: ${pre.map((k) => `${k} ${stagesMedian[k].toFixed(1)} ms`).join(', ')}; detect ${median(runs.map((r) => r.stages_ms.detect)).toFixed(0)} ms`,
);

let full: unknown = null;
if (FULL) {
  const g = await Restorer.create({ model: { type: 'synthetic', size: 512 }, outDir, batch: 4 });
  const r = await g.restoreFile(SOLVAY);
  await g.release();
  const total = Object.values(r.stages_ms).reduce((a, b) => a + b, 0);
  log(
    `Solvay, synthetic GPEN-512 on CPU, batch 4: ${(total / 1000).toFixed(1)} s (${Object.entries(r.stages_ms)
      .map(([k, v]) => `${k} ${(v / 1000).toFixed(2)} s`)
      .join(', ')})`,
  );
  full = {
    faces: r.faces.length,
    batch: 4,
    totalMs: total,
    stages_ms: r.stages_ms,
    provider: r.provider,
    synthetic: true,
  };
}

const report = {
  schema: 'gpen-lab.bench-pipeline/1',
  date: new Date().toISOString(),
  image: 'Solvay_conference_1927.png',
  size: 512,
  machine: {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    node: process.version,
    onnxruntime: runtimeVersion(),
  },
  prePost: {
    model: 'identity-512',
    faces,
    msPerFace: s,
    stagesMedianMs: stagesMedian,
    targetMsPerFace: TARGET_MS_PER_FACE,
    pass: s.median <= TARGET_MS_PER_FACE,
    runs: runs.map((r) => r.stages_ms),
  },
  full,
};
mkdirSync(path.join(root, 'bench-results'), { recursive: true });
writeFileSync(path.join(root, 'bench-results', 'pipeline-512.json'), JSON.stringify(report, null, 2) + '\n');
process.stdout.write(JSON.stringify(report, null, 2) + '\n');
