#!/usr/bin/env bash
# On the GPU machine (../shared/device), after the stash calls; what a user gets without flags, in three calls back to
# back (carry dist, and .peer for 1 and 3):
#   defaults1   the peer's seeded GPEN-512 weights, `gpen-lab restore` with defaults beside the flagged routes
#               (bench/cli-defaults.ts), BlazeFace's first use per placement (bench/detector-cold.ts), and serve's
#               /readyz with no flag but the model
#   defaults2   the default lab (`gpen-lab lab`, no config)
#   defaults3   the peer timed (native, fused ops) and gpen-lab bench (P1-P5), the CLI figures of defaults1 merged in
# Results land in $OUT; bench/results/ and results/device/ hold the ones the docs quote.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" /tmp/peer
bash .device/bin/setup.sh > "$OUT/setup-kit.txt" 2>&1 || { cat "$OUT/setup-kit.txt"; exit 1; }
. .device/bin/env.sh
# the lean CUDA option set (least memory): HEURISTIC search, arena grown as requested, no memory patterns
LEAN=cudnn_conv_algo_search=HEURISTIC,arena_extend_strategy=kSameAsRequested,cudnn_conv_use_max_workspace=0,mem_pattern=0
# the official GPEN-512 at the given batch sizes, native then fused ops; the native run saves its seeded weights
peer() {
  export GPEN_SRC=$PWD/.peer/face_model
  python3 .peer/torch_gpen.py --size 512 --batches "$1" --out /tmp/peer/native.json --save-pth /tmp/peer/peer.pth > "$OUT/peer-native.log" 2>&1; echo "peer native exit $?"
  python3 .peer/torch_gpen.py --size 512 --batches "$1" --out /tmp/peer/fused.json --fused > "$OUT/peer-fused.log" 2>&1; echo "peer fused exit $?"
}
# gpen-lab bench fp32 and fp16 on the peer's weights (CUDA graphs, the lean set, the C API sets given after $2), the
# Solvay photo with the CUDA detector, cold starts; $1 end-to-end runs, $2 cold starts per route
final_bench() {
  local e2e=$1 cold=$2; shift 2
  node dist/cli/index.js bench --model /tmp/peer/peer.pth --provider cuda --precision fp32,fp16 --batch 1,32 --runs 20 \
    --capi-cuda enable_cuda_graph=1 --capi-cuda $LEAN \
    --photo assets/Solvay_conference_1927.png --e2e-detector cuda --e2e-runs "$e2e" --cold "$cold" "$@" \
    --compare /tmp/peer/peer.in.npy,/tmp/peer/peer.out.npy \
    --peer-native /tmp/peer/native.json --peer-fused /tmp/peer/fused.json --out "$OUT/gpu-bench.json" > "$OUT/bench.txt" 2> "$OUT/bench-progress.txt"
  echo "bench exit $?"; cat "$OUT/bench.txt"; grep -v "^cold" "$OUT/bench-progress.txt" | cut -c1-300 | tail -30; grep "^cold" "$OUT/bench-progress.txt"
}
case "${1:-}" in
  defaults1|defaults2|defaults3)
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    F=enable_cuda_graph=1,prefer_nhwc=1,fused_act=1
    export GPEN_SRC=$PWD/.peer/face_model
    case "$1" in
      defaults1)
        python3 .peer/torch_gpen.py --size 512 --batches 1 --runs 3 --out /tmp/peer/seed.json --save-pth /tmp/peer/peer.pth > "$OUT/peer-seed.log" 2>&1; echo "peer weights exit $?"
        node --import tsx bench/cli-defaults.ts --model /tmp/peer/peer.pth --out /tmp/cli-defaults.json --runs 5 2> "$OUT/cli-defaults.txt"
        echo "cli-defaults exit $?"; cut -c1-400 "$OUT/cli-defaults.txt"; cp /tmp/cli-defaults.json "$OUT/"
        node --import tsx bench/detector-cold.ts --out "$OUT/detector-cold.json" --rounds 2 2> "$OUT/detector-cold.txt"; echo "detector-cold exit $?"; cut -c1-300 "$OUT/detector-cold.txt"
        node dist/cli/index.js serve --model /tmp/peer/peer.pth --port 8091 > /tmp/serve.log 2>&1 &
        sp=$!
        for i in $(seq 1 120); do node -e "fetch('http://127.0.0.1:8091/readyz').then((r)=>r.ok?r.text():Promise.reject(r.status)).then((t)=>require('fs').writeFileSync(process.argv[1],t)).catch(()=>process.exit(1))" "$OUT/readyz.json" && break; sleep 1; done
        echo "readyz after ${i} s:"; head -c 3000 "$OUT/readyz.json"; echo; kill $sp; wait $sp 2>/dev/null
        ;;
      defaults2)
        rm -rf /tmp/lab; timeout 540 node dist/cli/index.js lab --out /tmp/lab > "$OUT/lab.txt" 2>&1; echo "lab exit $?"; tail -40 "$OUT/lab.txt" | cut -c1-300
        mkdir -p "$OUT/lab"; cp /tmp/lab/results.json /tmp/lab/report.md /tmp/lab/report.html "$OUT/lab/"
        ;;
      defaults3)
        peer 1,32; tail -n 2 "$OUT/peer-native.log" "$OUT/peer-fused.log"; cp /tmp/peer/native.json /tmp/peer/fused.json "$OUT/"
        final_bench 7 5 --isolate --no-cold-binding --capi-cuda $F,arena_extend_strategy=kSameAsRequested,arena.max_dead_bytes_per_chunk=1048576 --capi-cuda $F \
          --e2e-cuda-options $F --cold-cuda-options $H,prime=1,graph_cache=ort
        node -e "const f=require('fs');const b=JSON.parse(f.readFileSync('$OUT/gpu-bench.json'));const c=JSON.parse(f.readFileSync('/tmp/cli-defaults.json'));b.P3_cli_default_ms=c.figures.face_cold_ms;b.P3_cli_default_solvay_ms=c.figures.solvay_cold_ms;b.P4_cli_default_ms=c.figures.folder_images_2_8_ms;b.cli_defaults=c;f.writeFileSync('$OUT/gpu-bench.json',JSON.stringify(b,null,1))"
        echo "merge exit $?"
        ;;
    esac
    ;;
  *) echo "usage: device-bench.sh defaults1|defaults2|defaults3" >&2; exit 2 ;;
esac
