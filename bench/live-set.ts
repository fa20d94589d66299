// The live set of a GPEN graph: runs it once on the CPU with ONNX Runtime's optimisations off (so the profile's node
// names are the graph's own), takes each node's output shapes from the profile, and walks the execution order
// keeping every activation alive until its last consumer. Prints the peak (the least memory any allocator needs for
// the activations, weights apart) and the tensors alive there. For P5 of the GPU-speed issue: compare with what ONNX
// Runtime's CUDA arena holds.  Usage: npx tsx bench/live-set.ts [size=512] [precision=fp32]
import { rmSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { onnx } from '../src/model/onnx-builder.js';
import { prepareModel } from '../src/model/registry.js';
import { CapiSession } from '../src/runtime/capi.js';
import { readProfileNodes } from '../src/runtime/profile.js';

const size = Number(process.argv[2] ?? 512);
const precision = (process.argv[3] ?? 'fp32') as 'fp32' | 'fp16';
const p = await prepareModel({ type: 'synthetic', size, seed: 0 }, 'fp32');
const bytes = p.model as Uint8Array;
const model = onnx.ModelProto.decode(bytes);
const consumers = new Map<string, string[]>();
for (const n of model.graph!.node!) for (const i of n.input ?? []) (consumers.get(i) ?? consumers.set(i, []).get(i)!).push(n.name!);
const outputsOf = new Map(model.graph!.node!.map((n) => [n.name!, n.output ?? []]));
const initializers = new Set(model.graph!.initializer!.map((t) => t.name!));

const dir = mkdtempSync(path.join(os.tmpdir(), 'gpen-live-'));
const s = CapiSession.create(bytes, { provider: 'cpu', graphOptimizationLevel: 0, profilePrefix: path.join(dir, 'p') });
const per = 3 * size * size;
s.run(new Float32Array(per).fill(0.1), [1, 3, size, size], per);
const runs = readProfileNodes(s.endProfiling());
s.release();
rmSync(dir, { recursive: true, force: true });

// execution order and output sizes (bytes at the asked precision: fp16 halves every activation but the few kept fp32)
const order: { node: string; op: string; out: { name: string; bytes: number }[] }[] = [];
const scale = precision === 'fp16' ? 2 : 4;
for (const r of runs) {
  const names = outputsOf.get(r.node) ?? [];
  order.push({ node: r.node, op: r.op, out: names.map((n, i) => ({ name: n, bytes: (r.outputShapes[i] ?? []).reduce((a, b) => a * b, 1) * scale })) });
}
const step = new Map(order.map((o, i) => [o.node, i]));
const lastUse = (t: string): number => Math.max(-1, ...(consumers.get(t) ?? []).map((c) => step.get(c) ?? -1));
const live = new Map<string, { bytes: number; until: number; op: string }>();
let peak = 0, peakAt = 0, peakSet: [string, number, string][] = [];
live.set('input', { bytes: per * 4, until: lastUse('input'), op: 'input' });
order.forEach((o, i) => {
  for (const t of o.out) if (!initializers.has(t.name)) live.set(t.name, { bytes: t.bytes, until: Math.max(i, lastUse(t.name)), op: o.op });
  const total = [...live.values()].reduce((a, v) => a + v.bytes, 0);
  if (total > peak) { peak = total; peakAt = i; peakSet = [...live.entries()].map(([n, v]) => [n, v.bytes, v.op]); }
  for (const [n, v] of live) if (v.until <= i) live.delete(n);
});
const MiB = 1024 * 1024;
const top = peakSet.sort((a, b) => b[1] - a[1]).slice(0, 12);
process.stdout.write(`${JSON.stringify({ size, precision, nodes: order.length, peakMiB: +(peak / MiB).toFixed(1), peakAtNode: order[peakAt]?.node, peakAtOp: order[peakAt]?.op, liveTensors: peakSet.length, largest: top.map(([n, b, op]) => ({ tensor: n, op, MiB: +(b / MiB).toFixed(1) })) }, null, 1)}\n`);
