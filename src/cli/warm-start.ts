// Imported first by the CLI: a CUDA restore starts warming CUDA up (src/runtime/cuda-warm.ts) before the other
// modules load, so the context and cuDNN's libraries are ready sooner. Nothing happens for other commands.
import { startCudaWarmup, wantsCudaWarmup } from '../runtime/cuda-warm.js';

if (wantsCudaWarmup(process.argv)) void startCudaWarmup();
