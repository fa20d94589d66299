// ONNX Runtime profiles read back: the node runs (operator, provider, time, output shapes) and where each node ran.
// No binding is loaded here: the C API route's early session imports it at a cold start's first moments.
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Provider } from './providers.js';
import { providerFromEpName } from './providers.js';

export interface Placement {
  /** Nodes run per provider, as ONNX Runtime reported them. */
  nodesByProvider: Record<string, number>;
  /** Every provider that ran at least one node. */
  ran: string[];
  /** True when a node ran on a provider other than the one asked for. */
  mismatch: boolean;
  /** ONNX Runtime's own timing of the session (its profile's Session events: model loading, initialisation, ms). */
  sessionMs?: Record<string, number>;
}

/** One node's run in an ONNX Runtime profile: node name, operator, execution provider, time, output shapes. */
export interface ProfileNode {
  node: string;
  op: string;
  provider: string;
  ms: number;
  outputShapes: number[][];
  outputTypes: string[];
}

/** The node runs of an ONNX Runtime profile (its "_kernel_time" events), in execution order, every run's. */
export function readProfileNodes(file: string): ProfileNode[] {
  return profileNodes(readEvents(file));
}

export type Ev = {
  cat?: string;
  name?: string;
  dur?: number;
  args?: { op_name?: string; provider?: string; output_type_shape?: Record<string, number[]>[] };
};

function readEvents(file: string): Ev[] {
  return JSON.parse(readFileSync(file, 'utf8')) as Ev[];
}

function profileNodes(events: Ev[]): ProfileNode[] {
  const out: ProfileNode[] = [];
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name?.endsWith('_kernel_time')) continue;
    out.push({
      node: e.name.slice(0, -'_kernel_time'.length),
      op: e.args?.op_name ?? '?',
      provider: e.args?.provider ?? '?',
      ms: (e.dur ?? 0) / 1000,
      outputShapes: (e.args?.output_type_shape ?? []).map((o) => Object.values(o)[0] ?? []),
      outputTypes: (e.args?.output_type_shape ?? []).map((o) => Object.keys(o)[0] ?? '?'),
    });
  }
  return out;
}

/** Which provider ran each node, from an ONNX Runtime profile (its "_kernel_time" node events). */
export function placementFromProfile(file: string, asked: Provider): Placement {
  const text = readFileSync(file, 'utf8');
  return placementFromEvents(scanPlacementEvents(text) ?? (JSON.parse(text) as Ev[]), asked);
}

/** The placement from a profile's events (all of them, or those scanPlacementEvents keeps). */
export function placementFromEvents(events: Ev[], asked: Provider): Placement {
  const counts: Record<string, number> = {};
  const seen = new Set<string>();
  for (const n of profileNodes(events)) {
    if (n.provider === '?' || seen.has(n.node)) continue;
    seen.add(n.node);
    const p = String(providerFromEpName(n.provider));
    counts[p] = (counts[p] ?? 0) + 1;
  }
  const ran = Object.keys(counts);
  const sessionMs: Record<string, number> = {};
  for (const e of events) {
    if (e.cat === 'Session' && e.name && e.name !== 'model_run')
      sessionMs[e.name] = (sessionMs[e.name] ?? 0) + (e.dur ?? 0) / 1000;
  }
  return {
    nodesByProvider: counts,
    ran,
    mismatch: ran.some((p) => p !== asked),
    ...(Object.keys(sessionMs).length ? { sessionMs } : {}),
  };
}

/** The quoted value after `key` in `line` (ONNX Runtime writes `"key" : "value"` or `"key" :"value"`), or null. */
function quoted(line: string, key: string): string | null {
  const k = line.indexOf(`"${key}" :`);
  if (k < 0) return null;
  const a = line.indexOf('"', k + key.length + 4);
  const b = a < 0 ? -1 : line.indexOf('"', a + 1);
  return b < 0 ? null : line.slice(a + 1, b);
}

/**
 * The events placementFromEvents reads (Session events, node kernel times with their provider), picked out of the
 * profile's text at the lines that hold them instead of parsing all of it: ONNX Runtime writes one event a line, and
 * a GPEN-512 profile (~1 MB) takes ~18 ms of a cold start's JavaScript thread to parse whole (measured on an H200
 * host), just when the face is pasted and encoded. Null when the text is not laid out so (the caller parses it whole).
 */
export function scanPlacementEvents(text: string): Ev[] | null {
  const out: Ev[] = [];
  const SESSION = '{"cat" : "Session"';
  const KERNEL = '_kernel_time"';
  let kernels = 0;
  let s = text.indexOf(SESSION);
  let k = text.indexOf(KERNEL);
  // the Session events and the node kernel times, in the profile's order; the lines between (fences) are not read
  while (s >= 0 || k >= 0) {
    const at = s >= 0 && (k < 0 || s < k) ? s : k;
    const from = text.lastIndexOf('\n', at) + 1;
    let to = text.indexOf('\n', at);
    if (to < 0) to = text.length;
    const line = text.slice(from, to);
    if (at === s) s = text.indexOf(SESSION, to);
    else k = text.indexOf(KERNEL, to);
    const cat = line.startsWith('{"cat" :') ? quoted(line, 'cat') : null;
    if (cat !== 'Node' && cat !== 'Session') return null;
    const name = quoted(line, 'name');
    const d = line.indexOf('"dur" :');
    const dur = d < 0 ? NaN : Number.parseFloat(line.slice(d + 7, d + 27));
    if (name === null || !Number.isFinite(dur)) return null;
    if (cat === 'Session') {
      out.push({ cat, name, dur });
      continue;
    }
    if (!name.endsWith('_kernel_time')) return null;
    kernels++;
    const provider = quoted(line, 'provider');
    const op = quoted(line, 'op_name');
    if (provider === null) return null;
    out.push({ cat, name, dur, args: { provider, ...(op !== null ? { op_name: op } : {}) } });
  }
  // a profile with node times that this scan did not see is laid out otherwise
  return kernels > 0 || !text.includes('_kernel_time') ? out : null;
}

/** Ends a session's profiling (`end`), reads the placement from the profile it wrote in `dir`, and removes `dir`. */
export function placementFromProfileDir(dir: string, asked: Provider, end: () => void): Placement | null {
  try {
    end();
    return placementInDir(dir, asked);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** placementFromProfileDir with the profile ended on a worker thread (the C API route: its first run returns sooner). */
export async function placementFromProfileDirAsync(
  dir: string,
  asked: Provider,
  end: () => Promise<unknown>,
): Promise<Placement | null> {
  try {
    await end();
    return placementInDir(dir, asked);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The placement in the profile ONNX Runtime wrote into `dir`, or null when it wrote none. */
function placementInDir(dir: string, asked: Provider): Placement | null {
  const file = readdirSync(dir).find((f) => f.endsWith('.json'));
  return file ? placementFromProfile(path.join(dir, file), asked) : null;
}
