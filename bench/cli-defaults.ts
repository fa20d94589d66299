// The product's figures as a user meets them: `gpen-lab restore` in fresh processes with no flag but the model and the
// output folder, beside the flagged routes it replaces, on the same machine in the same run. Spawned from this process,
// which holds no CUDA (as a shell), each run is timed from its spawn to each result line (its image written) and to
// its exit. JSON out:
//   node --import tsx bench/cli-defaults.ts --model peer.pth --out cli-defaults.json [--runs 5] [--merge-into bench.json]
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    out: { type: 'string' },
    runs: { type: 'string', default: '5' },
    'merge-into': { type: 'string' },
    cli: { type: 'string', default: 'dist/cli/index.js' },
    onnx: { type: 'string' },
  },
});
if (!a.model || !a.out)
  throw new Error(
    'usage: cli-defaults.ts --model FILE.pth --out OUT.json [--runs N] [--merge-into bench.json] [--onnx converted-fp16.onnx]',
  );
const runs = Number(a.runs);
const SOLVAY = 'assets/Solvay_conference_1927.png';
const FACE = 'assets/demo-face.png';
const COLD_SET = 'cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0,prime=1,graph_cache=ort';
const WARM_SET = 'enable_cuda_graph=1,prefer_nhwc=1,fused_act=1';

interface Run {
  spawnToResults: number[];
  exitMs: number;
  code: number | null;
  results: Record<string, unknown>[];
  stderrTail: string;
}

/** One fresh process: `gpen-lab restore ...args --json`, each result line's arrival and the exit timed from the spawn. */
function restore(args: string[]): Promise<Run> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [a.cli!, 'restore', ...args, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const at: number[] = [];
    const results: Record<string, unknown>[] = [];
    let buf = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let r: Record<string, unknown>;
        try {
          r = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        // an image written (an error line, or a failed image, is no result)
        if (typeof (r.outputs as { gpen?: unknown } | undefined)?.gpen !== 'string') continue;
        at.push(performance.now() - t0);
        results.push(r);
      }
    });
    c.stderr.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-3000);
    });
    c.on('close', (code) =>
      resolve({ spawnToResults: at, exitMs: performance.now() - t0, code, results, stderrTail: err }),
    );
  });
}

const median = (xs: number[]): number | null => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** What a run's first result says about where the time went (stages, the route chosen, the cold start's timeline). */
function summary(r: Run): Record<string, unknown> {
  const first = r.results[0] ?? {};
  return {
    toWrittenMs: r.spawnToResults[0] ?? null,
    exitMs: r.exitMs,
    code: r.code,
    stages: first.stages_ms ?? null,
    route: first.route ?? null,
    provider: first.provider ?? null,
    startup: first.startup_ms ?? null,
    faces: Array.isArray(first.faces) ? first.faces.length : null,
    ...(r.code !== 0 ? { stderrTail: r.stderrTail } : {}),
  };
}

/** A cold case: the route's first process (it may convert the model and write caches), then `runs` cold starts. */
async function coldCase(name: string, args: string[]): Promise<Record<string, unknown>> {
  // each process writes into a folder of its own (restore never replaces an output without --overwrite)
  const root = mkdtempSync(path.join(os.tmpdir(), 'gpen-cli-'));
  let k = 0;
  const argv = () => [...args.slice(0, 1), '-o', path.join(root, String(k++)), ...args.slice(1)];
  const full = argv();
  const first = await restore(full);
  const measured: Run[] = [];
  for (let i = 0; i < runs; i++) measured.push(await restore(argv()));
  rmSync(root, { recursive: true, force: true });
  const ok = measured.filter((r) => r.code === 0 && r.spawnToResults.length > 0);
  const line = {
    name,
    argv: ['gpen-lab', 'restore', ...full],
    first: summary(first),
    runs: measured.map(summary),
    medianToWrittenMs: median(ok.map((r) => r.spawnToResults[0])),
    failed: measured.length - ok.length,
  };
  process.stderr.write(
    `${name}: first ${first.spawnToResults[0]?.toFixed(0) ?? 'FAILED'} ms, then median ${line.medianToWrittenMs?.toFixed(0) ?? '-'} ms (${ok.map((r) => r.spawnToResults[0].toFixed(0)).join(', ')})\n`,
  );
  return line;
}

/** A folder of 8 differently named copies of the photo in one process (after one process that prepared the route). */
async function folderCase(name: string, extra: string[]): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gpen-folder-'));
  for (let i = 1; i <= 8; i++) copyFileSync(SOLVAY, path.join(dir, `solvay-${i}.png`));
  const out = mkdtempSync(path.join(os.tmpdir(), 'gpen-folder-out-'));
  const args = [dir, '-o', path.join(out, 'measured'), ...extra];
  const first = await restore([dir, '-o', path.join(out, 'first'), ...extra]);
  const r = await restore(args);
  rmSync(dir, { recursive: true, force: true });
  rmSync(out, { recursive: true, force: true });
  const per = r.spawnToResults.slice(1).map((t, i) => t - r.spawnToResults[i]);
  const line = {
    name,
    argv: ['gpen-lab', 'restore', ...args],
    firstProcessExitMs: first.exitMs,
    code: r.code,
    images: r.results.length,
    spawnToEachMs: r.spawnToResults,
    perImageMs: per,
    medianImages2to8Ms: median(per),
    stages: r.results.map((x) => x.stages_ms ?? null),
    route: r.results[0]?.route ?? null,
    ...(r.code !== 0 ? { stderrTail: r.stderrTail } : {}),
  };
  process.stderr.write(
    `${name}: ${r.results.length} images, images 2-8 median ${line.medianImages2to8Ms?.toFixed(1) ?? '-'} ms (${per.map((x) => x.toFixed(0)).join(', ')}); exit ${r.exitMs.toFixed(0)} ms\n`,
  );
  return line;
}

const cases: Record<string, Record<string, unknown>> = {};
// defaults: nothing but the model and the output folder
cases.solvay_default = await coldCase('solvay, defaults', [SOLVAY, '--model', a.model]);
cases.face_default = await coldCase('demo face, defaults', [FACE, '--model', a.model]);
cases.folder_default = await folderCase('folder of 8, defaults', ['--model', a.model]);
// the flagged routes the defaults replace: the cold-start set on a converted fp16 ONNX file, the warm set on the .pth
const model = a.model;
let onnx = a.onnx ?? '';
if (!onnx) {
  onnx = path.join(os.tmpdir(), 'gpen-cli-defaults-fp16.onnx');
  const target = onnx;
  await new Promise<void>((resolve, reject) => {
    const c = spawn(process.execPath, [a.cli!, 'model', 'convert', model, '-o', target, '--fp16'], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    c.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`model convert exited ${code}`))));
  });
}
const coldFlags = ['--provider', 'cuda', '--precision', 'fp16', '--batch', '32', '--cuda-options', COLD_SET];
cases.solvay_flagged_cold = await coldCase('solvay, flagged cold set', [SOLVAY, '--model', onnx, ...coldFlags]);
cases.face_flagged_cold = await coldCase('demo face, flagged cold set', [FACE, '--model', onnx, ...coldFlags]);
// the default's batch for a cold start (1, the primer's shapes) asked for explicitly, and 8; 32 is the flagged cold set's
cases.solvay_batch1 = await coldCase('solvay, defaults but --batch 1', [SOLVAY, '--model', a.model, '--batch', '1']);
cases.solvay_batch8 = await coldCase('solvay, defaults but --batch 8', [SOLVAY, '--model', a.model, '--batch', '8']);
cases.folder_flagged_warm = await folderCase('folder of 8, flagged warm set', [
  '--model',
  a.model,
  '--provider',
  'cuda',
  '--precision',
  'fp16',
  '--batch',
  '32',
  '--detector-provider',
  'cuda',
  '--cuda-options',
  WARM_SET,
]);
cases.folder_flagged_stock = await folderCase('folder of 8, stock binding', [
  '--model',
  a.model,
  '--provider',
  'cuda',
  '--route',
  'stock',
  '--precision',
  'fp16',
  '--batch',
  '32',
  '--detector-provider',
  'cuda',
]);

const num = (c: string, k: string): number | null => (cases[c]?.[k] as number | null | undefined) ?? null;
const ratio = (x: number | null, y: number | null) => (x !== null && y !== null ? x / y : null);
const figures = {
  solvay_cold_ms: num('solvay_default', 'medianToWrittenMs'),
  solvay_cold_target_ms: 1500,
  face_cold_ms: num('face_default', 'medianToWrittenMs'),
  face_cold_target_ms: 1000,
  folder_images_2_8_ms: num('folder_default', 'medianImages2to8Ms'),
  folder_target_ms: 150,
  // the defaults against the best flagged route of each figure (within 10%: <= 1.10)
  solvay_vs_flagged: ratio(num('solvay_default', 'medianToWrittenMs'), num('solvay_flagged_cold', 'medianToWrittenMs')),
  face_vs_flagged: ratio(num('face_default', 'medianToWrittenMs'), num('face_flagged_cold', 'medianToWrittenMs')),
  folder_vs_flagged: ratio(
    num('folder_default', 'medianImages2to8Ms'),
    num('folder_flagged_warm', 'medianImages2to8Ms'),
  ),
};
const report = {
  schema: 'gpen-lab.cli-defaults/1',
  at: new Date().toISOString(),
  host: os.hostname(),
  cpus: os.cpus().length,
  model: a.model,
  runs,
  figures,
  cases,
};
mkdirSync(path.dirname(path.resolve(a.out)), { recursive: true });
writeFileSync(a.out, JSON.stringify(report, null, 1));
process.stdout.write(`${JSON.stringify(figures)}\n`);
if (a['merge-into']) {
  // P3 and P4 through the CLI with defaults, beside the bench's own (in-process) figures
  const b = JSON.parse(readFileSync(a['merge-into'], 'utf8')) as Record<string, unknown>;
  b.P3_cli_default_ms = figures.face_cold_ms;
  b.P3_cli_default_solvay_ms = figures.solvay_cold_ms;
  b.P4_cli_default_ms = figures.folder_images_2_8_ms;
  b.cli_defaults = report;
  writeFileSync(a['merge-into'], JSON.stringify(b, null, 1));
}
