// BlazeFace's two models through ONNX Runtime's C API (src/runtime/capi.ts), the route the pipeline takes with
// --cuda-options: on CUDA each model runs as one captured CUDA graph at the detector's padded batch (its byte input
// and four outputs bound on the GPU), on the CPU as a plain run (what the tests check against the stock binding).
import { GpenLabError } from '../errors.js';
import { DEFAULT_BUILD, buildSpec, type RuntimeBuild } from '../runtime/builds.js';
import type { DeviceIo } from '../runtime/capi/device-io.js';
import { CapiSession } from '../runtime/capi/session.js';
import { HostPins } from '../runtime/cuda/host-pins.js';

/** The graphs' input, and their outputs with [anchors, values] per image: scores and boxes of the 16x16 and 8x8 layers. */
const INPUT = 'input:0';
const OUTPUTS = [
  ['Identity:0', 512, 1],
  ['Identity_1:0', 384, 1],
  ['Identity_2:0', 512, 16],
  ['Identity_3:0', 384, 16],
] as const;

/** What the detector asks of a model session: one byte input in, every output out. */
export interface DetectorSession {
  runAll(data: Uint8Array, dims: number[]): Promise<{ outputs: Record<string, { data: Float32Array }> }>;
  /** Whether runAll may be given shared memory (the face workers' staging buffers) as its input (as GpenRunner's). */
  readsSharedMemory?: boolean;
  /** Gives a run's outputs back once read, for a later run to fill (the sessions that keep them). */
  recycle?(outputs: Record<string, { data: Float32Array }>): void;
  release(): Promise<void>;
}

/**
 * A detector model through the C API. On CUDA its runs must all have `batch` inputs (the detector pads them): the
 * graph (NHWC) is captured once at that shape and replayed; the runs are synchronous, on the calling thread (ONNX Runtime
 * keeps CUDA graphs per thread), a millisecond or two each.
 */
export async function capiDetectorSession(
  model: Uint8Array,
  o: {
    provider: 'cpu' | 'cuda';
    batch: number;
    label: string;
    cudaOptions?: Record<string, string>;
    /** The process's runtime build (its library's C API). */
    runtime?: RuntimeBuild;
  },
): Promise<DetectorSession> {
  // NHWC (prefer_nhwc=1): cuDNN's kernels for these depthwise-separable convolutions are NHWC; without it each
  // convolution is wrapped in layout conversions (measured on an H200, runs of 16: the front model twice as fast, the
  // back one ~20% faster; EXHAUSTIVE search gave nothing more than HEURISTIC)
  const cuda =
    o.provider === 'cuda'
      ? {
          enable_cuda_graph: '1',
          cudnn_conv_algo_search: 'HEURISTIC',
          ...(buildSpec(o.runtime ?? DEFAULT_BUILD).nhwc ? { prefer_nhwc: '1' } : {}),
          ...o.cudaOptions,
        }
      : null;
  const s = await CapiSession.createAsync(model, {
    provider: o.provider,
    ...(cuda ? { cuda } : {}),
    ...(o.runtime ? { runtime: o.runtime } : {}),
  });
  let io: DeviceIo | null = null;
  let released = false;
  // outputs given back by the detector, filled again by later runs (~1 MB a run of 16: fresh ones cost collections)
  const spare: Record<string, { data: Float32Array }>[] = [];
  // the detector's input buffers are reused: locked in host memory, their uploads run at the bus's speed (through
  // pageable memory the copies took ~10 ms of the Solvay photo's ~14 runs, measured on an H200). Only buffers of
  // 512 KiB or more: smaller ones share pages with other allocations, and a page cannot be registered twice (the
  // outputs, with 1 MiB of scores and boxes in four arrays, failed so)
  const pins = new HostPins(16, 512 << 10);
  // each run's four outputs are views of one buffer (~1 MB at a batch of 16), locked like the inputs: four downloads
  // at the bus's speed instead of through pageable memory (its own pins: a failure there leaves the inputs' locking)
  const outPins = new HostPins(8, 512 << 10);
  const outputSet = (n: number): Record<string, { data: Float32Array }> => {
    const buf = new ArrayBuffer(OUTPUTS.reduce((t, [, anchors, k]) => t + n * anchors * k * 4, 0));
    let at = 0;
    return Object.fromEntries(
      OUTPUTS.map(([name, anchors, k]) => {
        const data = new Float32Array(buf, at, n * anchors * k);
        at += data.byteLength;
        return [name, { data }];
      }),
    );
  };
  return {
    // the C API reads the input's memory in place (a CPU tensor over it, or cudaMemcpy), shared or not
    readsSharedMemory: true,
    async runAll(data, dims) {
      const n = dims[0];
      if (!cuda) {
        const got = s.runMulti(
          { name: INPUT, x: data, dims },
          OUTPUTS.map(([name, anchors, k]) => ({ name, length: n * anchors * k })),
        );
        return { outputs: Object.fromEntries(OUTPUTS.map(([name], j) => [name, { data: got[j] }])) };
      }
      if (n !== o.batch) {
        throw new GpenLabError(
          'E_INFERENCE',
          `${o.label}: a run of ${n} inputs on a CUDA graph captured for ${o.batch}`,
          'Report it: the detector pads every run to its batch on a GPU.',
        );
      }
      io ??= s.bindDeviceIo(
        [{ name: INPUT, dims, type: 'uint8' }],
        OUTPUTS.map(([name, anchors, k]) => ({ name, dims: [n, anchors, k] })),
        0,
      );
      pins.pin(data);
      io.upload(
        0,
        data.subarray(
          0,
          dims.reduce((x, y) => x * y, 1),
        ),
      );
      io.run();
      const into = spare.pop() ?? outputSet(n);
      outPins.pin(into[OUTPUTS[0][0]].data);
      OUTPUTS.forEach(([name], j) => io!.download(j, into[name].data));
      return { outputs: into };
    },
    recycle(outputs) {
      if (cuda && spare.length < 8) spare.push(outputs);
    },
    async release() {
      if (released) return;
      released = true;
      io?.release();
      pins.release();
      outPins.release();
      s.release();
    },
  };
}
