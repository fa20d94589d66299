// The time each stage of an image takes (RestoreResult.stages_ms), and the crops on their way into a session.
import { performance } from 'node:perf_hooks';
import type { GpenRunner, RunResult } from '../../runtime/session.js';
import type { FloatPool } from '../pool.js';
import type { RestoreResult, StageName } from './types.js';

export const zeroStages = (): Record<StageName, number> => ({
  decode: 0,
  detect: 0,
  align: 0,
  infer: 0,
  paste: 0,
  encode: 0,
  write: 0,
});

/** Adds to a result's stage the time since the previous lap (or since the clock was made or restarted). */
export class StageClock {
  private t: number;

  constructor(private readonly r: RestoreResult) {
    this.t = performance.now();
  }

  lap(k: StageName): void {
    const n = performance.now();
    this.r.stages_ms[k] += n - this.t;
    this.t = n;
  }

  /** The time until now counts in no stage. */
  restart(): void {
    this.t = performance.now();
  }
}

/** A session's input: the crops themselves, or a copy from a pool that `release` gives back. */
export interface SessionInput {
  x: Float32Array;
  copied: boolean;
  release(): void;
}

/**
 * The crops as an inference can read them. onnxruntime-node refuses shared memory ("Invalid argument"), so crops
 * there go through a copy from `pool` unless `readsShared` says the reader takes them as they are.
 */
export function readableCrops(pool: FloatPool, crops: Float32Array, readsShared: boolean): SessionInput {
  if (readsShared || !(crops.buffer instanceof SharedArrayBuffer)) {
    return { x: crops, copied: false, release: () => undefined };
  }
  const x = pool.take(crops.length);
  x.set(crops);
  return { x, copied: true, release: () => pool.give(x) };
}

/** Runs `n` aligned crops (planar, [-1, 1], `size` square) through the session, its output into `into` if given. */
export function runCrops(
  session: GpenRunner,
  x: Float32Array,
  n: number,
  size: number,
  into?: Float32Array,
): Promise<RunResult> {
  return session.run(x, [n, 3, size, size], into);
}
