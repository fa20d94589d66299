// Imported first by the CLI: a CUDA restore starts warming CUDA up (src/runtime/cuda-warm.ts) before the other
// modules load, so the context and cuDNN's libraries are ready sooner, and with an ONNX file and --cuda-options its
// session starts too. Nothing happens for other commands.
import { earlySessionArgs, startCudaWarmup, wantsCudaWarmup } from '../runtime/cuda-warm.js';
import { mark } from '../runtime/marks.js';

if (wantsCudaWarmup(process.argv)) {
  // The warm-up's steps and the C API's CreateSession are long calls on libuv's thread pool (4 threads by default);
  // file reads and sharp queue behind them there (the model stage took 60-80 ms instead of 2-5 ms on the H200).
  // The pool is created at its first use, which is after this line: 8 threads leave room for both.
  if (!process.env.UV_THREADPOOL_SIZE) process.env.UV_THREADPOOL_SIZE = '8';
  void startCudaWarmup();
  // with an ONNX file and --cuda-options the session itself starts now, with the configuration restore will ask for
  // (Restorer.create: the file as its label, no spinning); restore takes it instead of creating another
  const early = earlySessionArgs(process.argv);
  if (early) {
    void import('../runtime/capi-model.js').then((m) => {
      mark('early_session_imported');
      let cudaOptions: Record<string, string>;
      try {
        cudaOptions = m.parseCudaOptions(early.cudaOptions);
      } catch {
        return; // the command line's own parsing reports it
      }
      m.startEarlySession(early.model, { provider: 'cuda', label: early.model, allowSpinning: false, cudaOptions });
    });
  }
}
