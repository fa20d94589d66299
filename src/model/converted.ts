// Where a checkpoint converted for a session is kept, by what makes the conversion the same: the .pth's identity (real
// path, size, mtime), its key, the precision and the graph's form. Light on imports: a cold start's early session
// (cli/warm-start.ts) finds the converted file before the model-conversion modules load.
import type { Precision } from '../onnx/precision.js';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { cacheDir, fileIdentity } from '../io/cache.js';

/**
 * The graph's form (bump on a rewrite): caches of built graphs are keyed by it. 2: the fp16 blur grouped; 3: the
 * demodulation and noise weights owed to the consumers; 4: ToRGB as a batched MatMul; 5: that at the two largest sizes;
 * 6: negative noise weights folded too (a PRelu). The NHWC form (BuildOptions.nhwc) is tagged apart (graphTag).
 */
export const GRAPH_VERSION = 6;
/** The cache tag of the graph's form: its version, and the NHWC form (BuildOptions.nhwc, .fusedAct). */
export function graphTag(nhwc = false, fusedAct = false): string {
  return nhwc ? `g${GRAPH_VERSION}-nhwc${fusedAct ? '-fa' : ''}` : `g${GRAPH_VERSION}`;
}

/** The form of a graph built here (BuildOptions.nhwc, .fusedAct). */
export interface GraphForm {
  nhwc?: boolean;
  fusedAct?: boolean;
}
/** The form a CUDA session with these options runs fastest: NHWC with prefer_nhwc=1, FusedAct with fused_act=1. */
export function formForCuda(cudaOptions: Record<string, string> | undefined): GraphForm {
  return {
    nhwc: cudaOptions?.prefer_nhwc === '1',
    fusedAct: cudaOptions?.prefer_nhwc === '1' && cudaOptions.fused_act === '1',
  };
}

export interface ConvertedKey {
  key?: string;
  precision: Precision;
  nhwc: boolean;
  fusedAct: boolean;
}

/** The converted graph's path and its description's (the .json is written last: its presence commits both). */
export function convertedPaths(pth: string, k: ConvertedKey): { onnx: string; info: string } {
  const id = createHash('sha256')
    .update(JSON.stringify([fileIdentity(pth), k.key ?? null, k.precision, graphTag(k.nhwc, k.fusedAct)]))
    .digest('hex')
    .slice(0, 24);
  const base = path.join(
    cacheDir(),
    'converted',
    `${path
      .basename(pth)
      .replace(/\.[^.]*$/, '')
      .replace(/[^A-Za-z0-9_.-]/g, '_')}-${k.precision}-${graphTag(k.nhwc, k.fusedAct)}-${id}`,
  );
  return { onnx: `${base}.onnx`, info: `${base}.json` };
}

/** The converted ONNX file of a checkpoint, if an earlier process wrote it (null when absent or the .pth is unreadable). */
export function findConverted(pth: string, k: ConvertedKey): string | null {
  try {
    const p = convertedPaths(pth, k);
    return existsSync(p.info) && existsSync(p.onnx) ? p.onnx : null;
  } catch {
    return null;
  }
}
