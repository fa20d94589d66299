#!/usr/bin/env bash
# On the GPU machine (../shared/device), after the stash calls: the lab on the Solvay photo with cpu, cuda fp32/fp16,
# webgpu fp32/fp16, CUDA from the system toolkit and from torch's pip wheels (LD_LIBRARY_PATH), and cells that fail
# for known reasons (a stub libcudnn.so.9 first on LD_LIBRARY_PATH, no visible GPU, TensorRT absent).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
bash .device/bin/setup.sh > "$OUT/setup-kit.txt" 2>&1 || { cat "$OUT/setup-kit.txt"; exit 1; }
. .device/bin/env.sh
# torch's CUDA libraries: every folder under the nvidia pip namespace that holds a shared library
TORCH_LIBS=$(python3 - <<'P'
import glob, os
import nvidia
dirs = sorted({os.path.dirname(p) for r in nvidia.__path__ for p in glob.glob(os.path.join(r, '**', 'lib*.so*'), recursive=True)})
print(':'.join(dirs))
P
)
echo "torch libs: $TORCH_LIBS"
# a stub libcudnn.so.9 that reports cuDNN 8.9.7 and has nothing else (built here, or carried in .device/stubs)
STUB=/tmp/stub-cudnn; mkdir -p $STUB
if command -v cc >/dev/null; then
  printf '#include <stddef.h>\nsize_t cudnnGetVersion(void) { return 80907; }\n' > $STUB/s.c && cc -shared -fPIC -o $STUB/libcudnn.so.9 $STUB/s.c -Wl,-soname,libcudnn.so.9
else cp .device/stubs/libcudnn.so.9 $STUB/; fi
cat > /tmp/gpu-lab.json <<JSON
{
  "name": "GPU machine, Solvay 1927 (29 faces), synthetic GPEN-512",
  "inputs": ["$PWD/assets/Solvay_conference_1927.png"],
  "model": { "synthetic": 512, "seed": 0 },
  "coldRuns": ${COLD:-3}, "warmRuns": ${WARM:-5}, "timeoutSec": 240, "reference": "cuda-fp32",
  "cells": [
    { "provider": "cuda", "precision": "fp32", "id": "cuda-fp32", "batch": 8 },
    { "provider": "cuda", "precision": "fp16", "id": "cuda-fp16", "batch": 8 },
    { "provider": "cuda", "precision": "fp32", "id": "cuda-fp32-torch-libs", "batch": 8, "env": { "LD_LIBRARY_PATH": "$TORCH_LIBS:\$LD_LIBRARY_PATH" } },
    { "provider": "webgpu", "precision": "fp32", "id": "webgpu-fp32", "batch": 8 },
    { "provider": "webgpu", "precision": "fp16", "id": "webgpu-fp16", "batch": 8 },
    { "provider": "cpu", "precision": "fp32", "id": "cpu-fp32", "batch": 8 },
    { "provider": "cuda", "precision": "fp32", "id": "cuda-fp32-stub-cudnn", "env": { "LD_LIBRARY_PATH": "$STUB:\$LD_LIBRARY_PATH" } },
    { "provider": "cuda", "precision": "fp32", "id": "cuda-fp32-no-visible-gpu", "env": { "CUDA_VISIBLE_DEVICES": "" } },
    { "provider": "tensorrt", "precision": "fp32", "id": "tensorrt-fp32" }
  ]
}
JSON
node dist/cli/index.js lab /tmp/gpu-lab.json --out "$OUT/lab" > "$OUT/lab-stdout.txt" 2> "$OUT/lab-progress.txt"; echo "lab exit $?"
rm -rf "$OUT/lab/.cache" "$OUT/lab/cells"/*/job-*.json
# images stay on the machine (the report embeds them); what comes back is JSON, markdown and the HTML
mkdir -p /tmp/lab-images && mv "$OUT/lab/cells" /tmp/lab-images/ 2>/dev/null
cat "$OUT/lab-stdout.txt"; tail -n 40 "$OUT/lab-progress.txt"; cat "$OUT/lab/report.md" | head -60
