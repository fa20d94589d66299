// A session created through ONNX Runtime's C API (api.ts, options.ts): its runs (synchronous, or on libuv's worker
// threads through koffi's async calls), tensors bound on the GPU, its arena's statistics and its profile.
import koffi from '../koffi.js';
import { GpenLabError } from '../../errors.js';
import { FLOAT, UINT8, check, envLoaded, loadCudaProvider, ortEnv, type Api } from './api.js';
import { bindIo, type DeviceBinding, type DeviceIo, type IoTensors, type MappedFile } from './device-io.js';
import { sessionOptions, type CapiOptions } from './options.js';

type Names = { input: string; output: string };
const DEFAULT_NAMES: Names = { input: 'input', output: 'output' };

/** A session created through the C API; run() is synchronous and writes the first output into a new array. */
export class CapiSession {
  private released = false;
  private readonly bindings = new Set<DeviceIo>();
  private mapped: MappedFile | null = null;
  private constructor(
    private readonly a: Api,
    private readonly session: unknown,
    private readonly info: unknown,
    readonly runtimeVersion: string,
    readonly cudaOptions: Record<string, string> | null,
  ) {}

  static create(model: string | Uint8Array, o: CapiOptions): CapiSession {
    const { a, opts, cudaAsked } = sessionOptions(o);
    const env = ortEnv();
    const out: unknown[] = [null];
    try {
      if (typeof model === 'string') check(a, a.fns.CreateSession(env, model, opts, out), 'CreateSession');
      else check(a, a.fns.CreateSessionFromArray(env, model, model.byteLength, opts, out), 'CreateSessionFromArray');
    } finally {
      a.fns.ReleaseSessionOptions(opts);
    }
    return CapiSession.wrap(a, out[0], cudaAsked);
  }

  /**
   * The same, with CreateSession on a worker thread (koffi's async call): the JavaScript thread goes on meanwhile,
   * e.g. decoding and detecting the first image of a cold start while CUDA and the model load.
   */
  static async createAsync(model: string | Uint8Array | MappedFile, o: CapiOptions): Promise<CapiSession> {
    if (o.provider === 'cuda') await loadCudaProvider(envLoaded(o.runtime));
    const { a, opts, cudaAsked } = sessionOptions(o);
    const env = ortEnv();
    const out: unknown[] = [null];
    try {
      const status = await new Promise<unknown>((resolve, reject) => {
        const done = (err: unknown, res: unknown) => (err ? reject(err) : resolve(res));
        if (typeof model === 'string') {
          a.fns.CreateSession.async(env, model, opts, out, done);
        } else if (model instanceof Uint8Array) {
          a.fns.CreateSessionFromArray.async(env, model, model.byteLength, opts, out, done);
        } else {
          a.fns.CreateSessionFromArray.async(env, model.ptr, model.length, opts, out, done);
        }
      });
      check(a, status, typeof model === 'string' ? 'CreateSession' : 'CreateSessionFromArray');
    } finally {
      a.fns.ReleaseSessionOptions(opts);
    }
    const s = CapiSession.wrap(a, out[0], cudaAsked);
    // a mapped model stays mapped while the session may read it (released with the session)
    if (!(typeof model === 'string' || model instanceof Uint8Array)) s.mapped = model;
    return s;
  }

  private static wrap(a: Api, session: unknown, cudaAsked: Record<string, string> | null): CapiSession {
    const out: unknown[] = [null];
    check(a, a.fns.CreateCpuMemoryInfo(1, 0, out), 'CreateCpuMemoryInfo');
    return new CapiSession(a, session, out[0], a.version, cudaAsked);
  }

  private live(): void {
    if (this.released) throw new GpenLabError('E_ARGUMENT', 'This C API session was released', 'Create a new one.');
  }

  /** A float32 (or, for bytes, uint8) tensor over `x`, which ONNX Runtime reads in place; release with ReleaseValue. */
  private inputTensor(x: Float32Array | Uint8Array, dims: number[]): unknown {
    const val: unknown[] = [null];
    const shape = BigInt64Array.from(dims.map(BigInt));
    const type = x instanceof Uint8Array ? UINT8 : FLOAT;
    check(
      this.a,
      this.a.fns.CreateTensorWithDataAsOrtValue(this.info, x, x.byteLength, shape, dims.length, type, val),
      'CreateTensorWithDataAsOrtValue',
    );
    return val[0];
  }

  /** Runs one input and returns several float outputs (`length` elements each), copied out: a detector's run. */
  runMulti(
    input: { name: string; x: Float32Array | Uint8Array; dims: number[] },
    outputs: { name: string; length: number }[],
  ): Float32Array[] {
    this.live();
    const a = this.a;
    const val = this.inputTensor(input.x, input.dims);
    const values: unknown[] = outputs.map(() => null);
    try {
      const names = outputs.map((o) => o.name);
      check(a, a.fns.Run(this.session, null, [input.name], [val], 1, names, outputs.length, values), 'Run');
      return outputs.map((o, j) => this.readOutput(values[j], o.length));
    } finally {
      a.fns.ReleaseValue(val);
      for (const v of values) if (v) a.fns.ReleaseValue(v);
    }
  }

  /**
   * Runs input `input` (float32, dims; the tensor reads `x` in place) and returns output `output` (`outLength`
   * elements), copied into `into` when given.
   */
  run(
    x: Float32Array,
    dims: number[],
    outLength: number,
    names: Names = DEFAULT_NAMES,
    into?: Float32Array,
  ): Float32Array {
    this.live();
    const a = this.a;
    const val = [this.inputTensor(x, dims)];
    const outputs: unknown[] = [null];
    try {
      check(a, a.fns.Run(this.session, null, [names.input], [val[0]], 1, [names.output], 1, outputs), 'Run');
      return this.readOutput(outputs[0], outLength, into);
    } finally {
      a.fns.ReleaseValue(val[0]);
      if (outputs[0]) a.fns.ReleaseValue(outputs[0]);
    }
  }

  /**
   * Runs once on a worker thread (koffi's async call) and discards the output: the primer's run (primer.ts). Real runs
   * stay on the JavaScript thread: ONNX Runtime keeps CUDA graphs and cuDNN/cuBLAS handles per calling thread.
   */
  async runOnceAsync(input: { name: string; x: Float32Array; dims: number[] } | null, output: string): Promise<void> {
    this.live();
    const a = this.a;
    const val = [input ? this.inputTensor(input.x, input.dims) : null];
    const outputs: unknown[] = [null];
    try {
      await this.runOnWorker(input ? [input.name] : [], val[0] ? [val[0]] : [], output, outputs);
    } finally {
      if (val[0]) a.fns.ReleaseValue(val[0]);
      if (outputs[0]) a.fns.ReleaseValue(outputs[0]);
    }
  }

  /**
   * run() on a worker thread: the JavaScript thread is free meanwhile. For a cold start's first run, which waits on
   * first-use work on the GPU (later runs on the JavaScript thread set up their own per-thread handles once).
   */
  async runAsync(
    x: Float32Array,
    dims: number[],
    outLength: number,
    names: Names = DEFAULT_NAMES,
    into?: Float32Array,
  ): Promise<Float32Array> {
    this.live();
    const a = this.a;
    const val = this.inputTensor(x, dims);
    const outputs: unknown[] = [null];
    try {
      await this.runOnWorker([names.input], [val], names.output, outputs);
      return this.readOutput(outputs[0], outLength, into);
    } finally {
      a.fns.ReleaseValue(val);
      if (outputs[0]) a.fns.ReleaseValue(outputs[0]);
    }
  }

  /** A float output's `length` values copied out of ONNX Runtime's tensor, into `into` when given. */
  private readOutput(value: unknown, length: number, into?: Float32Array): Float32Array {
    const data: unknown[] = [null];
    check(this.a, this.a.fns.GetTensorMutableData(value, data), 'GetTensorMutableData');
    const view = new Float32Array(koffi.view(data[0], length * 4));
    if (!into) return view.slice();
    into.set(view);
    return into;
  }

  private async runOnWorker(inNames: string[], inValues: unknown[], output: string, outputs: unknown[]): Promise<void> {
    const a = this.a;
    const status = await new Promise<unknown>((resolve, reject) => {
      const done = (err: unknown, res: unknown) => (err ? reject(err) : resolve(res));
      a.fns.Run.async(this.session, null, inNames, inValues, inNames.length, [output], 1, outputs, done);
    });
    check(a, status, 'Run');
  }

  /**
   * Input and output of shape `dims` allocated by the session's CUDA allocator and bound by name (IO binding): the
   * route to CUDA graphs, which replay the same addresses. `graphId` tags the run for ONNX Runtime's per-shape
   * graph capture (run config gpu_graph_id) when the session was created with enable_cuda_graph=1.
   */
  bindDevice(dims: number[], names: Names = DEFAULT_NAMES, graphId?: number): DeviceBinding {
    const inputs = [{ name: names.input, dims, type: 'float32' as const }];
    const io = this.bindDeviceIo(inputs, [{ name: names.output, dims }], graphId);
    return {
      dims,
      elements: dims.reduce((x, y) => x * y, 1),
      upload: (x) => io.upload(0, x),
      download: (into) => io.download(0, into),
      run: () => io.run(),
      release: () => io.release(),
    };
  }

  /** bindDevice for several inputs (float32 or uint8) and float32 outputs, each bound by name at its shape. */
  bindDeviceIo(inputs: IoTensors['inputs'], outputs: IoTensors['outputs'], graphId?: number): DeviceIo {
    this.live();
    const io = bindIo(this.a, this.session, Number(this.cudaOptions?.device_id ?? 0), { inputs, outputs }, graphId, {
      live: () => this.live(),
      dropped: (b) => this.bindings.delete(b),
    });
    this.bindings.add(io);
    return io;
  }

  /**
   * Why allocatorStats() answers null in this process: the runtime build's C API lacks AllocatorGetStats (and the
   * key-value pairs it answers with); null where it has them.
   */
  get allocatorStatsOmitted(): string | null {
    const lacks = (['AllocatorGetStats', 'GetKeyValuePairs', 'ReleaseKeyValuePairs'] as const).filter(
      (n) => !this.a.fns[n],
    );
    if (lacks.length === 0) return null;
    return `not in ONNX Runtime ${this.a.version}'s C API (version ${this.a.apiVersion} lacks ${lacks.join(', ')})`;
  }

  /**
   * The statistics of the session's arena on `device` (AllocatorGetStats: InUse, MaxInUse, TotalAllocated, NumAllocs,
   * NumReserves, ... in bytes and counts): MaxInUse is the allocator's peak, what torch's max_memory_allocated counts.
   * Null on a build whose C API lacks them (allocatorStatsOmitted says why).
   */
  allocatorStats(device: 'cpu' | 'cuda'): Record<string, number> | null {
    this.live();
    const a = this.a;
    const { AllocatorGetStats: getStats, GetKeyValuePairs: getPairs, ReleaseKeyValuePairs: releasePairs } = a.fns;
    if (!getStats || !getPairs || !releasePairs) return null;
    const out: unknown[] = [null];
    const deviceId = Number(this.cudaOptions?.device_id ?? 0);
    check(a, a.fns.CreateMemoryInfo(device === 'cuda' ? 'Cuda' : 'Cpu', 1, deviceId, 0, out), 'CreateMemoryInfo');
    const info = out[0];
    try {
      check(a, a.fns.CreateAllocator(this.session, info, out), `CreateAllocator(${device})`);
      const allocator = out[0];
      try {
        check(a, getStats(allocator, out), 'AllocatorGetStats');
        const kvps = out[0];
        try {
          const keys: unknown[] = [null];
          const values: unknown[] = [null];
          const n: number[] = [0];
          getPairs(kvps, keys, values, n);
          const k = koffi.decode(keys[0], koffi.array('const char *', n[0])) as string[];
          const v = koffi.decode(values[0], koffi.array('const char *', n[0])) as string[];
          return Object.fromEntries(k.map((key, i) => [key, Number(v[i])]));
        } finally {
          releasePairs(kvps);
        }
      } finally {
        a.fns.ReleaseAllocator(allocator);
      }
    } finally {
      a.fns.ReleaseMemoryInfo(info);
    }
  }

  /** Ends profiling (the session was created with profilePrefix) and returns the profile's file name. */
  endProfiling(): string {
    const { allocator, out } = this.profilingAllocator();
    check(this.a, this.a.fns.SessionEndProfiling(this.session, allocator, out), 'SessionEndProfiling');
    return this.profileName(allocator, out[0]);
  }

  /** endProfiling on one of libuv's worker threads (ONNX Runtime writes the profile there). */
  async endProfilingAsync(): Promise<string> {
    const { allocator, out } = this.profilingAllocator();
    const status = await new Promise<unknown>((resolve, reject) => {
      const done = (err: unknown, res: unknown) => (err ? reject(err) : resolve(res));
      this.a.fns.SessionEndProfiling.async(this.session, allocator, out, done);
    });
    check(this.a, status, 'SessionEndProfiling');
    return this.profileName(allocator, out[0]);
  }

  /** The allocator SessionEndProfiling writes the profile's name with, and the slot it writes it to. */
  private profilingAllocator(): { allocator: unknown; out: unknown[] } {
    this.live();
    const out: unknown[] = [null];
    check(this.a, this.a.fns.GetAllocatorWithDefaultOptions(out), 'GetAllocatorWithDefaultOptions');
    return { allocator: out[0], out };
  }

  /** The profile's name as a string, its C string given back to `allocator`. */
  private profileName(allocator: unknown, name: unknown): string {
    const s = koffi.decode(name, 'char', -1) as string;
    check(this.a, this.a.fns.AllocatorFree(allocator, name), 'AllocatorFree');
    return s;
  }

  release(): void {
    if (!this.detach()) return;
    this.a.fns.ReleaseSession(this.session);
    this.afterSession();
  }

  /**
   * release() with ReleaseSession on one of libuv's worker threads: a CUDA session's release (its memory freed, its
   * streams ended) would hold the JavaScript thread, the primer's in a cold start just before the face's run ends.
   */
  async releaseAsync(): Promise<void> {
    if (!this.detach()) return;
    await new Promise<void>((resolve) => this.a.fns.ReleaseSession.async(this.session, () => resolve()));
    this.afterSession();
  }

  /** Marks the session released and releases its bindings; false when it was released already. */
  private detach(): boolean {
    if (this.released) return false;
    for (const b of [...this.bindings]) b.release();
    this.released = true;
    return true;
  }

  /** What outlives the session: its memory info and the mapped model it read from. */
  private afterSession(): void {
    this.a.fns.ReleaseMemoryInfo(this.info);
    this.mapped?.unmap();
  }
}
