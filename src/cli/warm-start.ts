// Imported first by the CLI: a CUDA restore starts warming CUDA up (src/runtime/cuda-warm.ts) before the other
// modules load, so the context and cuDNN's libraries are ready sooner. Nothing happens for other commands.
import { startCudaWarmup, wantsCudaWarmup } from '../runtime/cuda-warm.js';

if (wantsCudaWarmup(process.argv)) {
  // The warm-up's steps and the C API's CreateSession are long calls on libuv's thread pool (4 threads by default);
  // file reads and sharp queue behind them there (the model stage took 60-80 ms instead of 2-5 ms on the H200).
  // The pool is created at its first use, which is after this line: 8 threads leave room for both.
  if (!process.env.UV_THREADPOOL_SIZE) process.env.UV_THREADPOOL_SIZE = '8';
  void startCudaWarmup();
}
