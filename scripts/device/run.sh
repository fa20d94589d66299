#!/usr/bin/env bash
# The GPU machine's figures (../shared/device: run after its stash calls, with dist carried, and .peer for the modes
# that need the official GPEN). Each mode reproduces a file the docs quote; its results land in $OUT.
#   peer    the official PyTorch GPEN-512 timed (native and fused ops, batch 1 and 32); saves its seeded weights
#   cold    `gpen-lab restore` with no flag but the model: Solvay photo, demo face, a folder  -> cli-defaults-*.json
#   photo   BlazeFace's first use and warm detections on the Solvay photo, per placement      -> detector-cold-*.json
#   bench   `gpen-lab bench` on the peer's weights: P1-P5 against the peer (cold's figures merged in when there)
#                                                                                              -> gpu-targets-*.json
#   serve   `gpen-lab serve --model peer.pth`, its /readyz                                     -> readyz-*.json
#   lab     the default lab (`gpen-lab lab`, no config)                                        -> lab-*/
#   doctor  setup cuda, the doctor, the doctor with cuDNN hidden from the loader, then with its fix -> doctor-*
#   tests   the GPU test tier (npm run test:gpu: the fast route against the CPU)                -> test-gpu-*.txt
#   cuda-sets  the CUDA library sets (pack-cuda-sets.sh's parts stashed) unpacked, the CUDA 12 build installed, whether
#           it runs on the machine's cuDNN, its CUDA options one by one                     -> bench-ort119-*.json
#   lab-sets   examples/lab-cuda-sets.yaml, after cuda-sets                                  -> lab-cuda-*/
#   lab-torch  the official PyTorch GPEN as a command cell beside gpen-lab's cells on the aligned demo face at 512
#           (with the CUDA 12 build's cell when cuda-sets ran first)                         -> lab-torch-*/
#   gpus    on a host of several GPUs: serve --devices on 1, 2 and all GPUs (bench/multi-gpu.ts), then
#           examples/lab-gpus.yaml with a cell on each GPU                                   -> multi-gpu-*.json, lab-gpus-*/
# Modes may be given together: `bash scripts/device/run.sh cold bench`.
set -uo pipefail
OUT=${OUT:-/tmp/out}; P=/tmp/peer; mkdir -p "$OUT" $P
export GPEN_SRC=$PWD/.peer/face_model
setup() {
  [ -n "${SETUP_DONE:-}" ] && return
  bash .device/bin/setup.sh > "$OUT/setup-kit.txt" 2>&1 || { cat "$OUT/setup-kit.txt"; exit 1; }
  . .device/bin/env.sh; SETUP_DONE=1
}
weights() { [ -f $P/peer.pth ] || { python3 .peer/torch_gpen.py --size 512 --batches 1 --runs 3 --out $P/seed.json --save-pth $P/peer.pth > "$OUT/peer-seed.log" 2>&1; echo "peer weights exit $?"; }; }
peer() {
  python3 .peer/torch_gpen.py --size 512 --batches 1,32 --out $P/native.json --save-pth $P/peer.pth > "$OUT/peer-native.log" 2>&1; echo "peer native exit $?"
  python3 .peer/torch_gpen.py --size 512 --batches 1,32 --out $P/fused.json --fused > "$OUT/peer-fused.log" 2>&1; echo "peer fused exit $?"
  tail -n 2 "$OUT/peer-native.log" "$OUT/peer-fused.log"; cp $P/native.json $P/fused.json "$OUT/"
}
cold() {
  weights
  node --import tsx bench/cli-defaults.ts --model $P/peer.pth --out $P/cli-defaults.json --runs 5 2> "$OUT/cli-defaults.txt"
  echo "cli-defaults exit $?"; cut -c1-400 "$OUT/cli-defaults.txt"; cp $P/cli-defaults.json "$OUT/"
}
photo() {
  node --import tsx bench/detector-cold.ts --out "$OUT/detector-cold.json" --rounds 2 2> "$OUT/detector-cold.txt"
  echo "detector-cold exit $?"; cut -c1-300 "$OUT/detector-cold.txt"
}
bench() {
  [ -f $P/native.json ] || peer
  # the sets the routes table names: lean (least memory), warm (CUDA graphs, NHWC, FusedAct) with and without a
  # trimmed arena, the cold set for fresh processes
  local lean=cudnn_conv_algo_search=HEURISTIC,arena_extend_strategy=kSameAsRequested,cudnn_conv_use_max_workspace=0,mem_pattern=0
  local warm=enable_cuda_graph=1,prefer_nhwc=1,fused_act=1
  local coldset=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0,prime=1,graph_cache=ort
  node dist/cli/index.js bench --model $P/peer.pth --provider cuda --precision fp32,fp16 --batch 1,32 --runs 20 \
    --capi-cuda enable_cuda_graph=1 --capi-cuda $lean \
    --capi-cuda $warm,arena_extend_strategy=kSameAsRequested,arena.max_dead_bytes_per_chunk=1048576 --capi-cuda $warm \
    --photo assets/Solvay_conference_1927.png --e2e-detector cuda --e2e-runs 7 --e2e-cuda-options $warm \
    --cold 5 --cold-cuda-options $coldset --isolate --no-cold-binding \
    --compare $P/peer.in.npy,$P/peer.out.npy --peer-native $P/native.json --peer-fused $P/fused.json \
    --out "$OUT/gpu-bench.json" > "$OUT/bench.txt" 2> "$OUT/bench-progress.txt"
  echo "bench exit $?"; cat "$OUT/bench.txt"; grep -v "^cold" "$OUT/bench-progress.txt" | cut -c1-300 | tail -30
  if [ -f $P/cli-defaults.json ]; then
    node -e "const f=require('fs');const b=JSON.parse(f.readFileSync(process.argv[1]));const c=JSON.parse(f.readFileSync(process.argv[2]));b.P3_cli_default_ms=c.figures.face_cold_ms;b.P3_cli_default_solvay_ms=c.figures.solvay_cold_ms;b.P4_cli_default_ms=c.figures.folder_images_2_8_ms;b.cli_defaults=c;f.writeFileSync(process.argv[1],JSON.stringify(b,null,1))" "$OUT/gpu-bench.json" $P/cli-defaults.json
    echo "merge exit $?"
  fi
}
serve() {
  weights
  node dist/cli/index.js serve --model $P/peer.pth --port 8091 > "$OUT/serve.log" 2>&1 &
  local sp=$! i
  for i in $(seq 1 120); do node -e "fetch('http://127.0.0.1:8091/readyz').then((r)=>r.ok?r.text():Promise.reject(r.status)).then((t)=>require('fs').writeFileSync(process.argv[1],t)).catch(()=>process.exit(1))" "$OUT/readyz.json" && break; sleep 1; done
  echo "readyz after ${i} s:"; head -c 3000 "$OUT/readyz.json"; echo; kill $sp; wait $sp 2>/dev/null
}
lab() {
  rm -rf /tmp/lab; timeout 540 node dist/cli/index.js lab --out /tmp/lab > "$OUT/lab.txt" 2>&1; echo "lab exit $?"
  tail -40 "$OUT/lab.txt" | cut -c1-300; mkdir -p "$OUT/lab"; cp /tmp/lab/results.json /tmp/lab/report.md /tmp/lab/report.html "$OUT/lab/"
}
doctor() {
  local g="node dist/cli/index.js" x="$OUT/doctor-extras.txt" f fix
  # a warm machine from an earlier run: put cuDNN back first
  if [ -d /opt/cudnn-hidden ]; then mv /opt/cudnn-hidden/* /usr/lib/x86_64-linux-gnu/ && rmdir /opt/cudnn-hidden && ldconfig; fi
  { echo "== nvidia-smi"; nvidia-smi; echo "== setup cuda"; $g setup cuda --from /tmp/devkit/ort-cuda --json; } > "$x" 2>&1
  $g doctor --provider cuda --provider tensorrt --provider webgpu --provider cpu --json > "$OUT/doctor.json" 2>> "$x"; echo "doctor exit $?"
  $g doctor --provider cuda --provider tensorrt > "$OUT/doctor.txt" 2>&1
  # cuDNN made unloadable: every libcudnn*.so.9* moved out of the loader's reach
  mkdir -p /opt/cudnn-hidden
  for f in $(ldconfig -p | awk '/libcudnn.*\.so\.9/ {print $NF}' | sort -u); do [ -e "$f" ] && mv "$(readlink -f "$f")" "$f" /opt/cudnn-hidden/ 2>/dev/null; done
  ldconfig
  $g doctor --provider cuda --json > "$OUT/doctor-no-cudnn.json" 2>> "$x"; echo "doctor without cudnn exit $?"
  $g doctor --provider cuda > "$OUT/doctor-no-cudnn.txt" 2>&1
  fix=$(node -e "const r=require(process.argv[1]);const f=r.providers[0].findings.find((f)=>/^export LD_LIBRARY_PATH/.test(f.fix||''));console.log(f?f.fix:'')" "$OUT/doctor-no-cudnn.json")
  echo "fix: $fix"; ( eval "$fix"; $g doctor --provider cuda > "$OUT/doctor-fixed.txt" 2>&1; echo "doctor after the fix exit $?" )
  mv /opt/cudnn-hidden/* /usr/lib/x86_64-linux-gnu/ && rmdir /opt/cudnn-hidden && ldconfig
  tail -n 40 "$OUT/doctor.txt"; echo ----; tail -n 30 "$OUT/doctor-no-cudnn.txt"; echo ----; tail -n 12 "$OUT/doctor-fixed.txt"
}
tests() {
  node --import tsx --test --test-reporter=spec test/gpu/*.test.ts > "$OUT/test-gpu.txt" 2>&1; echo "test:gpu exit $?"
  grep -v "^\s*at " "$OUT/test-gpu.txt" | tail -40 | cut -c1-400
}
cuda_sets() {
  local kit=/tmp/devkit S=/tmp/cuda-sets k=/tmp/sets-kit g="node dist/cli/index.js" f
  weights
  if [ ! -d $S/12.4 ]; then
    (cd $kit && sha256sum -c --quiet sets-00/SHA256SUMS) || { echo "cuda-sets: a part is missing or damaged: carry each .device/sets-NN with stash.sh"; return 1; }
    rm -rf $k && mkdir -p $k/x124 $k/x118 $k/ort121 $S/12.4-no-cufft
    cat $(ls $kit/sets-*/sets.tar.* | sort) | tar -x -C $k
    for f in $k/debs/*.deb; do case $f in *libcudart11.0_*) dpkg -x $f $k/x118 ;; *) dpkg -x $f $k/x124 ;; esac; done
    mv $k/x124/usr/lib/x86_64-linux-gnu $S/12.4 && mv $k/x118/usr/lib/x86_64-linux-gnu $S/11.8
    for f in $S/12.4/*; do case $(basename $f) in libcufft*) ;; *) ln -s $f $S/12.4-no-cufft/ ;; esac; done
    tar -xJf $k/stream/ort121-providers.tar.xz -C $k/ort121
    xz -dc $k/stream/libonnxruntime.so.1.19.2.xz > $k/ort121/libonnxruntime.so.1.19.2
  fi
  $g setup cuda --runtime ort1.19-cuda12 --from $k/ort121 --json > "$OUT/setup-ort119.json" 2>&1; echo "setup ort1.19 exit $?"
  ls -l $S/*/ | head -40
  # torch's CUDA 13 wheels: every folder of theirs holding a shared library
  export CUDA_SETS=$S GPEN_MODEL=$P/peer.pth
  TORCH_CUDA_LIBS=$(find "$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])')" -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:)
  export TORCH_CUDA_LIBS; echo "TORCH_CUDA_LIBS=$TORCH_CUDA_LIBS"
  [ -n "${SETS_INSTALL_ONLY:-}" ] && return 0
  # first: the CUDA 12 build on the machine's cuDNN 9 (built for CUDA 13)
  ( export LD_LIBRARY_PATH=$S/12.4:$LD_LIBRARY_PATH
    $g doctor --provider cuda --json > "$OUT/doctor-cuda124.json" 2> "$OUT/doctor-cuda124.err"; echo "doctor 12.4 exit $?"
    $g restore assets/demo-face.png --model $P/peer.pth --runtime ort1.19-cuda12 --provider cuda -o /tmp/o119 --json > "$OUT/restore-ort119.json" 2> "$OUT/restore-ort119.err"
    echo "restore ort1.19 on 12.4 exit $?"; tail -c 1500 "$OUT/restore-ort119.err"
    # the CUDA options of the fast route one by one, each variant in a process of its own
    # (the warm set, all three together, is what the lab's warm runs take)
    timeout 200 $g bench --model $P/peer.pth --runtime ort1.19-cuda12 --provider cuda --precision fp16 --batch 1 --runs 5 --isolate \
      --capi-cuda enable_cuda_graph=1 --capi-cuda prefer_nhwc=1 --capi-cuda fused_act=1 \
      --out "$OUT/bench-ort119.json" > "$OUT/bench-ort119.txt" 2> "$OUT/bench-ort119.err"; echo "bench ort1.19 exit $?"
    cat "$OUT/bench-ort119.txt" | cut -c1-300 | tail -20 )
}
lab_sets() {
  local S=/tmp/cuda-sets g="node dist/cli/index.js"
  [ -d $S/12.4 ] || { echo "lab-sets: run the cuda-sets mode first"; return 1; }
  export CUDA_SETS=$S GPEN_MODEL=$P/peer.pth
  TORCH_CUDA_LIBS=$(find "$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])')" -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:)
  export TORCH_CUDA_LIBS
  rm -rf /tmp/lab-sets; timeout 540 $g lab examples/lab-cuda-sets.yaml --out /tmp/lab-sets > "$OUT/lab-sets.txt" 2>&1; echo "lab exit $?"
  tail -30 "$OUT/lab-sets.txt" | cut -c1-300; mkdir -p "$OUT/lab-cuda"
  cp /tmp/lab-sets/results.json /tmp/lab-sets/report.md /tmp/lab-sets/report.html "$OUT/lab-cuda/"
}
lab_torch() {
  local g="node dist/cli/index.js" y=/tmp/lab-torch.yaml sets=""
  weights
  # the demo face at the model's size: the aligned input gpen-lab's cells (aligned: GAN only) and GPEN's script take
  node -e "require('sharp')('assets/demo-face.png').resize(512, 512).png().toFile('/tmp/face512.png')"
  [ -d /tmp/cuda-sets/12.4 ] && sets="  - { id: cuda-fast-fp16-ort1.19, provider: cuda, precision: fp16, runtime: ort1.19-cuda12, env: { LD_LIBRARY_PATH: '/tmp/cuda-sets/12.4:\$LD_LIBRARY_PATH' } }"
  {
    echo "name: the official PyTorch GPEN beside gpen-lab, on an aligned face"
    echo "inputs: [/tmp/face512.png]"
    echo "aligned: true"
    echo "model: { file: $P/peer.pth }"
    echo "coldRuns: 3"
    echo "warmRuns: 5"
    echo "reference: cuda-fast-fp32"
    echo "cells:"
    echo "  - { id: cuda-fast-fp32, provider: cuda, precision: fp32 }"
    echo "  - { id: cuda-fast-fp16, provider: cuda, precision: fp16 }"
    [ -n "$sets" ] && echo "$sets"
    echo "  - { id: webgpu-fp32, provider: webgpu, precision: fp32 }"
    echo "  - { id: cpu-fp32, provider: cpu, precision: fp32 }"
    echo "  - id: torch-fp32"
    echo "    precision: fp32"
    echo "    command:"
    echo "      argv: [python3, $PWD/examples/torch-gpen/restore_face.py, --weights, $P/peer.pth, --input, '{input}', --output, '{output}', --warm, '5']"
    echo "      probes:"
    echo "        startup: [python3, -c, 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available())']"
    echo "        dependencies: [python3, -c, 'import cv2, numpy; print(\"cv2\", cv2.__version__, \"numpy\", numpy.__version__)']"
    echo "      env: { GPEN_SRC: $PWD/.peer/face_model }"
  } > $y
  rm -rf /tmp/lab-torch; timeout 500 $g lab $y --out /tmp/lab-torch > "$OUT/lab-torch.txt" 2>&1; echo "lab exit $?"
  tail -25 "$OUT/lab-torch.txt" | cut -c1-300; mkdir -p "$OUT/lab-torch"
  cp /tmp/lab-torch/results.json /tmp/lab-torch/report.md /tmp/lab-torch/report.html $y "$OUT/lab-torch/"
}
gpus() {
  local g="node dist/cli/index.js" y=/tmp/lab-gpus.yaml n
  weights
  node --import tsx bench/multi-gpu.ts --model $P/peer.pth --out "$OUT/multi-gpu.json" 2> "$OUT/multi-gpu.txt"
  echo "multi-gpu exit $?"; grep -v '^{' "$OUT/multi-gpu.txt" | tail -8
  # the example's cell on every GPU this host has
  n=$(nvidia-smi --query-gpu=index --format=csv,noheader | paste -sd, -)
  sed "s/devices: \[0, 1\]/devices: [$n]/" examples/lab-gpus.yaml > $y
  sed -i "s#\.\./assets/#$PWD/assets/#" $y
  rm -rf /tmp/lab-gpus; GPEN_MODEL=$P/peer.pth timeout 500 $g lab $y --out /tmp/lab-gpus > "$OUT/lab-gpus.txt" 2>&1; echo "lab exit $?"
  tail -12 "$OUT/lab-gpus.txt" | cut -c1-300; mkdir -p "$OUT/lab-gpus"
  cp /tmp/lab-gpus/results.json /tmp/lab-gpus/report.md /tmp/lab-gpus/report.html $y "$OUT/lab-gpus/"
}
# the doctor mode installs the CUDA provider itself (setup cuda --from the kit)
[ "${1:-}" = doctor ] && export SKIP_CUDA_INSTALL=1
[ $# -gt 0 ] || { echo "usage: scripts/device/run.sh peer|cold|photo|bench|serve|lab|doctor|tests|cuda-sets|lab-sets|lab-torch|gpus ..." >&2; exit 2; }
for m in "$@"; do
  case "$m" in
    peer|cold|photo|bench|serve|lab|doctor|tests) setup; echo "== $m"; "$m" ;;
    cuda-sets) setup; echo "== $m"; cuda_sets ;;
    lab-sets) setup; echo "== $m"; lab_sets ;;
    lab-torch) setup; echo "== $m"; lab_torch ;;
    gpus) setup; echo "== $m"; gpus ;;
    *) echo "unknown mode: $m (peer|cold|photo|bench|serve|lab|doctor|tests|cuda-sets|lab-sets|lab-torch|gpus)" >&2; exit 2 ;;
  esac
done
