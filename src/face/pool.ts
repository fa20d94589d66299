// Reused Float32Array storage. Fresh large typed arrays are slow here: every new page is a fault on first touch
// (warping 29 faces into a new 91 MB array takes over four times as long as into a reused one).

export class FloatPool {
  private readonly free: Float32Array[] = [];

  /**
   * @param keep most buffers held while idle
   * @param shared new buffers in shared memory (SharedArrayBuffer), which worker threads read and write in place
   */
  constructor(
    private readonly keep = 8,
    readonly shared = false,
  ) {}

  /** A Float32Array of `length` elements; its contents are whatever was there (callers overwrite or fill). */
  take(length: number): Float32Array {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      if (this.free[i].length >= length && (best < 0 || this.free[i].length < this.free[best].length)) best = i;
    }
    if (best < 0) return this.shared ? new Float32Array(new SharedArrayBuffer(length * 4)) : new Float32Array(length);
    const [buf] = this.free.splice(best, 1);
    return new Float32Array(buf.buffer, 0, length);
  }

  /** Returns an array from take() to the pool (the whole of its buffer). */
  give(a: Float32Array | null | undefined): void {
    if (!a) return;
    this.free.push(new Float32Array(a.buffer));
    if (this.free.length > this.keep) {
      // drop the smallest: the large ones are the expensive ones to fault in again
      let small = 0;
      for (let i = 1; i < this.free.length; i++) if (this.free[i].length < this.free[small].length) small = i;
      this.free.splice(small, 1);
    }
  }

  /** Drops every held buffer. */
  clear(): void {
    this.free.length = 0;
  }
}
