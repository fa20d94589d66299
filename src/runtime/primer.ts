// A primer for CUDA cold starts: the model's own graph with its weights replaced by zeros made on the device
// (ConstantOfShape), created and run once on worker threads beside the real session's creation. In a fresh process
// the first run of a GPEN-512 session took 500-900 ms on the H200 against ~90 ms for the first run of a second
// session (bench/first-run.ts): most of it is paid once per process (cuDNN, cuBLAS and ONNX Runtime kernels loaded
// and set up on first use, per convolution shape), so a graph with the same operators and shapes pays it while the
// real session is still being created. The primer file holds no weights (a few hundred KB for GPEN-512) and is cached
// per model file, like the optimised graph.
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { writeFileAtomicSafe } from '../io/files.js';
import { CapiSession } from './capi.js';
import { modelCachePath } from './graph-cache.js';
import { readProfileNodes, type ProfileNode } from './profile.js';

/** What a primer (or one of its parts) reads and writes: its input, if any, at batch 1, and its first output. */
export interface PrimerIo { input: { name: string; dims: number[] } | null; output: string }

/** Where a model file's primer and its parts are cached (by the file's identity and the runtime's version). */
function cacheBase(model: string): string {
  return modelCachePath('primer', model, { primer: 1 });
}

/**
 * The primer of a model file, cached by the file's identity and the runtime's version (the graph and, beside it, its
 * input and output); made in memory for bytes. A cache hit is read without yielding and without the ONNX protobuf
 * modules: in a cold start the primer's session is then asked for in the same moment as the real one.
 */
export async function primerFor(model: string | Uint8Array): Promise<{ model: Uint8Array; io: PrimerIo; cache: 'hit' | 'written' | null }> {
  const base = typeof model === 'string' ? cacheBase(model) : null;
  if (base && existsSync(`${base}.onnx`) && existsSync(`${base}.io.json`)) {
    return { model: readFileSync(`${base}.onnx`), io: JSON.parse(readFileSync(`${base}.io.json`, 'utf8')) as PrimerIo, cache: 'hit' };
  }
  const { primerModel } = await import('./primer-graph.js');
  const p = primerModel(typeof model === 'string' ? new Uint8Array(await readFile(model)) : model);
  const io: PrimerIo = { input: p.input, output: p.output.name };
  if (!base) return { model: p.model, io, cache: null };
  await mkdir(path.dirname(base), { recursive: true });
  await writeFileAtomicSafe(`${base}.onnx`, Buffer.from(p.model.buffer, p.model.byteOffset, p.model.byteLength));
  await writeFileAtomicSafe(`${base}.io.json`, JSON.stringify(io));
  return { model: p.model, io, cache: 'written' };
}

/** The cached parts of a model file's primer for `parts`, or null (a model in memory has no file to key them by). */
export async function cachedParts(model: string | Uint8Array, parts: number): Promise<Uint8Array[] | null> {
  if (typeof model !== 'string') return null;
  const base = `${cacheBase(model)}.p${parts}`;
  if (!existsSync(`${base}.json`)) return null;
  const { count } = JSON.parse(await readFile(`${base}.json`, 'utf8')) as { count: number };
  return Promise.all(Array.from({ length: count }, (_, i) => readFile(`${base}.${i}.onnx`)));
}

/** Writes the parts, then the list that makes them visible (a cold start never reads half of them). */
async function writeParts(model: string, parts: number, bytes: Uint8Array[]): Promise<void> {
  const base = `${cacheBase(model)}.p${parts}`;
  for (const [i, b] of bytes.entries()) await writeFileAtomicSafe(`${base}.${i}.onnx`, Buffer.from(b.buffer, b.byteOffset, b.byteLength));
  await writeFileAtomicSafe(`${base}.json`, JSON.stringify({ count: bytes.length }));
}

export interface PrimeReport {
  ms: number; ok: boolean; error?: string; cache?: 'hit' | 'written' | null; createMs?: number; runMs?: number;
  /** The timeline, in ms since the process started: prime() called, its (whole) session's creation begun, its run ended. */
  startedAt?: number; createStartedAt?: number; ranAt?: number;
  /** prime=N: the parts run side by side (cache hit), or how many were written after a whole primer ran. */
  parts?: { createMs: number; runMs: number }[]; partsWritten?: number;
}

/** Creates `bytes` on CUDA and runs it once, both on worker threads; with `profileTo`, returns the run's profile. */
async function createAndRun(bytes: Uint8Array, io: PrimerIo, provider: 'cpu' | 'cuda', cuda: Record<string, string>, gpenOps: boolean, profileTo?: string): Promise<{ createMs: number; runMs: number; createStartedAt: number; profile: ProfileNode[] | null }> {
  const t0 = performance.now();
  const s = await CapiSession.createAsync(bytes, { provider, ...(provider === 'cuda' ? { cuda } : {}), graphOptimizationLevel: 0, gpenOps, ...(profileTo ? { profilePrefix: profileTo } : {}) });
  const t1 = performance.now();
  try {
    await s.runOnceAsync(io.input ? { name: io.input.name, x: new Float32Array(io.input.dims.reduce((a, b) => a * b, 1)), dims: io.input.dims } : null, io.output);
    const runMs = performance.now() - t1;
    return { createMs: t1 - t0, runMs, createStartedAt: t0, profile: profileTo ? readProfileNodes(s.endProfiling()) : null };
  } finally {
    await s.releaseAsync();
  }
}

/**
 * Creates the primer of `model` on CUDA with `cuda` (provider options; CUDA graphs left out) and runs it once, on
 * worker threads; with `parts` > 1 its cached parts run side by side instead, and where they are not cached yet the
 * whole primer runs with ONNX Runtime's profiler and its parts are written for the next cold start. Resolves with
 * what it did, failures included: the primer is an optimisation, never an error. (`provider` 'cpu' runs the same
 * steps on the CPU: the tests' way through the cache.) `gpenOps`: the graph uses gpen-lab's operators (fused_act=1).
 */
export async function prime(model: string | Uint8Array, cuda: Record<string, string>, parts = 1, provider: 'cpu' | 'cuda' = 'cuda', gpenOps = false): Promise<PrimeReport> {
  const t0 = performance.now();
  const { enable_cuda_graph: _g, ...opts } = cuda;
  let dir: string | null = null;
  try {
    const split = parts > 1 ? await cachedParts(model, parts) : null;
    if (split) {
      const { partIo } = await import('./primer-graph.js');
      const runs = await Promise.all(split.map((b) => createAndRun(b, partIo(b), provider, opts, gpenOps)));
      return { ms: performance.now() - t0, ok: true, cache: 'hit', parts: runs.map(({ createMs, runMs }) => ({ createMs, runMs })), startedAt: t0, ranAt: performance.now() };
    }
    const p = await primerFor(model);
    dir = parts > 1 && typeof model === 'string' ? await mkdtemp(path.join(os.tmpdir(), 'gpen-primer-')) : null;
    const r = await createAndRun(p.model, p.io, provider, opts, gpenOps, dir ? path.join(dir, 'p') : undefined);
    let partsWritten: number | undefined;
    if (dir && r.profile && typeof model === 'string') {
      const { splitPrimer } = await import('./primer-graph.js');
      const bytes = splitPrimer(p.model, r.profile, parts);
      await writeParts(model, parts, bytes);
      partsWritten = bytes.length;
    }
    return { ms: performance.now() - t0, ok: true, cache: p.cache, createMs: r.createMs, runMs: r.runMs, startedAt: t0, createStartedAt: r.createStartedAt, ranAt: r.createStartedAt + r.createMs + r.runMs, ...(partsWritten !== undefined ? { partsWritten } : {}) };
  } catch (e) {
    return { ms: performance.now() - t0, ok: false, error: (e as Error).message };
  } finally {
    if (dir) await rm(dir, { recursive: true, force: true });
  }
}
