// A GPEN session's first runs in a fresh process, node by node from ONNX Runtime's profile: where a cold start's first
// inference goes (the bench measured 500-850 ms for it on the H200, against ~5 ms for a later run and ~90 ms for the
// first run of a second session in the same process). Prints each operator's first-run and second-run totals and the
// slowest nodes of the first run. The CPU provider works too (for a check of the script itself).
// Usage: npx tsx bench/first-run.ts [size=512] [precision=fp16] [provider=cuda] [cuda options k=v,...]
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { prepareModel } from '../src/model/registry.js';
import { CapiSession } from '../src/runtime/capi.js';
import { parseCudaOptions } from '../src/runtime/capi-model.js';
import { readProfileNodes, type ProfileNode } from '../src/runtime/profile.js';

const size = Number(process.argv[2] ?? 512);
const precision = (process.argv[3] ?? 'fp16') as 'fp32' | 'fp16';
const provider = (process.argv[4] ?? 'cuda') as 'cpu' | 'cuda';
const cuda = parseCudaOptions(process.argv[5] ?? 'cudnn_conv_algo_search=HEURISTIC');
const RUNS = 3;

const prepared = await prepareModel({ type: 'synthetic', size, seed: 0 }, precision);
const dir = mkdtempSync(path.join(os.tmpdir(), 'gpen-first-'));
let t = performance.now();
const s = CapiSession.create(prepared.model as Uint8Array, {
  provider, graphOptimizationLevel: 0, profilePrefix: path.join(dir, 'p'), ...(provider === 'cuda' ? { cuda: { device_id: '0', ...cuda } } : {}),
});
const createMs = performance.now() - t;
const per = 3 * size * size;
const x = new Float32Array(per).fill(0.1);
const runMs: number[] = [];
for (let i = 0; i < RUNS; i++) {
  t = performance.now();
  s.run(x, [1, 3, size, size], per);
  runMs.push(performance.now() - t);
}
const nodes = readProfileNodes(s.endProfiling());
s.release();
rmSync(dir, { recursive: true, force: true });

const perRun = nodes.length / RUNS;
if (!Number.isInteger(perRun)) throw new Error(`the profile has ${nodes.length} node events, not a multiple of ${RUNS} runs`);
const first = nodes.slice(0, perRun);
const second = nodes.slice(perRun, 2 * perRun);
const byOp = (ns: ProfileNode[]) => ns.reduce<Record<string, number>>((a, n) => ({ ...a, [n.op]: (a[n.op] ?? 0) + n.ms }), {});
const f = byOp(first);
const g = byOp(second);
const sum = (ns: ProfileNode[]) => ns.reduce((a, n) => a + n.ms, 0);
const report = {
  size, precision, provider, cuda, createMs, runMs, nodesPerRun: perRun,
  nodeMs: { first: sum(first), second: sum(second) },
  byOp: Object.keys(f).sort((a, b) => f[b] - f[a]).map((op) => ({ op, firstMs: +f[op].toFixed(2), secondMs: +(g[op] ?? 0).toFixed(2), count: first.filter((n) => n.op === op).length })),
  slowestFirst: first.map((n, i) => ({ ...n, second: second[i]?.ms ?? null })).sort((a, b) => b.ms - a.ms).slice(0, 25)
    .map((n) => ({ node: n.node, op: n.op, ms: +n.ms.toFixed(2), secondMs: n.second === null ? null : +n.second.toFixed(3), shape: n.outputShapes[0] ?? [] })),
};
process.stdout.write(JSON.stringify(report, null, 1) + '\n');
