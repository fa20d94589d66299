// Host buffers page-locked for the copies to and from GPU-bound tensors.
import { cudart, type Cudart } from './cudart.js';

/** What HostPins holds locked, and why locking stopped (null while it works). */
export interface PinnedStats {
  buffers: number;
  bytes: number;
  error: string | null;
}

/**
 * Host buffers page-locked in place (cudaHostRegister) for copies to and from the GPU: a copy from pageable memory goes
 * through the driver's staging buffer in pieces, one from locked pages is a single DMA (the Solvay photo's 29 faces
 * are 91 MB each way). The buffers are the pipeline's pooled crops (SharedArrayBuffers the face workers fill), so each
 * is locked once and reused; at most `most` stay locked, the least recently used unlocked first, all on release. An
 * optimisation: a buffer that cannot be locked is copied as before, and the failure is kept in `stats().error`.
 */
export class HostPins {
  private readonly pinned = new Map<ArrayBufferLike, number>();
  private error: string | null = null;
  private fns: Cudart | null = null;
  constructor(
    private readonly most = 4,
    private readonly minBytes = 8 << 20,
  ) {}

  /** Locks the whole buffer under `a` unless it is small, locked already, or locking failed before. */
  pin(a: Float32Array | Uint8Array): void {
    const buf = a.buffer;
    if (buf.byteLength < this.minBytes || this.error) return;
    if (this.pinned.has(buf)) {
      // most recently used last
      this.pinned.delete(buf);
      this.pinned.set(buf, buf.byteLength);
      return;
    }
    try {
      this.fns ??= cudart();
    } catch (e) {
      const why = (e as Error).message;
      this.error = `the CUDA runtime (the build's libcudart) could not be loaded to lock host memory: ${why}`;
      return;
    }
    while (this.pinned.size >= this.most) this.unpin(this.pinned.keys().next().value!);
    const rc = this.fns.hostRegister(new Uint8Array(buf), buf.byteLength, 0);
    if (rc !== 0) {
      // the runtime keeps the failure as its last error, which ONNX Runtime's next kernel check would report as its own
      // ("cudaErrorHostMemoryAlreadyRegistered" failed the next session's first run): cleared here
      this.fns.getLastError();
      this.error =
        `cudaHostRegister of ${buf.byteLength} bytes failed with CUDA error ${rc}: ` +
        'copies go through pageable memory';
      return;
    }
    this.pinned.set(buf, buf.byteLength);
  }

  private unpin(buf: ArrayBufferLike): void {
    this.pinned.delete(buf);
    this.fns?.hostUnregister(new Uint8Array(buf));
  }

  /** What is locked now, and why locking stopped (null while it works). */
  stats(): PinnedStats {
    const bytes = [...this.pinned.values()].reduce((x, y) => x + y, 0);
    return { buffers: this.pinned.size, bytes, error: this.error };
  }

  release(): void {
    for (const buf of [...this.pinned.keys()]) this.unpin(buf);
  }
}
