// The shapes the pipeline's parts share: what a Restorer is asked (RestoreOptions), what each image's restoration
// answers (RestoreResult), and an image on its way through (Pending). src/face/restore.ts re-exports the public ones.
import type { ErrorCode } from '../../errors.js';
import type { DecodedImage, OutputExt } from '../../io/image.js';
import type { Precision } from '../../model/gpen-graph.js';
import type { GraphForm, ModelInfo, ModelSpec, PreparedModel } from '../../model/registry.js';
import type { RuntimeBuild } from '../../runtime/builds.js';
import type { Provider } from '../../runtime/providers.js';
import type { ProviderChoice, Route, RouteChoice, Workload } from '../../runtime/routes.js';
import type { GpenRunner, SessionConfig } from '../../runtime/session.js';
import type { Affine } from '../align.js';
import type { Availability } from '../choose.js';
import type { DetectedFace, FaceDetector } from '../types.js';

/** What restore can write per image, in this order (RestoreOptions.outputs). */
export const OUTPUT_KINDS = ['gpen', 'comp', 'faces'] as const;
export type OutputKind = (typeof OUTPUT_KINDS)[number];

export interface RestoreOptions {
  model: ModelSpec;
  /** Default: fp16 on GPU providers, fp32 on the CPU, for a model built here; an ONNX file's own. */
  precision?: Precision;
  /** Default auto: CUDA, else a hardware WebGPU adapter, else the CPU (face/choose.ts). */
  provider?: ProviderChoice;
  /** Default fast: the measured-best binding and options for the provider (runtime/routes.ts); stock: the baseline. */
  route?: Route;
  /**
   * The ONNX Runtime build (runtime/builds.ts). Default: on a GPU provider (or auto's CUDA candidate) the installed
   * build that fits the driver, else onnxruntime-node's own (runtime/runtime-choice.ts; said in the route's `runtime`).
   * One build per process: another than onnxruntime-node's runs the session and the detector through its C API.
   */
  runtime?: RuntimeBuild;
  /** The job's shape, which picks the fast route's CUDA set: one image (default), several, or a service. */
  workload?: Workload;
  /** How the model is prepared for a candidate (the service does it in a worker thread); default prepareModel. */
  prepare?: (spec: ModelSpec, precision: Precision | undefined, form: GraphForm) => Promise<PreparedModel>;
  /** Availability checks for auto (tests fake them): null when a provider may be tried, else why not. */
  available?: Availability;
  /** Weight of the restored face against the aligned original (official --alpha), 0..1. */
  alpha?: number;
  /** Treat each input as an already aligned face: GAN only, no detection or paste. */
  aligned?: boolean;
  /**
   * The files each image gets (default ['gpen']): NAME_GPEN, the side-by-side NAME_COMP, the crop pairs
   * NAME_faceNN.
   */
  outputs?: OutputKind[];
  /** @deprecated outputs with 'faces'. */
  saveFace?: boolean;
  /** Default: the input's format (JPEG, PNG, WebP; others PNG). */
  ext?: OutputExt;
  /** Hears each image's faces found (done 0) and each batch or chunk of them restored. */
  onProgress?: (p: RestoreProgress) => void;
  /**
   * Faces per inference (across images; default per provider, routes.ts defaultBatch); a fixed-batch model: its
   * own.
   */
  batch?: number;
  outDir: string;
  maxPixels?: number;
  /** A detector to use instead of BlazeFace (the seam for other detectors). */
  detector?: FaceDetector;
  /**
   * Return once the detector is ready while the GPEN session is still being created; the first inference waits for
   * it (a cold start decodes, detects and aligns meanwhile). A session that fails then fails restoreFiles as a whole.
   * It overlaps only where the session is created off the JavaScript thread: the C API route. Default: on that
   * route for a single image.
   */
  deferSession?: boolean;
  /** Where BlazeFace runs (default routes.ts detectorPlacement: on CUDA beside the warm set, else the CPU). */
  detectorProvider?: Provider;
  /** A face-parsing mask for a restored crop (size x size, 0..1): the seam for a user-supplied parser. */
  parser?: (restored: Float32Array, size: number) => Float32Array;
  /** The model already prepared (the service prepares it in a worker thread); `model` still names it. */
  prepared?: PreparedModel;
  /** Session options beyond the provider (graph optimisation level, threads, device): the lab's cells set them. */
  session?: Partial<Omit<SessionConfig, 'provider' | 'label'>>;
  /**
   * A GPEN session made elsewhere, ready or on its way, for `prepared`'s model (then `session` is unused); released
   * with the Restorer.
   */
  runner?: Promise<GpenRunner>;
  /** Write the encoded outputs (default true; the benchmark encodes but does not write). */
  write?: boolean;
  /** Replace output files that are already there (default false: such an image is an E_OUTPUT_EXISTS result). */
  overwrite?: boolean;
  /**
   * Worker threads that warp faces into crops and sample restored faces back, for images with FACE_WORKERS_FROM
   * faces or more (default: the cores but one, at most 16; 0: all on the JavaScript thread). Started at first use.
   */
  faceThreads?: number;
  /**
   * Overlap one image's alignment, inference and paste (default true): on the C API route (--cuda-options; a session
   * that reads the workers' shared memory) and with padBatch, an image of PIPELINE_FROM faces or more runs in
   * chunks, the face workers aligning and pasting one chunk while the session runs another. The output is the same
   * either way.
   */
  pipeline?: boolean;
  /**
   * Give every inference one batch size (runtime/fixed-batch.ts: the largest run so far up to --batch, fewer faces
   * padded with zeros). Default true on CUDA and TensorRT, where each change of batch size costs ~1 s through the
   * stock binding and ~0.1 s through the C API without CUDA graphs (measured on an H200), but not with
   * enable_cuda_graph=1 (a graph per batch size); always for a model exported with a fixed batch; false elsewhere.
   */
  padBatch?: boolean;
}

type Defaulted = 'alpha' | 'aligned' | 'outputs' | 'batch' | 'outDir' | 'write';
/** The options once create() has checked them and filled in the defaults the pipeline reads. */
export type ResolvedOptions = Required<Pick<RestoreOptions, Defaulted>> & RestoreOptions;

/** Progress inside one image (RestoreOptions.onProgress): its faces, and how many the model has restored. */
export interface RestoreProgress {
  input: string;
  faces: number;
  done: number;
}

/**
 * Per-call overrides of the pipeline's options (the service takes them from each request). restoreDecoded's outputs
 * default to gpen and comp, and faces with saveFace.
 */
export interface FinishOptions {
  alpha?: number;
  ext?: OutputExt;
  outputs?: OutputKind[];
  saveFace?: boolean;
  write?: boolean;
}

export type StageName = 'decode' | 'detect' | 'align' | 'infer' | 'paste' | 'encode' | 'write';

export interface RestoreResult {
  input: string;
  outputs: { gpen: string | null; comp: string | null; faces: string[] };
  faces: DetectedFace[];
  stages_ms: Record<StageName, number>;
  /** Set when the image ran in overlapping chunks (RestoreOptions.pipeline): how many; the stages then count waits. */
  chunks?: number;
  /**
   * Set when the PNG outputs were compressed in stripes on the face workers: how many, and how many before the
   * paste.
   */
  png_stripes?: { total: number; early: number };
  /** The provider asked for (auto or a name), the one chosen, and the providers ONNX Runtime placed nodes on. */
  provider: { asked: ProviderChoice; chosen: Provider; ran: string[] | null };
  /** What was asked and what ran: route, binding, precision, CUDA option set, batch, detector, skipped providers. */
  route: RouteChoice;
  model: { file: string | null; sha256: string | null; size: number; synthetic: boolean };
  warnings: string[];
  /** A failed image: its coded error, and the option it is about by its key (as `details.option` of GpenLabError). */
  error?: { code: ErrorCode; message: string; fix: string; option?: string };
}

/**
 * What a Restorer shows its users and the pipeline updates on it: the model, route and label (a deferred session's
 * plan replaces them), whether the paste and encoder warmed up, and the notes every result carries.
 */
export interface RestorerState {
  info: ModelInfo;
  choice: RouteChoice;
  label: string;
  finishWarmed: boolean;
  readonly notes: string[];
}

/** Where one input's outputs go: the folder and NAME (NAME_GPEN.ext there), chosen by the caller. */
export interface OutputTarget {
  outDir: string;
  name: string;
}

/** One image between its alignment and its outputs. */
export interface Pending {
  file: string;
  /** Its outputs' NAME (io/output-names.ts: unique among the inputs of one call). */
  name?: string;
  /** Its outputs' folder where the call named one per file (the queue's jobs); else the options' outDir. */
  outDir?: string;
  img: DecodedImage;
  faces: DetectedFace[];
  transforms: Affine[];
  /** Aligned crops, planar [-1, 1], one after another. */
  crops: Float32Array;
  restored: Float32Array;
  done: number;
  result: RestoreResult;
  /** A pipelined image: its chunks of faces [from, to), each with its alignment (already asked of the face workers). */
  chunks?: { from: number; to: number; aligned: Promise<void> }[];
  /** The photo's pixels in shared memory, when the face workers read them; its alpha plane there (made when needed). */
  shared?: Uint8Array;
  sharedAlpha?: Uint8Array;
}
