// MediaPipe BlazeFace (keijiro's ONNX conversions of the back-camera 256 and front-camera 128 models) as a detector
// for photos. Proposals: the 256 model tiled over an image pyramid (faces from ~20 px up) and the 128 model on the
// whole frame (one big face), merged by MediaPipe's weighted NMS. Each proposal is then looked at again, centred, by
// the 256 model with the face at a quarter of its frame and by the 128 model at two framings (with the head and with
// the shoulders); the score is the mean of the four looks, which is what removes the face-like textures (hands on
// knees, hair, bokeh) that a few hundred tile runs turn up.
import type { RgbImage } from '../io/image.js';
import { GpenLabError, badArgument } from '../errors.js';
import { DEFAULT_BUILD, type RuntimeBuild } from '../runtime/builds.js';
import type { Provider } from '../runtime/providers.js';
import { ModelSession } from '../runtime/session.js';
import type { DetectorSession } from './blazeface-capi.js';
import type { Candidate } from './blazeface-decode.js';
import { BACK, FRONT, NMS_IOU, blend, decode, iou, weightedNms } from './blazeface-decode.js';
import { BACK_FILE, FRONT_FILE, detectorModel } from './blazeface-model.js';
import type { Levels } from './blazeface-runs.js';
import { detectorRuns } from './blazeface-runs.js';
import { pyramid, pyramidTiles } from './blazeface-tiles.js';
import type { FaceWorkers } from './face-workers.js';
import { sharedBytes } from './face-workers.js';
import type { DetectedFace, FaceDetector, Pt } from './types.js';

export type { Candidate } from './blazeface-decode.js';
export { iou, weightedNms } from './blazeface-decode.js';
export { tilePositions } from './blazeface-tiles.js';

export interface BlazeFaceOptions {
  provider?: Provider;
  /** Lowest final score kept, the mean of the four looks (default 0.6). */
  minScore?: number;
  /**
   * Most 256 tiles run on one image (default 300, about 6 ms each on a 2-core CPU). The pyramid starts at the photo's
   * own scale when its tiles fit the budget, else at the first halved level that does: the smallest faces of very
   * large photos (12 MP: under ~40 px) are then missed.
   */
  maxTiles?: number;
  /** Tiles and second looks per model run (default 16; 1 runs them one by one, as the graphs were exported). */
  batch?: number;
  /**
   * Worker threads that fill the model inputs (tiles and crops) of a run when it has 8 or more (the Restorer passes
   * its face workers): the same values, written on several cores. Called at each detection; null: this thread.
   */
  inputWorkers?: () => FaceWorkers | null;
  /**
   * Pad every run to the full batch (zeros, outputs ignored), so the model sees one input shape: default on any
   * provider but the CPU, where cuDNN otherwise searches algorithms again for each remainder's shape.
   */
  padBatch?: boolean;
  /**
   * Run the detection's independent model runs side by side: the tiles beside the whole-photo look, and every
   * second look at once on every proposal (the same faces; the looks' pruning then selects from their answers).
   * Default on any provider but the CPU.
   */
  concurrent?: boolean;
  /**
   * Run the two models through ONNX Runtime's C API, the route the pipeline takes with --cuda-options: on CUDA each
   * model is one captured CUDA graph at the padded batch (blazeface-capi.ts). Default false (the stock binding).
   */
  capi?: boolean;
  /** With capi on CUDA: provider options over the detector's own (CUDA graphs, HEURISTIC search, prefer_nhwc=1). */
  cudaOptions?: Record<string, string>;
  /**
   * The runtime build (runtime/builds.ts; default onnxruntime-node's): another runs through its C API (capi on), as
   * the process's GPEN session does.
   */
  runtime?: RuntimeBuild;
}

/** The front model's whole-frame pass is there for big faces: it proposes faces of at least this share of the frame. */
const FRONT_MIN_FACE = 0.3;
/** Proposals scoring below this are not looked at again (lowered with minScore): faces near 20 px score 0.4-0.5. */
const PROPOSAL_SCORE = 0.4;
/** The second looks: model, input side, and the face's width in the crop; the cheap 128 ones first. */
const LOOKS = [
  ['front', 128, 40],
  ['front', 128, 25],
  ['back', 256, 64],
] as const;
/** Smallest face reported, in image pixels; the share of its box that must lie inside the image; the widest w:h. */
const MIN_FACE_PX = 8;
const MIN_INSIDE = 0.5;
const MAX_ASPECT = 2;

function checkImage(img: RgbImage): void {
  const { width: w, height: h, data } = img ?? {};
  if (!Number.isInteger(w) || w < 1) throw badArgument('image width', 'a positive integer', w);
  if (!Number.isInteger(h) || h < 1) throw badArgument('image height', 'a positive integer', h);
  if (!(data instanceof Uint8Array) || data.length !== w * h * 3) {
    throw badArgument(
      'image data',
      `a Uint8Array of ${w * h * 3} bytes (width x height x 3, interleaved RGB)`,
      data instanceof Uint8Array ? `${data.length} bytes` : data,
    );
  }
}

/** The merged detection as the public shape: box clipped to the image, or null when implausible. */
function toFace(c: Candidate, img: RgbImage): DetectedFace | null {
  if (Math.min(c.w, c.h) < MIN_FACE_PX || c.w > MAX_ASPECT * c.h || c.h > MAX_ASPECT * c.w) return null;
  const x1 = Math.max(0, c.cx - c.w / 2),
    y1 = Math.max(0, c.cy - c.h / 2);
  const x2 = Math.min(img.width, c.cx + c.w / 2),
    y2 = Math.min(img.height, c.cy + c.h / 2);
  if (x2 <= x1 || y2 <= y1 || ((x2 - x1) * (y2 - y1)) / (c.w * c.h) < MIN_INSIDE) return null;
  const raw: Pt[] = [];
  for (let k = 0; k < 6; k++) raw.push([c.kp[2 * k], c.kp[2 * k + 1]]);
  // The model's order: the subject's right eye, left eye, nose tip, mouth centre, right ear, left ear. The subject's
  // right eye is the one on the image's left (checked on the FFHQ portraits), so the names as seen follow the order.
  const landmarks = { left_eye: raw[0], right_eye: raw[1], nose: raw[2], mouth: raw[3] };
  return { box: [x1, y1, x2, y2], score: c.score, landmarks, raw };
}

/**
 * BlazeFace for photos: faces at any scale from about 20 px (the smallest grow for photos beyond `maxTiles`), each with
 * a box, a score in [0, 1] and the model's six points. Faces come sorted by score, highest first.
 */
export async function createBlazeFace(opts: BlazeFaceOptions = {}): Promise<FaceDetector> {
  const provider = opts.provider ?? 'cpu';
  const minScore = opts.minScore ?? 0.6;
  if (typeof minScore !== 'number' || !(minScore > 0 && minScore < 1)) {
    throw badArgument('minScore', 'a number between 0 and 1 (exclusive)', minScore);
  }
  const maxTiles = opts.maxTiles ?? 300;
  if (!Number.isInteger(maxTiles) || maxTiles < 1) throw badArgument('maxTiles', 'a positive integer', maxTiles);
  const batch = opts.batch ?? 16;
  if (!Number.isInteger(batch) || batch < 1 || batch > 256) {
    throw badArgument('batch', 'an integer between 1 and 256', batch);
  }
  const proposalScore = Math.min(PROPOSAL_SCORE, minScore);
  const fixedShape = opts.padBatch ?? provider !== 'cpu';
  const runtime = opts.runtime ?? DEFAULT_BUILD;
  const capi = opts.capi === true || runtime !== DEFAULT_BUILD;
  if (capi && !(provider === 'cpu' || (provider === 'cuda' && fixedShape))) {
    throw badArgument(
      opts.capi ? 'capi' : 'runtime',
      'the C API route on the CPU, or on CUDA with padded runs (padBatch)',
      `${provider}${fixedShape ? '' : ' without padBatch'}`,
    );
  }
  // the graphs rewritten for a dynamic batch (blazeface-graph.ts): tiles and second looks run `batch` at a time
  const open = async (file: string): Promise<DetectorSession> => {
    const label = `BlazeFace ${file}`;
    if (!capi) {
      const model = await detectorModel(file);
      return ModelSession.create(model, { provider, recordPlacement: false, allowSpinning: false, label });
    }
    const { capiDetectorSession } = await import('./blazeface-capi.js');
    return capiDetectorSession(await detectorModel(file), {
      provider: provider as 'cpu' | 'cuda',
      batch,
      label,
      runtime,
      ...(opts.cudaOptions ? { cudaOptions: opts.cudaOptions } : {}),
    });
  };
  const back = await open(BACK_FILE);
  let front: DetectorSession;
  try {
    front = await open(FRONT_FILE);
  } catch (e) {
    await back.release();
    throw e;
  }
  let released = false;
  // runs side by side (the tiles beside the whole-photo look, the three looks at once): default off the CPU, where a
  // run costs per input and the looks' pruning saves work
  const concurrent = opts.concurrent ?? provider !== 'cpu';
  const { runBatched, look, againAll } = detectorRuns({
    batch,
    fixedShape,
    inputWorkers: () => opts.inputWorkers?.() ?? null,
  });

  async function detect(img: RgbImage): Promise<DetectedFace[]> {
    if (released) {
      throw new GpenLabError(
        'E_ARGUMENT',
        'This BlazeFace detector was released',
        'Create a new detector with createBlazeFace().',
      );
    }
    checkImage(img);
    const levels = pyramid(img);
    // the pyramid in shared memory, made once and only if the face workers fill inputs
    let sharedLevels: RgbImage[] | null = null;
    const shared = () =>
      (sharedLevels ??= levels.map((l) => ({ width: l.width, height: l.height, data: sharedBytes(l.data) })));
    const lv: Levels = { plain: levels, shared };
    const cands: Candidate[] = [];
    const tiles = pyramidTiles(levels, maxTiles);
    // The whole photo letterboxed (black) into the front model's frame; on a GPU beside the tiles (another session).
    const side = Math.max(img.width, img.height);
    const wholeLook = () =>
      look(front, FRONT, lv, img.width / 2, img.height / 2, side, { minW: FRONT * FRONT_MIN_FACE }, proposalScore);
    const whole = concurrent ? wholeLook() : null;
    whole?.catch(() => undefined);
    await runBatched(
      back,
      BACK,
      tiles.length,
      lv,
      (k) => ({ kind: 'window', level: tiles[k].L, x: tiles[k].x, y: tiles[k].y }),
      (k, outputs) => decode(outputs, tiles[k].frame, proposalScore, cands),
    );
    cands.push(...(await (whole ?? wholeLook())));

    // Each look in turn, for every proposal that can still reach minScore (batched across proposals). A look's input
    // is the proposal itself, whatever the looks before it saw: on a GPU, where a run costs the same for 2 inputs as
    // for 16, every look runs at once on every proposal and the same selection is made from their answers.
    const looks = LOOKS.length + 1;
    const props = weightedNms(cands).map((p, at) => ({ views: [p], sum: p.score, at }));
    const lookAll = (k: number, ps: Candidate[]) => {
      const [model, size, face] = LOOKS[k];
      return againAll(model === 'back' ? back : front, size, face, lv, ps);
    };
    const upfront = concurrent
      ? await Promise.all(
          LOOKS.map((_, k) =>
            lookAll(
              k,
              props.map((s) => s.views[0]),
            ),
          ),
        )
      : null;
    for (let k = 0; k < LOOKS.length; k++) {
      const active = props.filter((s) => s.sum + (LOOKS.length - k) >= minScore * looks);
      const vs = upfront
        ? active.map((s) => upfront[k][s.at])
        : await lookAll(
            k,
            active.map((s) => s.views[0]),
          );
      active.forEach((s, i) => {
        const v = vs[i];
        if (!v) return;
        s.views.push(v);
        s.sum += v.score;
      });
    }
    const seen = props.filter((s) => s.sum >= minScore * looks).map((s) => blend(s.views, s.sum / looks));
    // Second looks move boxes a little: two proposals may now be one face.
    const faces: DetectedFace[] = [];
    const kept: Candidate[] = [];
    for (const c of seen.sort((a, b) => b.score - a.score)) {
      if (kept.some((k) => iou(k, c) > NMS_IOU)) continue;
      const face = toFace(c, img);
      if (!face) continue;
      kept.push(c);
      faces.push(face);
    }
    return faces;
  }

  return {
    name: 'blazeface',
    detect,
    async release(): Promise<void> {
      if (released) return;
      released = true;
      await Promise.all([back.release(), front.release()]);
    },
  };
}
