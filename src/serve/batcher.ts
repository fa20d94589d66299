// Dynamic batching across requests: faces from concurrent requests wait at most `maxWaitMs` to share one inference of
// at most `maxBatch` faces on the one session; one inference runs at a time; each request gets its own faces back, in
// order. A request with more faces than a batch is split across batches.

export interface BatcherOptions {
  maxBatch: number;
  maxWaitMs: number;
  /** Floats per face (3 x S x S). */
  perFace: number;
  run: (x: Float32Array, n: number) => Promise<Float32Array>;
  onBatch?: (faces: number, requests: number, ms: number) => void;
}

interface Entry {
  crops: Float32Array;
  n: number;
  taken: number;
  done: number;
  out: Float32Array;
  arrived: number;
  resolve: (x: Float32Array) => void;
  reject: (e: unknown) => void;
}

export class FaceBatcher {
  private readonly queue: Entry[] = [];
  private queuedFaces = 0;
  private looping = false;
  private wake: (() => void) | null = null;
  /** Faces waiting for a batch (a gauge for /metrics). */
  get waitingFaces(): number {
    return this.queuedFaces;
  }

  constructor(private readonly o: BatcherOptions) {}

  infer(crops: Float32Array, n: number): Promise<Float32Array> {
    return new Promise((resolve, reject) => {
      this.queue.push({
        crops,
        n,
        taken: 0,
        done: 0,
        out: new Float32Array(n * this.o.perFace),
        arrived: Date.now(),
        resolve,
        reject,
      });
      this.queuedFaces += n;
      if (this.queuedFaces >= this.o.maxBatch) this.wake?.();
      if (!this.looping) void this.loop();
    });
  }

  private async loop(): Promise<void> {
    this.looping = true;
    try {
      while (this.queue.length > 0) {
        const wait = this.o.maxWaitMs - (Date.now() - this.queue[0].arrived);
        if (this.queuedFaces < this.o.maxBatch && wait > 0) {
          await new Promise<void>((r) => {
            const t = setTimeout(r, wait);
            this.wake = () => {
              clearTimeout(t);
              r();
            };
          });
          this.wake = null;
        }
        await this.runOne();
      }
    } finally {
      this.looping = false;
    }
  }

  private async runOne(): Promise<void> {
    const per = this.o.perFace;
    const parts: { e: Entry; from: number; count: number }[] = [];
    let n = 0;
    for (const e of this.queue) {
      if (n >= this.o.maxBatch) break;
      const count = Math.min(e.n - e.taken, this.o.maxBatch - n);
      if (count <= 0) continue;
      parts.push({ e, from: e.taken, count });
      e.taken += count;
      n += count;
    }
    if (n === 0) return;
    this.queuedFaces -= n;
    const x =
      parts.length === 1 && parts[0].from === 0 && parts[0].count === parts[0].e.n
        ? parts[0].e.crops
        : new Float32Array(n * per);
    if (x !== parts[0].e.crops) {
      let at = 0;
      for (const p of parts) {
        x.set(p.e.crops.subarray(p.from * per, (p.from + p.count) * per), at * per);
        at += p.count;
      }
    }
    const t0 = Date.now();
    let y: Float32Array;
    try {
      y = await this.o.run(x, n);
    } catch (e) {
      for (const p of parts) this.fail(p.e, e);
      return;
    }
    this.o.onBatch?.(n, new Set(parts.map((p) => p.e)).size, Date.now() - t0);
    let at = 0;
    for (const p of parts) {
      p.e.out.set(y.subarray(at * per, (at + p.count) * per), p.from * per);
      at += p.count;
      p.e.done += p.count;
      if (p.e.done === p.e.n) {
        this.remove(p.e);
        p.e.resolve(p.e.out);
      }
    }
  }

  private fail(e: Entry, err: unknown): void {
    this.queuedFaces -= e.n - e.taken;
    e.taken = e.n;
    this.remove(e);
    e.reject(err);
  }

  private remove(e: Entry): void {
    const i = this.queue.indexOf(e);
    if (i >= 0) this.queue.splice(i, 1);
  }
}
