// Imported first by the CLI: a restore that will run on CUDA (asked for, or auto with CUDA's provider installed) starts
// warming CUDA up (src/runtime/cuda-warm.ts) before the other modules load, so the context and cuDNN's libraries are
// ready sooner, and where its model is a file a session loads at once, the C API session itself starts too
// (early-start.ts). Nothing happens for other commands.
import { earlyPlan } from './early-start.js';
import { buildSpec } from '../runtime/builds.js';
import { startCudaWarmup } from '../runtime/cuda-warm.js';
import { mark } from '../runtime/marks.js';

const plan = earlyPlan(process.argv);
if (plan) {
  // The warm-up's steps and the C API's CreateSession are long calls on libuv's thread pool (4 threads by default);
  // file reads and sharp queue behind them there (on a GPU host the model stage then takes many times as long).
  // The pool is created at its first use, which is after this line: 8 threads leave room for both.
  if (!process.env.UV_THREADPOOL_SIZE) process.env.UV_THREADPOOL_SIZE = '8';
  // the CUDA libraries of the build restore will run (another major's would be loaded for nothing)
  void startCudaWarmup(buildSpec(plan.build).cudaMajor);
  const early = plan.session;
  if (early) {
    void import('../runtime/capi-model.js').then((m) => {
      mark('early_session_imported');
      let cudaOptions: Record<string, string>;
      try {
        cudaOptions = early.userOptions !== null ? m.parseCudaOptions(early.userOptions) : early.cudaOptions;
      } catch {
        return; // the command line's own parsing reports it
      }
      // the configuration restore will ask for (face/choose.ts: the model's label, no spinning)
      m.startEarlySession(early.model, {
        provider: 'cuda',
        label: early.label,
        allowSpinning: false,
        cudaOptions,
        runtime: plan.build,
      });
    });
  }
}
