#!/usr/bin/env node
// The gpen-lab entry: a CUDA restore starts warming CUDA up (warm-start.ts) before the command line's modules are
// even read (static imports are all loaded before any of them runs, ~200 ms), then the command line itself.
import './warm-start.js';

await import('./main.js');
