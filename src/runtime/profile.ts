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
export interface ProfileNode { node: string; op: string; provider: string; ms: number; outputShapes: number[][]; outputTypes: string[] }

/** The node runs of an ONNX Runtime profile (its "_kernel_time" events), in execution order, every run's. */
export function readProfileNodes(file: string): ProfileNode[] {
  return profileNodes(readEvents(file));
}

type Ev = { cat?: string; name?: string; dur?: number; args?: { op_name?: string; provider?: string; output_type_shape?: Record<string, number[]>[] } };

function readEvents(file: string): Ev[] {
  return JSON.parse(readFileSync(file, 'utf8')) as Ev[];
}

function profileNodes(events: Ev[]): ProfileNode[] {
  const out: ProfileNode[] = [];
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name?.endsWith('_kernel_time')) continue;
    out.push({
      node: e.name.slice(0, -'_kernel_time'.length), op: e.args?.op_name ?? '?', provider: e.args?.provider ?? '?', ms: (e.dur ?? 0) / 1000,
      outputShapes: (e.args?.output_type_shape ?? []).map((o) => Object.values(o)[0] ?? []),
      outputTypes: (e.args?.output_type_shape ?? []).map((o) => Object.keys(o)[0] ?? '?'),
    });
  }
  return out;
}

/** Which provider ran each node, from an ONNX Runtime profile (its "_kernel_time" node events). */
export function placementFromProfile(file: string, asked: Provider): Placement {
  const counts: Record<string, number> = {};
  const seen = new Set<string>();
  const events = readEvents(file);
  for (const n of profileNodes(events)) {
    if (n.provider === '?' || seen.has(n.node)) continue;
    seen.add(n.node);
    const p = String(providerFromEpName(n.provider));
    counts[p] = (counts[p] ?? 0) + 1;
  }
  const ran = Object.keys(counts);
  const sessionMs: Record<string, number> = {};
  for (const e of events) {
    if (e.cat === 'Session' && e.name && e.name !== 'model_run') sessionMs[e.name] = (sessionMs[e.name] ?? 0) + (e.dur ?? 0) / 1000;
  }
  return { nodesByProvider: counts, ran, mismatch: ran.some((p) => p !== asked), ...(Object.keys(sessionMs).length ? { sessionMs } : {}) };
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
export async function placementFromProfileDirAsync(dir: string, asked: Provider, end: () => Promise<unknown>): Promise<Placement | null> {
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

