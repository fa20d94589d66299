// The official weights of the upstream project (github.com/yangxy/GPEN), as its README publishes them, and what
// gpen-lab can run of each. A size is given only where upstream states it (the wget log saved in its Colab notebook);
// hashes stay null, upstream states none: a guessed value would turn a good download into an error.
import path from 'node:path';
import { cacheDir } from '../io/cache.js';

/** Where the upstream README links its weights: `<base><file>` for every file it lists. */
export const UPSTREAM_BASE_URL = 'https://public-vigen-video.oss-cn-shanghai.aliyuncs.com/robin/models/';
const README = 'https://github.com/yangxy/GPEN#usage';
const NOTEBOOK = 'upstream GPEN.ipynb (its saved wget log of 2022-05-17)';
const MODELSCOPE_HIRES = 'https://www.modelscope.cn/models/damo/cv_gpen_image-portrait-enhancement-hires/summary';

export interface CatalogEntry {
  name: string;
  /** The file name upstream publishes and `models get` writes. */
  file: string;
  /** What the network does, in upstream's words. */
  task: string;
  /** Bytes, where upstream states them; null: unknown. */
  size: number | null;
  /** Where the size comes from, or why it is unknown. */
  sizeSource: string;
  /** Hex sha256, where upstream states it; null: unknown (the first download's hash is recorded instead). */
  sha256: string | null;
  /** The direct download URL upstream links; null where it publishes the file only through another service. */
  url: string | null;
  /** Where upstream publishes it, in words a user can follow. */
  source: string;
  /** Whether `restore` / `model convert` take it. */
  runnable: boolean;
  /** What gpen-lab does with it today. */
  runs: string;
}

const GPEN_RUNS = 'yes: restore, model convert/info/run (the .pth loader infers size, channel_multiplier and narrow)';
const NOT_GPEN_TASK =
  "no: listed only; gpen-lab's pipeline is face restoration (BFR), it has no pipeline for this task";

const UNKNOWN = 'unknown: upstream does not state it';

/** Sizes upstream's notebook shows wget saving (`saved [N/N]`); every other file's is unknown. */
const STATED_SIZES: Record<string, number> = {
  'GPEN-BFR-256.pth': 75_573_183,
  'GPEN-BFR-512.pth': 284_085_738,
  'RetinaFace-R50.pth': 109_497_761,
  'ParseNet-latest.pth': 85_331_193,
  'realesrnet_x2.pth': 77_228_423,
};

function linked(name: string, file: string, task: string, runnable: boolean, runs: string): CatalogEntry {
  const size = STATED_SIZES[file] ?? null;
  return {
    name,
    file,
    task,
    size,
    sizeSource: size !== null ? NOTEBOOK : UNKNOWN,
    sha256: null,
    url: UPSTREAM_BASE_URL + file,
    source: `upstream README (${README}): ${UPSTREAM_BASE_URL}${file}`,
    runnable,
    runs,
  };
}

function modelscope(name: string, file: string, task: string, upstreamFile: string): CatalogEntry {
  return {
    name,
    file,
    task,
    size: null,
    sizeSource: UNKNOWN,
    sha256: null,
    url: null,
    source: `ModelScope only (${MODELSCOPE_HIRES}), as ${upstreamFile}; the upstream README links no direct file`,
    runnable: true,
    runs: GPEN_RUNS,
  };
}

export const CATALOG: readonly CatalogEntry[] = Object.freeze([
  linked('GPEN-BFR-256', 'GPEN-BFR-256.pth', 'blind face restoration, 256 px', true, GPEN_RUNS),
  linked('GPEN-BFR-512', 'GPEN-BFR-512.pth', 'blind face restoration, 512 px', true, GPEN_RUNS),
  modelscope('GPEN-BFR-1024', 'GPEN-BFR-1024.pth', 'blind face restoration, 1024 px', 'pytorch_model.pt'),
  modelscope(
    'GPEN-BFR-2048',
    'GPEN-BFR-2048.pth',
    'blind face restoration, 2048 px (selfies)',
    'pytorch_model-2048.pt',
  ),
  // the upstream author, in yangxy/GPEN's GitHub issue #43: "GPEN-BFR-512-D is the discriminator"
  linked(
    'GPEN-BFR-256-D',
    'GPEN-BFR-256-D.pth',
    'discriminator of GPEN-BFR-256 (training only)',
    false,
    'no: a discriminator, not a generator; used for training, which gpen-lab does not do',
  ),
  linked(
    'GPEN-BFR-512-D',
    'GPEN-BFR-512-D.pth',
    'discriminator of GPEN-BFR-512 (training only)',
    false,
    'no: a discriminator, not a generator; used for training, which gpen-lab does not do',
  ),
  linked('GPEN-Colorization-1024', 'GPEN-Colorization-1024.pth', 'face colorization, 1024 px', false, NOT_GPEN_TASK),
  linked('GPEN-Inpainting-1024', 'GPEN-Inpainting-1024.pth', 'face inpainting, 1024 px', false, NOT_GPEN_TASK),
  linked('GPEN-Seg2face-512', 'GPEN-Seg2face-512.pth', 'segmentation map to face, 512 px', false, NOT_GPEN_TASK),
  linked(
    'RetinaFace-R50',
    'RetinaFace-R50.pth',
    "face detector (upstream's)",
    false,
    'no: gpen-lab detects faces with BlazeFace',
  ),
  linked(
    'ParseNet-latest',
    'ParseNet-latest.pth',
    "face parsing (upstream's paste-back mask)",
    false,
    'no: gpen-lab pastes back with its own mask',
  ),
  linked(
    'model_ir_se50',
    'model_ir_se50.pth',
    "face recognition network (upstream's training loss)",
    false,
    'no: used for training only',
  ),
  linked(
    'RealESRNet_x1',
    'realesrnet_x1.pth',
    'background super-resolution, x1',
    false,
    'no: gpen-lab restores faces only, not the background',
  ),
  linked(
    'RealESRNet_x2',
    'realesrnet_x2.pth',
    'background super-resolution, x2',
    false,
    'no: gpen-lab restores faces only, not the background',
  ),
  linked(
    'RealESRNet_x4',
    'realesrnet_x4.pth',
    'background super-resolution, x4',
    false,
    'no: gpen-lab restores faces only, not the background',
  ),
]);

/** The entry a name means: its name or its file name, either case (`gpen-bfr-512`, `GPEN-BFR-512.pth`). */
export function catalogEntry(name: string): CatalogEntry | null {
  const n = name.toLowerCase();
  return CATALOG.find((e) => e.name.toLowerCase() === n || e.file.toLowerCase() === n) ?? null;
}

/** The entry a model argument's file name points at (`weights/GPEN-BFR-512.pth` too), for the missing-model error. */
export function catalogEntryLike(arg: string): CatalogEntry | null {
  const base = path.basename(arg);
  return catalogEntry(base) ?? catalogEntry(base.replace(/\.(pth|pt|ckpt|onnx)$/i, ''));
}

/** Where `models get` puts files and `--model NAME` looks: $GPEN_LAB_MODELS, else `<cache>/models`. */
export function modelsDir(): string {
  return process.env.GPEN_LAB_MODELS ?? path.join(cacheDir(), 'models');
}

/** The base URL files are fetched from: $GPEN_LAB_MODELS_URL (a mirror), else null (each entry's own URL). */
export function baseUrlOverride(): string | null {
  return process.env.GPEN_LAB_MODELS_URL || null;
}

/** The URL `models get` fetches for an entry: `<base>/<file>` under a base given, else upstream's link (null: none). */
export function urlFor(entry: CatalogEntry, base: string | null = baseUrlOverride()): string | null {
  if (base) return `${base.replace(/\/+$/, '')}/${entry.file}`;
  return entry.url;
}
