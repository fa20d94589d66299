// One entry point for every model source a user can name: an official .pth, an .onnx (ours, published, upstream
// export), synthetic weights of any size, or the identity model. Describes, converts and prepares them for a session.
import { createHash } from 'node:crypto';
import { existsSync, lstatSync } from 'node:fs';
import { open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { GpenLabError, checkInteger } from '../errors.js';
import { cacheDir, fileIdentity } from '../io/cache.js';
import { writeFileAtomicSafe, assertReadableFile } from '../io/files.js';
import { sha256File } from '../io/hash.js';
import type { GpenArch } from './arch.js';
import { checkSize, countParams, defaultArch, inferArch } from './arch.js';
import type { Precision } from './gpen-graph.js';
import { OPSET, buildGpenOnnx, buildIdentityOnnx } from './gpen-graph.js';
import type { GraphForm } from './converted.js';
import { convertedPaths, graphTag } from './converted.js';

export type { GraphForm } from './converted.js';
export { formForCuda } from './converted.js';
import { catalogEntryLike } from './catalog.js';
import { locateModel } from './fetched.js';
import { inspectOnnx } from './onnx-file.js';
import { readPth } from './pth.js';
import { synthStateDict } from './synth.js';

export type ModelFormat = 'pth' | 'onnx' | 'synthetic' | 'identity';

export interface ModelInfo {
  file: string | null;
  format: ModelFormat;
  /** Who made it: gpen-lab, an official checkpoint, a published ONNX, an upstream torch export. */
  origin: string;
  kind: 'gpen' | 'identity';
  size: number;
  channelMultiplier: number | null;
  narrow: number | null;
  params: number;
  precision: Precision;
  synthetic: boolean;
  seed: number | null;
  sha256: string | null;
  /** For .pth: zip or legacy, and the key the generator was found under. */
  pth?: { format: 'zip' | 'legacy'; key: string | null; dtypes: string[] };
  /** For .onnx: names and dims of the graph input/output, batch fixed or dynamic. */
  onnx?: {
    inputName: string;
    outputName: string;
    inputDims: (number | string)[];
    fixedBatch: number | null;
    opset: number;
    producer: string;
  };
}

/** What `model run`, the pipeline and the lab accept as a model. */
export type ModelSpec =
  | { type: 'file'; file: string; key?: string }
  | { type: 'synthetic'; size: number; seed?: number; cacheDir?: string }
  | { type: 'identity'; size: number };

export interface PreparedModel {
  info: ModelInfo;
  /** A path ONNX Runtime can load, or the serialized graph. */
  model: string | Uint8Array;
  /** Human label for messages: the file, or "synthetic GPEN-512 (seed 0)". */
  label: string;
  /** A .pth's converted graph in the cache: its file, and whether an earlier process had written it. */
  converted?: { file: string; cached: boolean };
  /** Something the user should hear about the preparation (a cache that could not be written). */
  note?: string;
}

export const DEFAULT_SEED = 0;

const MODEL_WHAT = 'a GPEN model (.pth or .onnx)';

/**
 * The file a model argument means: a path, or a catalog name (`GPEN-BFR-512`) that `gpen-lab models get` fetched,
 * checked against its record (model/fetched.ts). A missing model is E_FILE_MISSING whose fix says how to get weights.
 */
export async function resolveModelFile(arg: string): Promise<string> {
  const file = await locateModel(arg, MODEL_WHAT);
  if (file === arg && !existsSync(arg) && !isLink(arg)) {
    const entry = catalogEntryLike(arg);
    const fetch = entry?.runnable
      ? `or fetch the official weights with \`gpen-lab models get ${entry.name}\` and pass --model ${entry.name}`
      : 'or get official weights: `gpen-lab models` lists them, `gpen-lab models get GPEN-BFR-512` fetches one (then --model GPEN-BFR-512)';
    throw new GpenLabError(
      'E_FILE_MISSING',
      `Input file is missing: ${arg} (expected ${MODEL_WHAT})`,
      `Check the path (it is resolved from ${process.cwd()}), ${fetch}.`,
      { input: arg },
    );
  }
  return file;
}

/** A symbolic link, dangling or looping: assertReadableFile names what is wrong with it. */
function isLink(file: string): boolean {
  try {
    return lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Sniffs the container: zip or pickle means .pth, otherwise an ONNX protobuf is assumed. */
export async function sniffFormat(arg: string): Promise<'pth' | 'onnx'> {
  const file = await resolveModelFile(arg);
  await assertReadableFile(file, MODEL_WHAT);
  const fh = await open(file, 'r');
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await fh.read(head, 0, 4, 0);
    if (bytesRead >= 2 && head[0] === 0x50 && head[1] === 0x4b) return 'pth';
    if (bytesRead >= 1 && head[0] === 0x80) return 'pth';
    const ext = path.extname(file).toLowerCase();
    if (ext === '.pth' || ext === '.pt' || ext === '.ckpt') {
      throw new GpenLabError(
        'E_PTH_CORRUPT',
        `${file} is neither a zip (torch >= 1.6) nor a legacy pickle checkpoint: it starts with bytes ${head.subarray(0, bytesRead).toString('hex') || '(none: the file is empty)'}`,
        'The download is probably incomplete or the file is of another kind; download the checkpoint again.',
        { input: file },
      );
    }
    return 'onnx';
  } finally {
    await fh.close();
  }
}

export async function loadCheckpoint(
  file: string,
  key?: string,
): Promise<{ arch: GpenArch; tensors: Awaited<ReturnType<typeof readPth>>['tensors']; info: ModelInfo }> {
  // hash while reading: both stream the same file, and the page cache serves the second
  const [ck, sha256] = await Promise.all([readPth(file, key !== undefined ? { key } : undefined), sha256File(file)]);
  // GPEN's weights stored in a type that is not floating point: say so (inferArch would find none of them)
  const nonFloat = ck.others.filter((o) => /^(generator|ecd\d|final_linear)\./.test(o.name));
  if (nonFloat.length > 0 && ![...ck.tensors.keys()].some((n) => n.startsWith('generator.'))) {
    throw new GpenLabError(
      'E_NOT_GPEN',
      `${file} holds GPEN's tensors as ${[...new Set(nonFloat.map((o) => o.dtype))].join(', ')}, not floating point (${nonFloat[0].name} and ${nonFloat.length - 1} more)`,
      'Use the official float32 checkpoint (GPEN-BFR-512.pth); a quantised or converted one cannot be read as GPEN weights.',
      { input: file },
    );
  }
  const arch = inferArch(ck.tensors, file);
  const info: ModelInfo = {
    file,
    format: 'pth',
    origin: 'checkpoint',
    kind: 'gpen',
    size: arch.size,
    channelMultiplier: arch.channelMultiplier,
    narrow: arch.narrow,
    params: countParams(arch),
    precision: ck.dtypes.includes('float16') && !ck.dtypes.includes('float32') ? 'fp16' : 'fp32',
    synthetic: false,
    seed: null,
    sha256,
    pth: { format: ck.format, key: ck.key, dtypes: ck.dtypes },
  };
  return { arch, tensors: ck.tensors, info };
}

export async function describeModel(arg: string, key?: string): Promise<ModelInfo> {
  const file = await resolveModelFile(arg);
  if ((await sniffFormat(file)) === 'pth') return (await loadCheckpoint(file, key)).info;
  const o = await inspectOnnx(file);
  return {
    file,
    format: 'onnx',
    origin: o.origin,
    kind: o.kind,
    size: o.size,
    channelMultiplier: o.channelMultiplier,
    narrow: o.narrow,
    params: o.metadata['gpen-lab.params'] !== undefined ? Number(o.metadata['gpen-lab.params']) : o.params,
    precision: o.precision,
    synthetic: o.synthetic,
    seed: o.metadata['gpen-lab.seed'] !== undefined ? Number(o.metadata['gpen-lab.seed']) : null,
    sha256: await sha256File(file),
    onnx: {
      inputName: o.inputName,
      outputName: o.outputName,
      inputDims: o.inputDims,
      fixedBatch: o.fixedBatch,
      opset: o.opset,
      producer: o.producer,
    },
  };
}

/**
 * describeModel for an ONNX file, remembered by (real path, size, mtime) the way make and git's index judge a file
 * unchanged: a later process (a cold start) then neither reads, parses nor hashes the file before ONNX Runtime loads
 * it. A changed file, an unreadable or foreign cache entry, or a cache that cannot be written falls back to reading.
 */
export async function describeOnnxCached(file: string): Promise<ModelInfo> {
  let key: string | null = null;
  const store = path.join(cacheDir(), 'onnx-info.json');
  let entries: Record<string, ModelInfo> = {};
  try {
    key = fileIdentity(file);
    entries = JSON.parse(await readFile(store, 'utf8')) as Record<string, ModelInfo>;
    const hit = entries[key];
    if (hit && hit.format === 'onnx' && typeof hit.sha256 === 'string') return { ...hit, file };
  } catch {
    // no cache yet, or an unreadable one: describe the file
  }
  const info = await describeModel(file);
  if (key) {
    try {
      // keep the newest entries only: one per file path
      const kept = Object.fromEntries(
        Object.entries(entries)
          .filter(([k]) => !k.startsWith(`${key!.split('|')[0]}|`))
          .slice(-63),
      );
      await writeFileAtomicSafe(store, JSON.stringify({ ...kept, [key]: info }));
    } catch {
      // a read-only home: the next process reads the file again, nothing else changes
    }
  }
  return info;
}

function checkSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) checkInteger('seed', seed, 0, 0xffffffff);
}

/** Synthetic GPEN of an official configuration for its size, as ONNX bytes. */
export function synthesizeGpen(
  size: number,
  seed: number,
  precision: Precision,
  nhwc = false,
  fusedAct = false,
): { bytes: Uint8Array; arch: GpenArch } {
  checkSize(size, 'size');
  checkSeed(seed);
  const arch = defaultArch(size);
  const tensors = synthStateDict(arch, seed);
  const bytes = buildGpenOnnx(arch, tensors, {
    precision,
    nhwc,
    fusedAct,
    metadata: {
      'gpen-lab.synthetic': 'true',
      'gpen-lab.seed': String(seed),
      'gpen-lab.source': `synthetic (seed ${seed})`,
    },
  });
  return { bytes, arch };
}

export function synthesizeIdentity(size: number): Uint8Array {
  checkSize(size, 'size');
  return buildIdentityOnnx(size);
}

/** Converts an official checkpoint to ONNX, written atomically. */
export async function convertPth(
  arg: string,
  out: string,
  opts: { precision: Precision; key?: string; nhwc?: boolean },
): Promise<ModelInfo> {
  const file = await resolveModelFile(arg);
  if ((await sniffFormat(file)) !== 'pth') {
    throw new GpenLabError(
      'E_FORMAT_UNKNOWN',
      `${file} is not a .pth checkpoint (it looks like an ONNX file)`,
      'An ONNX file needs no conversion: pass it to `gpen-lab model run` (or --model) directly.',
      { input: file },
    );
  }
  const { arch, tensors, info } = await loadCheckpoint(file, opts.key);
  const bytes = buildGpenOnnx(arch, tensors, {
    precision: opts.precision,
    nhwc: opts.nhwc === true,
    metadata: {
      'gpen-lab.source': `${path.basename(file)} sha256:${info.sha256}${info.pth?.key ? ` key:${info.pth.key}` : ''}`,
    },
  });
  await writeFileAtomicSafe(out, bytes);
  // described from what was written, without reading 300 MB back
  return {
    file: out,
    format: 'onnx',
    origin: 'gpen-lab',
    kind: 'gpen',
    size: arch.size,
    channelMultiplier: arch.channelMultiplier,
    narrow: arch.narrow,
    params: info.params,
    precision: opts.precision,
    synthetic: false,
    seed: null,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    onnx: {
      inputName: 'input',
      outputName: 'output',
      inputDims: ['batch', 3, arch.size, arch.size],
      fixedBatch: null,
      opset: OPSET,
      producer: 'gpen-lab',
    },
  };
}

/**
 * A checkpoint as a session's model: the ONNX graph converted from it on first use and kept in the cache
 * (model/converted.ts), so that later processes load a file (no 300 MB pickle to read, no graph to build; the C API
 * route's early session, graph cache and primer need a file). A cache that cannot be written keeps the graph in memory
 * and says so (PreparedModel.note).
 */
async function preparePth(
  file: string,
  key: string | undefined,
  precision: Precision,
  nhwc: boolean,
  fusedAct: boolean,
): Promise<PreparedModel> {
  const paths = convertedPaths(file, { ...(key !== undefined ? { key } : {}), precision, nhwc, fusedAct });
  try {
    const info = JSON.parse(await readFile(paths.info, 'utf8')) as ModelInfo;
    if (info.format === 'pth' && typeof info.sha256 === 'string' && existsSync(paths.onnx))
      return { model: paths.onnx, label: file, info: { ...info, file }, converted: { file: paths.onnx, cached: true } };
  } catch {
    // not converted yet, or an unreadable entry: convert again
  }
  const { arch, tensors, info } = await loadCheckpoint(file, key);
  const bytes = buildGpenOnnx(arch, tensors, { precision, nhwc, fusedAct });
  const described: ModelInfo = { ...info, precision };
  try {
    await writeFileAtomicSafe(paths.onnx, bytes);
    await writeFileAtomicSafe(paths.info, JSON.stringify(described));
    return { model: paths.onnx, label: file, info: described, converted: { file: paths.onnx, cached: false } };
  } catch (e) {
    await rm(paths.onnx, { force: true }).catch(() => undefined);
    return {
      model: bytes,
      label: file,
      info: described,
      note: `the converted graph could not be cached (${(e as Error).message}): every process converts ${file} again`,
    };
  }
}

/**
 * The model ready for a session. `precision` undefined: an ONNX file's own precision, fp32 for everything else; an
 * ONNX file asked for in the other precision is refused (it cannot be converted here). `form.nhwc`: a graph built
 * here (from a .pth or synthetic) takes the form for sessions with CUDA's prefer_nhwc=1 (BuildOptions.nhwc); an ONNX
 * file keeps the form it was written in.
 */
export async function prepareModel(spec: ModelSpec, asked?: Precision, form: GraphForm = {}): Promise<PreparedModel> {
  const nhwc = form.nhwc === true;
  const fusedAct = nhwc && form.fusedAct === true;
  const precision: Precision = asked ?? 'fp32';
  if (spec.type === 'synthetic') {
    const seed = spec.seed ?? DEFAULT_SEED;
    // with a cache folder the graph is built once and later processes load the file (the lab's cold runs)
    const cached = spec.cacheDir
      ? path.join(spec.cacheDir, `synthetic-gpen-${spec.size}-s${seed}-${precision}-${graphTag(nhwc, fusedAct)}.onnx`)
      : null;
    let model: string | Uint8Array;
    let arch: GpenArch;
    if (cached && existsSync(cached)) {
      checkSize(spec.size, 'synthetic');
      arch = defaultArch(spec.size);
      model = cached;
    } else {
      const built = synthesizeGpen(spec.size, seed, precision, nhwc, fusedAct);
      arch = built.arch;
      model = built.bytes;
      if (cached) {
        await writeFileAtomicSafe(cached, built.bytes);
        model = cached;
      }
    }
    return {
      model,
      label: `synthetic GPEN-${spec.size} (seed ${seed})`,
      info: {
        file: null,
        format: 'synthetic',
        origin: 'gpen-lab',
        kind: 'gpen',
        size: arch.size,
        channelMultiplier: arch.channelMultiplier,
        narrow: arch.narrow,
        params: countParams(arch),
        precision,
        synthetic: true,
        seed,
        sha256: null,
      },
    };
  }
  if (spec.type === 'identity') {
    return {
      model: synthesizeIdentity(spec.size),
      label: `identity-${spec.size}`,
      info: {
        file: null,
        format: 'identity',
        origin: 'gpen-lab',
        kind: 'identity',
        size: spec.size,
        channelMultiplier: null,
        narrow: null,
        params: 0,
        precision: 'fp32',
        synthetic: false,
        seed: null,
        sha256: null,
      },
    };
  }
  const file = await resolveModelFile(spec.file);
  if ((await sniffFormat(file)) === 'pth') return preparePth(file, spec.key, precision, nhwc, fusedAct);
  const info = await describeOnnxCached(file);
  if (asked !== undefined && asked !== info.precision) {
    throw new GpenLabError(
      'E_ARGUMENT',
      `${file} is an ${info.precision} ONNX graph but ${asked} was asked for`,
      `Drop --fp16/--precision for a ready-made ONNX file (it runs in its own precision), or convert the official .pth with \`gpen-lab model convert IN.pth -o OUT.onnx${asked === 'fp16' ? ' --fp16' : ''}\`.`,
      { input: file },
    );
  }
  return { model: file, label: file, info };
}
