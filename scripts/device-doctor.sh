#!/usr/bin/env bash
# On the GPU machine (../shared/device), after the stash calls: setup cuda from the kit's provider files, then the
# doctor on cuda (and tensorrt, which has no TensorRT there), then again with cuDNN hidden from the loader (moved
# to /opt/cudnn-hidden and ldconfig re-run), then with the fix the doctor printed. JSON and text go to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
SKIP_CUDA_INSTALL=1 bash .device/bin/setup.sh > "$OUT/setup-kit.txt" 2>&1 || { cat "$OUT/setup-kit.txt"; exit 1; }
. .device/bin/env.sh
# a warm machine from an earlier run of this script: put cuDNN back first
if [ -d /opt/cudnn-hidden ]; then mv /opt/cudnn-hidden/* /usr/lib/x86_64-linux-gnu/ && rmdir /opt/cudnn-hidden && ldconfig; fi
g() { node --import tsx src/cli/index.ts "$@"; }
X="$OUT/extras.txt"
{ echo "== nvidia-smi"; nvidia-smi; } > "$X" 2>&1
echo "== setup cuda --json" >> "$X"; g setup cuda --from /tmp/devkit/ort-cuda --json >> "$X" 2>&1; echo "setup cuda exit $?"
echo "== setup cuda (again)" >> "$X"; g setup cuda --from /tmp/devkit/ort-cuda >> "$X" 2>&1; echo "setup cuda again exit $?"
g doctor --provider cuda --provider tensorrt --provider webgpu --provider cpu --json > "$OUT/doctor.json" 2>> "$X"; echo "doctor exit $?"
g doctor --provider cuda --provider tensorrt > "$OUT/doctor.txt" 2>&1
# the restoration itself on cuda, once the doctor says it runs
echo "== restore on cuda" >> "$X"; g restore assets/demo-face.png -o /tmp/gpu-restore --synthetic 512 --provider cuda --json >> "$X" 2>&1; echo "restore on cuda exit $?"
# cuDNN made unloadable: every libcudnn*.so.9* moved out of the loader's reach
mkdir -p /opt/cudnn-hidden
for f in $(ldconfig -p | awk '/libcudnn.*\.so\.9/ {print $NF}' | sort -u); do [ -e "$f" ] && mv "$(readlink -f "$f")" "$f" /opt/cudnn-hidden/ 2>/dev/null; done
ldconfig
g doctor --provider cuda --json > "$OUT/doctor-no-cudnn.json" 2>> "$X"; echo "doctor without cudnn exit $?"
g doctor --provider cuda > "$OUT/doctor-no-cudnn.txt" 2>&1
# the fix the doctor printed
fix=$(node -e "const r=require('$OUT/doctor-no-cudnn.json');const f=r.providers[0].findings.find(f=>/^export LD_LIBRARY_PATH/.test(f.fix||''));console.log(f?f.fix:'')")
echo "fix: $fix"
( eval "$fix"; g doctor --provider cuda > "$OUT/doctor-fixed.txt" 2>&1; echo "doctor after the fix exit $?" )
tail -n 40 "$OUT/doctor.txt"; echo ----; tail -n 30 "$OUT/doctor-no-cudnn.txt"; echo ----; tail -n 12 "$OUT/doctor-fixed.txt"
