#!/usr/bin/env node
// Fails when the product's own text carries development-run ids or numbered rounds of work: run labels such as a
// letter-suffixed round number or "final" with a number, numbered or ordinal sessions, leases, this project's
// issue numbers (another project's issue may be cited as "upstream issue N" or "GitHub issue N").
// Usage: node scripts/check-text.mjs [PATH...] (default: the README, DEVELOPERS.md, src, docs, scripts, bench, test,
// results). Exit 1 with FILE:LINE: WORD for each hit.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const ORDINALS = 'third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth|fourteenth|fifteenth';
const PATTERNS = [
  /\bs\d{1,2}[a-z]\b/g,
  /\bfinal\d+\b/gi,
  /\bsessions? \d+\b(?!\\?\.\d|\s*m?s\b)/gi,
  new RegExp(`\\b(?:${ORDINALS}) session\\b`, 'gi'),
  /\bleases?\b/gi,
  /\bround \d+\b/gi,
  /(?<!upstream |GitHub )\bissue #?\d+\b/gi,
];
const TEXT = new Set([
  '.ts',
  '.mts',
  '.js',
  '.mjs',
  '.cjs',
  '.md',
  '.sh',
  '.py',
  '.json',
  '.yaml',
  '.yml',
  '.txt',
  '.html',
]);
const SKIP = new Set(['node_modules', 'dist', '.git', 'bench-results', 'test-artifacts']);
const DEFAULT = ['README.md', 'DEVELOPERS.md', 'src', 'docs', 'scripts', 'bench', 'test', 'results', 'schema', '.ci'];

function* files(p) {
  let st;
  try {
    st = statSync(p);
  } catch {
    return;
  }
  if (st.isDirectory()) {
    for (const e of readdirSync(p).sort()) if (!SKIP.has(e)) yield* files(path.join(p, e));
  } else if (TEXT.has(path.extname(p)) || path.basename(p) === 'run') yield p;
}

const self = path.resolve(import.meta.filename ?? new URL(import.meta.url).pathname);
const roots = process.argv.length > 2 ? process.argv.slice(2) : DEFAULT;
const hits = [];
for (const root of roots) {
  for (const f of files(root)) {
    if (path.resolve(f) === self) continue;
    const lines = readFileSync(f, 'utf8').split('\n');
    lines.forEach((line, i) => {
      for (const re of PATTERNS) for (const m of line.matchAll(re)) hits.push(`${f}:${i + 1}: ${m[0]}`);
    });
  }
}
if (hits.length) {
  console.error(`development-run ids in the product's text (${hits.length}); say what the software is and does now:`);
  for (const h of hits) console.error(`  ${h}`);
  process.exit(1);
}
