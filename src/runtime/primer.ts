// A primer for CUDA cold starts: the model's own graph with its weights replaced by zeros made on the device
// (ConstantOfShape), created and run once on worker threads beside the real session's creation. In a fresh process
// the first run of a GPEN-512 session takes 500-900 ms against ~90 ms for the first run of a second session
// (measured on an H200): most of it is paid once per process (cuDNN, cuBLAS and ONNX Runtime kernels loaded and set
// up on first use, per convolution shape), so a graph with the same operators and shapes pays it while the real
// session is still being created. The primer file holds no weights (a few hundred KB for GPEN-512) and is cached
// per model file, like the optimised graph.
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { writeFileAtomicSafe } from '../io/files.js';
import { CapiSession } from './capi/session.js';
import { modelCachePath } from './graph-cache.js';

/** What a primer reads and writes: its input, if any, at batch 1, and its first output. */
export interface PrimerIo {
  input: { name: string; dims: number[] } | null;
  output: string;
}

/** Where a model file's primer is cached (by the file's identity and the runtime's version). */
function cacheBase(model: string): string {
  return modelCachePath('primer', model, { primer: 1 });
}

/**
 * The primer of a model file, cached by the file's identity and the runtime's version (the graph and, beside it, its
 * input and output); made in memory for bytes. A cache hit is read without yielding and without the ONNX protobuf
 * modules: in a cold start the primer's session is then asked for in the same moment as the real one.
 */
export async function primerFor(
  model: string | Uint8Array,
): Promise<{ model: Uint8Array; io: PrimerIo; cache: 'hit' | 'written' | null }> {
  const base = typeof model === 'string' ? cacheBase(model) : null;
  if (base && existsSync(`${base}.onnx`) && existsSync(`${base}.io.json`)) {
    return {
      model: readFileSync(`${base}.onnx`),
      io: JSON.parse(readFileSync(`${base}.io.json`, 'utf8')) as PrimerIo,
      cache: 'hit',
    };
  }
  const { primerModel } = await import('./primer-graph.js');
  const p = primerModel(typeof model === 'string' ? new Uint8Array(await readFile(model)) : model);
  const io: PrimerIo = { input: p.input, output: p.output.name };
  if (!base) return { model: p.model, io, cache: null };
  await writeFileAtomicSafe(`${base}.onnx`, Buffer.from(p.model.buffer, p.model.byteOffset, p.model.byteLength));
  await writeFileAtomicSafe(`${base}.io.json`, JSON.stringify(io));
  return { model: p.model, io, cache: 'written' };
}

export interface PrimeReport {
  ms: number;
  ok: boolean;
  error?: string;
  cache?: 'hit' | 'written' | null;
  createMs?: number;
  runMs?: number;
  /** The timeline, in ms since the process started: prime() called, its (whole) session's creation begun, its run ended. */
  startedAt?: number;
  createStartedAt?: number;
  ranAt?: number;
}

/** Creates `bytes` on CUDA and runs it once, both on worker threads. */
async function createAndRun(
  bytes: Uint8Array,
  io: PrimerIo,
  provider: 'cpu' | 'cuda',
  cuda: Record<string, string>,
  gpenOps: boolean,
): Promise<{ createMs: number; runMs: number; createStartedAt: number }> {
  const t0 = performance.now();
  const s = await CapiSession.createAsync(bytes, {
    provider,
    ...(provider === 'cuda' ? { cuda } : {}),
    graphOptimizationLevel: 0,
    gpenOps,
  });
  const t1 = performance.now();
  try {
    await s.runOnceAsync(
      io.input
        ? { name: io.input.name, x: new Float32Array(io.input.dims.reduce((a, b) => a * b, 1)), dims: io.input.dims }
        : null,
      io.output,
    );
    const runMs = performance.now() - t1;
    return { createMs: t1 - t0, runMs, createStartedAt: t0 };
  } finally {
    await s.releaseAsync();
  }
}

/**
 * Creates the primer of `model` on CUDA with `cuda` (provider options; CUDA graphs left out) and runs it once, on
 * worker threads. Resolves with what it did, failures included: the primer is an optimisation, never an error.
 * (`provider` 'cpu' runs the same steps on the CPU: the tests' way through the cache.) `gpenOps`: the graph uses
 * gpen-lab's operators (fused_act=1).
 */
export async function prime(
  model: string | Uint8Array,
  cuda: Record<string, string>,
  provider: 'cpu' | 'cuda' = 'cuda',
  gpenOps = false,
): Promise<PrimeReport> {
  const t0 = performance.now();
  const { enable_cuda_graph: _g, ...opts } = cuda;
  try {
    const p = await primerFor(model);
    const r = await createAndRun(p.model, p.io, provider, opts, gpenOps);
    return {
      ms: performance.now() - t0,
      ok: true,
      cache: p.cache,
      createMs: r.createMs,
      runMs: r.runMs,
      startedAt: t0,
      createStartedAt: r.createStartedAt,
      ranAt: r.createStartedAt + r.createMs + r.runMs,
    };
  } catch (e) {
    return { ms: performance.now() - t0, ok: false, error: (e as Error).message };
  }
}
