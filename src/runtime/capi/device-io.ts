// What a C API session's runs read and write in place: tensors bound on the GPU (IO binding), and model files mapped
// into memory for ONNX Runtime to read.
import { statSync } from 'node:fs';
import koffi from '../koffi.js';
import { GpenLabError } from '../../errors.js';
import { memcpy } from '../cuda/cudart.js';
import { FLOAT, UINT8, check, type Api } from './api.js';

/** Several named inputs and outputs on the GPU, bound once (a detector's byte input and its four outputs). */
export interface DeviceIo {
  /** Copies `x` to bound input `i` on the GPU. */
  upload(i: number, x: Float32Array | Uint8Array): void;
  /** Copies bound output `j` from the GPU into `into`. */
  download(j: number, into: Float32Array): void;
  /** Runs the session on the bound tensors (synchronous: returns when the GPU is done). */
  run(): void;
  release(): void;
}

/** Input and output tensors that live on the GPU, bound once: runs then move no data unless asked. */
export interface DeviceBinding {
  dims: number[];
  elements: number;
  /** Copies `x` to the bound input on the GPU. */
  upload(x: Float32Array): void;
  /** Copies the bound output from the GPU into `into`. */
  download(into: Float32Array): void;
  /** Runs the session on the bound tensors (synchronous: returns when the GPU is done). */
  run(): void;
  release(): void;
}

export interface IoTensors {
  inputs: { name: string; dims: number[]; type: 'float32' | 'uint8' }[];
  outputs: { name: string; dims: number[] }[];
}

/** What the bound tensors ask of the session that owns them. */
export interface IoOwner {
  /** Throws once the session is released. */
  live(): void;
  /** Called when `io` is released. */
  dropped(io: DeviceIo): void;
}

/**
 * Allocates `tensors` with `session`'s CUDA allocator on `deviceId` and binds them by name; `graphId` tags the
 * runs (run config gpu_graph_id). Whatever was made is released again when a step fails.
 */
export function bindIo(
  a: Api,
  session: unknown,
  deviceId: number,
  tensors: IoTensors,
  graphId: number | undefined,
  owner: IoOwner,
): DeviceIo {
  const { inputs, outputs } = tensors;
  const out: unknown[] = [null];
  const owned: { kind: 'value' | 'binding' | 'runOptions' | 'allocator' | 'info'; p: unknown }[] = [];
  const release = () => {
    for (const o of owned.reverse()) {
      if (o.kind === 'value') a.fns.ReleaseValue(o.p);
      else if (o.kind === 'binding') a.fns.ReleaseIoBinding(o.p);
      else if (o.kind === 'runOptions') a.fns.ReleaseRunOptions(o.p);
      else if (o.kind === 'allocator') a.fns.ReleaseAllocator(o.p);
      else a.fns.ReleaseMemoryInfo(o.p);
    }
    owned.length = 0;
  };
  try {
    // OrtArenaAllocator (1) on the device, OrtMemTypeDefault (0)
    check(a, a.fns.CreateMemoryInfo('Cuda', 1, deviceId, 0, out), 'CreateMemoryInfo(Cuda)');
    owned.push({ kind: 'info', p: out[0] });
    check(a, a.fns.CreateAllocator(session, owned[0].p, out), 'CreateAllocator(Cuda)');
    const allocator = out[0];
    owned.push({ kind: 'allocator', p: allocator });
    /** A tensor on the GPU: its value (owned) and its data pointer. */
    const tensor = (what: string, dims: number[], type: number): { value: unknown; ptr: unknown; bytes: number } => {
      const shape = BigInt64Array.from(dims.map(BigInt));
      const status = a.fns.CreateTensorAsOrtValue(allocator, shape, dims.length, type, out);
      check(a, status, `CreateTensorAsOrtValue(${what})`);
      const value = out[0];
      owned.push({ kind: 'value', p: value });
      check(a, a.fns.GetTensorMutableData(value, out), `GetTensorMutableData(${what})`);
      return { value, ptr: out[0], bytes: dims.reduce((x, y) => x * y, 1) * (type === UINT8 ? 1 : 4) };
    };
    const ins = inputs.map((t) => tensor(`input ${t.name}`, t.dims, t.type === 'uint8' ? UINT8 : FLOAT));
    const outs = outputs.map((t) => tensor(`output ${t.name}`, t.dims, FLOAT));
    check(a, a.fns.CreateIoBinding(session, out), 'CreateIoBinding');
    const binding = out[0];
    owned.push({ kind: 'binding', p: binding });
    inputs.forEach((t, i) => check(a, a.fns.BindInput(binding, t.name, ins[i].value), `BindInput(${t.name})`));
    outputs.forEach((t, j) => check(a, a.fns.BindOutput(binding, t.name, outs[j].value), `BindOutput(${t.name})`));
    check(a, a.fns.CreateRunOptions(out), 'CreateRunOptions');
    const runOptions = out[0];
    owned.push({ kind: 'runOptions', p: runOptions });
    if (graphId !== undefined) {
      check(a, a.fns.AddRunConfigEntry(runOptions, 'gpu_graph_id', String(graphId)), 'AddRunConfigEntry(gpu_graph_id)');
    }
    const io: DeviceIo = {
      upload: (i, x) => memcpy(ins[i].ptr, x, Math.min(x.byteLength, ins[i].bytes), 1),
      download: (j, into) => memcpy(into, outs[j].ptr, Math.min(into.byteLength, outs[j].bytes), 2),
      run: () => {
        owner.live();
        check(a, a.fns.RunWithBinding(session, runOptions, binding), 'RunWithBinding');
      },
      release: () => {
        owner.dropped(io);
        release();
      },
    };
    return io;
  } catch (e) {
    release();
    throw e;
  }
}

/**
 * A file mapped into memory (read-only for its users, private to this process): a model ONNX Runtime reads in place.
 */
export interface MappedFile {
  readonly file: string;
  readonly ptr: unknown;
  readonly length: number;
  unmap(): void;
}

interface LibcMap {
  open: (f: string, flags: number) => number;
  close: (fd: number) => number;
  mmap: (...a: unknown[]) => unknown;
  munmap: (p: unknown, n: number) => number;
}
let libcMap: LibcMap | null = null;

/**
 * Maps `file` with mmap (copy-on-write, so that nothing reaches the file): ONNX Runtime can then take its bytes in
 * place (session.use_ort_model_bytes_directly) where JavaScript memory could move or be collected under it.
 */
export function mapFile(file: string): MappedFile {
  libcMap ??= (() => {
    const l = koffi.load('libc.so.6');
    return {
      open: l.func('int open(const char *file, int flags)') as LibcMap['open'],
      close: l.func('int close(int fd)') as LibcMap['close'],
      mmap: l.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)') as LibcMap['mmap'],
      munmap: l.func('int munmap(void *addr, size_t len)') as LibcMap['munmap'],
    };
  })();
  let length: number;
  try {
    length = statSync(file).size;
  } catch {
    throw new GpenLabError(
      'E_FILE_MISSING',
      `Cannot map ${file}: it does not exist (expected a cached ONNX Runtime model)`,
      'Run again: the cache entry is written anew.',
      { input: file },
    );
  }
  const fd = libcMap.open(file, 0 /* O_RDONLY */);
  if (fd < 0) {
    throw new GpenLabError(
      'E_FILE_UNREADABLE',
      `Cannot open ${file} to map it`,
      'Check that the cache folder is readable.',
      { input: file },
    );
  }
  let ptr: unknown;
  try {
    ptr = libcMap.mmap(null, length, 0x1 | 0x2 /* PROT_READ | PROT_WRITE */, 0x2 /* MAP_PRIVATE */, fd, 0);
  } finally {
    libcMap.close(fd);
  }
  if (!ptr || koffi.address(ptr) === 0xffffffffffffffffn) {
    throw new GpenLabError(
      'E_FILE_UNREADABLE',
      `Cannot map ${file} into memory`,
      'Check the free memory and the cache folder.',
      { input: file },
    );
  }
  let mapped = true;
  const m = libcMap;
  return {
    file,
    ptr,
    length,
    unmap: () => {
      if (mapped) {
        mapped = false;
        m.munmap(ptr, length);
      }
    },
  };
}
