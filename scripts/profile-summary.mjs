// Summarises a V8 CPU profile (.cpuprofile, e.g. the one scripts/probe-e2e.mjs writes on the GPU machine): the
// functions by self time and by total time, in milliseconds. Usage: node scripts/profile-summary.mjs FILE [TOP]
import { readFileSync } from 'node:fs';
const p = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const self = new Map();
const total = new Map();
const dt = p.timeDeltas;
let all = 0;
const key = (n) => `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber + 1}`;
for (let i = 0; i < p.samples.length; i++) {
  const d = (dt[i + 1] ?? 0) / 1000;
  all += d;
  let n = byId.get(p.samples[i]);
  self.set(key(n), (self.get(key(n)) ?? 0) + d);
  const seen = new Set();
  while (n) { const k = key(n); if (!seen.has(k)) { total.set(k, (total.get(k) ?? 0) + d); seen.add(k); } n = byId.get(parent.get(n.id)); }
}
console.log('total ms', all.toFixed(0));
console.log('--- self'); for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(process.argv[3] ?? 30))) console.log(v.toFixed(1).padStart(8), k);
console.log('--- total'); for (const [k, v] of [...total].sort((a, b) => b[1] - a[1]).slice(0, Number(process.argv[3] ?? 30))) console.log(v.toFixed(1).padStart(8), k);
