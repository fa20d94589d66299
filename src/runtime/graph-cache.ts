// The optimised graph, cached for later cold starts: the first session of a model file with a given option set has
// ONNX Runtime write the graph it optimised (SetOptimizedModelFilePath); later sessions load that file with graph
// optimisations off: they are ~250 ms of a GPEN-512 fp16 session's ~650 ms creation (measured on an H200). Keyed
// like make judges a file (real path, size, mtime), plus the version of the ONNX Runtime loaded (the process's runtime
// build, builds.ts) and the provider options, so a changed model, runtime or option set never meets a stale graph.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { makeDirs } from '../io/files.js';
import path from 'node:path';
import { GpenLabError } from '../errors.js';
import { cacheDir, fileIdentity } from '../io/cache.js';
import { load } from './capi/api.js';

/**
 * Where something made from model file `model` is cached: `<cache>/<folder>/<hash>` (add the extension), the hash
 * over the file's identity, the version of the C API route's library (GetVersionString of the build loaded, loaded
 * here if none is yet) and `settings`, so a changed file, runtime or setting never meets a stale entry. The optimised
 * graph and the primer (primer.ts) are cached this way, both for C API sessions. Synchronous (two stat calls): a cold
 * start's sessions are asked for at once, not after the modules that load meanwhile.
 */
export function modelCachePath(folder: string, model: string, settings: Record<string, unknown>): string {
  const key = JSON.stringify({ model: fileIdentity(model), runtime: load().version, ...settings });
  return path.join(cacheDir(), folder, createHash('sha256').update(key).digest('hex').slice(0, 32));
}

export interface GraphCacheEntry {
  /** 'hit': `model` is the cached optimised graph (load it with optimisations off); 'miss': write it to `saveTo`. */
  state: 'hit' | 'miss';
  /** The file to create the session from. */
  model: string;
  /** On a miss: where ONNX Runtime writes the optimised graph (a temporary name; commit() moves it in place). */
  saveTo: string | null;
  /** The cache file. */
  file: string;
  /** On a miss, after the session was created: the written graph becomes the cache entry. */
  commit(): Promise<void>;
  /** On a miss whose session failed: removes what was written. */
  abandon(): Promise<void>;
}

/**
 * Looks up the optimised graph of `model` for `provider` with `options` (sorted into the key), in ONNX Runtime's own
 * format (a session saves it with session.save_model_format=ORT and loads it with session.load_model_format=ORT).
 */
export async function graphCache(
  model: string | Uint8Array,
  provider: string,
  options: Record<string, string>,
): Promise<GraphCacheEntry> {
  if (typeof model !== 'string') {
    throw new GpenLabError(
      'E_ARGUMENT',
      'graph_cache=ort needs the model as an ONNX file, and this one was made in memory (from a .pth or --synthetic)',
      'Convert it once with `gpen-lab model convert IN.pth -o OUT.onnx` (add --fp16 for fp16) and pass --model OUT.onnx, or drop graph_cache.',
      { input: 'graph_cache' },
    );
  }
  if (options.prefer_nhwc === '1') {
    throw new GpenLabError(
      'E_ARGUMENT',
      "graph_cache=ort cannot be combined with prefer_nhwc=1: the NHWC graph holds ONNX Runtime's internal operators, which cannot be saved",
      'Drop one of graph_cache=ort and prefer_nhwc=1.',
      { input: 'graph_cache' },
    );
  }
  const opts = Object.fromEntries(Object.entries(options).sort(([a], [b]) => a.localeCompare(b)));
  const file = `${modelCachePath('optimized', model, { provider, opts, format: 'ort' })}.ort`;
  const dir = path.dirname(file);
  if (existsSync(file))
    return {
      state: 'hit',
      model: file,
      saveTo: null,
      file,
      commit: async () => undefined,
      abandon: async () => undefined,
    };
  await makeDirs(dir);
  const saveTo = `${file}.${process.pid}.tmp`;
  return {
    state: 'miss',
    model,
    saveTo,
    file,
    commit: async () => {
      if (existsSync(saveTo)) await rename(saveTo, file);
    },
    abandon: async () => {
      await rm(saveTo, { force: true });
    },
  };
}
