// Where the 256 model looks for proposals: an image pyramid, each level cut into overlapping tiles, each tile
// answering for the faces whose centre lies in its core and whose size its level keeps.
import type { RgbImage } from '../io/image.js';
import type { Frame } from './blazeface-decode.js';
import { BACK } from './blazeface-decode.js';
import { halve } from './resample.js';

/** Step between tiles: the 128 px overlap holds, whole, any face a level keeps. */
const STRIDE = 128;
/**
 * Faces a level keeps, as box width in that level's pixels: up to the overlap (larger ones go to a coarser level)...
 */
const LEVEL_MAX_FACE = BACK - STRIDE;
/** ...and, above the finest level, from a little under half that (smaller ones were seen, whole, one level finer). */
const LEVEL_MIN_FACE = 48;

/** One tile of the pyramid: its level, its top-left corner in that level's pixels, and how its detections map. */
export interface Tile {
  L: number;
  x: number;
  y: number;
  frame: Frame;
}

/** Positions of the tiles along one axis: evenly spread, the first at 0 and the last flush with the far edge. */
export function tilePositions(length: number, tile = BACK, stride = STRIDE): number[] {
  if (length <= tile) return [Math.round((length - tile) / 2)];
  const n = Math.ceil((length - tile) / stride) + 1;
  return Array.from({ length: n }, (_, i) => Math.round((i * (length - tile)) / (n - 1)));
}

/** The span of centres each tile answers for (tile pixels): halfway to each neighbour's centre, open at the ends. */
function coreSpans(pos: number[], tile = BACK): [number, number][] {
  return pos.map((p, i) => [
    i === 0 ? -Infinity : (pos[i - 1] - p) / 2 + tile / 2,
    i === pos.length - 1 ? Infinity : (pos[i + 1] - p) / 2 + tile / 2,
  ]);
}

/** The pyramid: the photo, then halved until it fits one tile; level L pixel = image pixel / 2^L. */
export function pyramid(img: RgbImage): RgbImage[] {
  const levels = [img];
  for (let top = img; Math.max(top.width, top.height) > BACK;) levels.push((top = halve(top)));
  return levels;
}

const tileCount = (l: RgbImage): number => tilePositions(l.width).length * tilePositions(l.height).length;

/** Every tile of the pyramid from the finest level whose tiles, with every coarser level's, fit `maxTiles`. */
export function pyramidTiles(levels: readonly RgbImage[], maxTiles: number): Tile[] {
  let first = 0;
  while (first < levels.length - 1 && levels.slice(first).reduce((n, l) => n + tileCount(l), 0) > maxTiles) first++;
  const tiles: Tile[] = [];
  for (let L = first; L < levels.length; L++) {
    const level = levels[L];
    const xs = tilePositions(level.width);
    const ys = tilePositions(level.height);
    const xcore = coreSpans(xs);
    const ycore = coreSpans(ys);
    const f = 2 ** L;
    const minW = L === first ? 0 : LEVEL_MIN_FACE;
    const maxW = L === levels.length - 1 ? Infinity : LEVEL_MAX_FACE;
    for (let j = 0; j < ys.length; j++) {
      for (let i = 0; i < xs.length; i++) {
        const frame = { size: BACK, ox: xs[i] * f, oy: ys[j] * f, step: f, xs: xcore[i], ys: ycore[j], minW, maxW };
        tiles.push({ L, x: xs[i], y: ys[j], frame });
      }
    }
  }
  return tiles;
}
