#!/usr/bin/env bash
# On the GPU machine (../shared/device), after the stash calls (carry dist, and .peer for the modes that run the peer):
#   peer, then ours   the official PyTorch GPEN-512 (native, then fused ops; its seeded weights saved for gpen-lab),
#                     then gpen-lab bench on those weights: providers, precisions, C API sets, the Solvay photo end
#                     to end, cold starts, agreement with the peer, P1-P5 (two calls back to back)
#   final, final2, final3, final4-final10   the peer and gpen-lab in one call, trimmed to little device time (final10:
#                     the last run, bench/results/gpu-2026-11-30.json; the earlier ones -finalN.json beside it)
#   explore, explore2, e2e, e2e3   synthetic GPEN-512 only: option sets, profiles, memory limits, cold starts, the
#                     photo end to end (what each measured is in its comment and in notes/gpu-speed.md)
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
# the fourth session's final runs (final4-6): gpen-lab fp32 and fp16 on the peer's weights (CUDA graphs, the lean
# set), the Solvay photo with the CUDA detector, cold starts through the binding and the C API routes given as
# --cold-cuda-options; $1 end-to-end runs, $2 cold starts per route, then the routes
final_bench() {
  local e2e=$1 cold=$2; shift 2
  node dist/cli/index.js bench --model /tmp/peer/peer.pth --provider cuda --precision fp32,fp16 --batch 1,32 --runs 20 \
    --capi-cuda enable_cuda_graph=1 --capi-cuda $LEAN \
    --photo assets/Solvay_conference_1927.png --e2e-detector cuda --e2e-runs "$e2e" --cold "$cold" "$@" \
    --compare /tmp/peer/peer.in.npy,/tmp/peer/peer.out.npy \
    --peer-native /tmp/peer/native.json --peer-fused /tmp/peer/fused.json --out "$OUT/gpu-bench.json" > "$OUT/bench.txt" 2> "$OUT/bench-progress.txt"
  echo "bench exit $?"; cat "$OUT/bench.txt"; grep -v "^cold" "$OUT/bench-progress.txt" | cut -c1-300 | tail -30; grep "^cold" "$OUT/bench-progress.txt"
}
# the Solvay photo end to end (synthetic GPEN-512 fp16, detector on CUDA, the stock binding and the C API with CUDA
# graphs), the build in $1 and dist taking turns, two rounds each ($2 = 1: one)
photo_ab() {
  local E=(bench --synthetic 512 --provider cuda --precision fp16 --batch 32 --runs 2 --warmup 1 --photo assets/Solvay_conference_1927.png --e2e-detector cuda --e2e-runs 7 --e2e-cuda-options enable_cuda_graph=1)
  local order=("$1" dist "$1" dist)
  [ "${2:-2}" = 1 ] && order=("$1" dist)
  for d in "${order[@]}"; do
    node $d/cli/index.js "${E[@]}" --out /tmp/ab.json > /dev/null 2> /tmp/ab.txt; echo "$d exit $?"
    grep -h "end to end" /tmp/ab.txt | sed 's/(detector on cuda, C API {"enable_cuda_graph":"1"})/graphs/; s/(detector on cuda)/stock/' | cut -c1-300
  done
}
# P5 through CUDA's pool, fp16 alone in a process of its own (a pool cannot be unregistered, so a second variant in
# the same process would find the first one's memory), on the peer's weights
p5_pool() {
  local X=cudnn_conv_algo_search=EXHAUSTIVE,arena_extend_strategy=kSameAsRequested,cudnn_conv_use_max_workspace=0,mem_pattern=0,graph_optimization_level=0
  node dist/cli/index.js bench --model /tmp/peer/peer.pth --provider '' --precision fp16 --batch 1 --runs 10 \
    --capi-cuda $X,arena.use_cuda_mempool=1,arena.cuda_mempool_release_threshold=8589934592 --compare /tmp/peer/peer.in.npy,/tmp/peer/peer.out.npy \
    --out "$OUT/gpu-p5-pool.json" > /dev/null 2> "$OUT/p5-pool.txt"; echo "p5 pool exit $?"; grep "batch 1:" "$OUT/p5-pool.txt" | cut -c1-400
}
# cold starts (fp32, the P3 route: HEURISTIC, level 0, prime=1, graph_cache=ort) of the build in $1 and dist taking
# turns, two rounds, with when each run reached its command, its session and its first inference
cold_ab() {
  local H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
  for r in 1 2; do
    for d in "$1" dist; do
      node $d/cli/index.js bench --synthetic 512 --provider cuda --precision fp32 --batch 1 --runs 2 --warmup 1 --cold 3 --no-cold-binding \
        --cold-cuda-options $H,prime=1,graph_cache=ort --out /tmp/cold.json > /dev/null 2> /tmp/cold.txt; echo "cold $d round $r exit $?"
      grep -h "^cold" /tmp/cold.txt | sed 's/(C API.*)//' | tr '\n' ' '; echo
      python3 -c "import json; d=json.load(open('/tmp/cold.json')); [print('  ', [round(x['startup']['process']) for x in c['runs']], 'ready', [round(x['startup']['session_ready_at']) for x in c['runs']], 'first', [round(x['startup']['marks']['first_run_started']) for x in c['runs']]) for c in d['cold']]"
    done
  done
}
# session 11: the photo's bench through the stock binding, the NHWC graphs and FusedAct, twice, each run's log kept
photo_routes() {
  for r in 1 2; do
    node dist/cli/index.js bench --synthetic 512 --provider cuda --precision fp16 --batch 32 --runs 2 --warmup 1 --photo assets/Solvay_conference_1927.png --e2e-detector cuda --e2e-runs 7 \
      --e2e-cuda-options enable_cuda_graph=1,prefer_nhwc=1 --e2e-cuda-options enable_cuda_graph=1,prefer_nhwc=1,fused_act=1 --out /tmp/ab.json > /dev/null 2> "$OUT/photo-$r.txt"; echo "photo $r exit $?"
    grep -h "end to end\|rror\|what\|fail" "$OUT/photo-$r.txt" | grep -v "W:onnxruntime" | cut -c1-600
  done
}
case "${1:-}" in
  peer)
    peer 1,8,16,32
    cp /tmp/peer/*.json "$OUT/" 2>/dev/null; tail -n 3 "$OUT/peer-native.log" "$OUT/peer-fused.log"
    ;;
  ours)
    # gpen-lab on the peer's weights: the stock binding (cuda fp32/fp16, the Solvay photo end to end), the C API route
    # with CUDA graphs, without, and a memory-lean set; agreement with the peer; cold starts per route; P1-P5
    node dist/cli/index.js bench --model /tmp/peer/peer.pth --provider cuda --precision fp32,fp16 --batch 1,8,16,32,48 --runs 30 \
      --capi-cuda enable_cuda_graph=1 --capi-cuda cudnn_conv_algo_search=EXHAUSTIVE \
      --capi-cuda $LEAN \
      --photo assets/Solvay_conference_1927.png --e2e-detector cpu,cuda --e2e-runs 3 --cold 3 \
      --cold-cuda-options cudnn_conv_algo_search=HEURISTIC --cold-cuda-options cudnn_conv_algo_search=DEFAULT \
      --compare /tmp/peer/peer.in.npy,/tmp/peer/peer.out.npy \
      --peer-native /tmp/peer/native.json --peer-fused /tmp/peer/fused.json --out "$OUT/gpu-bench.json" > "$OUT/bench.txt" 2> "$OUT/bench-progress.txt"
    echo "bench exit $?"
    CUDA_LAUNCH_BLOCKING=1 node dist/cli/index.js bench --synthetic 512 --provider '' --precision fp16 --batch 16 --runs 3 --warmup 1 --profile-batch 16 \
      --capi-cuda cudnn_conv_algo_search=EXHAUSTIVE --out "$OUT/profile-b16.json" > /dev/null 2> "$OUT/profile-progress.txt"; echo "profile exit $?"
    cat "$OUT/bench.txt"; grep -v "^cold" "$OUT/bench-progress.txt" | tail -70; grep "^cold" "$OUT/bench-progress.txt"; tail -2 "$OUT/profile-progress.txt"
    ;;
  final)
    # both in one call, trimmed to little device time: the peer (batches 1 and 32: its best per face is at 32), then
    # gpen-lab fp16 (the run of bench/results/gpu-blur-matmul-2026-11-30.json also passed --blur conv,matmul, an
    # option since removed: the MatMul blur was measured no faster)
    peer 1,32
    node dist/cli/index.js bench --model /tmp/peer/peer.pth --provider cuda --precision fp16 --batch 1,32 --runs 20 \
      --capi-cuda enable_cuda_graph=1 \
      --capi-cuda $LEAN \
      --photo assets/Solvay_conference_1927.png --e2e-detector cuda --e2e-runs 3 --cold 3 --cold-cuda-options cudnn_conv_algo_search=HEURISTIC \
      --compare /tmp/peer/peer.in.npy,/tmp/peer/peer.out.npy \
      --peer-native /tmp/peer/native.json --peer-fused /tmp/peer/fused.json --out "$OUT/gpu-bench.json" > "$OUT/bench.txt" 2> "$OUT/bench-progress.txt"
    echo "bench exit $?"; cat "$OUT/bench.txt"; grep -v "^cold" "$OUT/bench-progress.txt" | tail -60; grep "^cold" "$OUT/bench-progress.txt"
    ;;
  explore)
    # the C API route's options, synthetic GPEN-512 (speed does not depend on the weights): stock binding vs C API
    # with each option set, node profiles under CUDA_LAUNCH_BLOCKING=1, cold starts per route
    (which nsys ncu; ls /usr/local/cuda/bin 2>/dev/null | tr '\n' ' '; nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv) > "$OUT/tools.txt" 2>&1
    B="node dist/cli/index.js bench --synthetic 512"
    $B --provider cuda --precision fp16,fp32 --batch 1,8,16,32 --runs 20 \
      --capi-cuda cudnn_conv_algo_search=EXHAUSTIVE --capi-cuda prefer_nhwc=1 --capi-cuda prefer_nhwc=1,enable_cuda_graph=1 \
      --capi-cuda enable_cuda_graph=1 --capi-cuda cudnn_conv_algo_search=HEURISTIC \
      --capi-cuda arena_extend_strategy=kSameAsRequested,cudnn_conv_use_max_workspace=0 \
      --out "$OUT/explore-speed.json" > "$OUT/explore-speed.txt" 2> "$OUT/explore-speed-progress.txt"; echo "speed exit $?"
    CUDA_LAUNCH_BLOCKING=1 $B --provider '' --precision fp16 --batch 16 --runs 3 --warmup 1 --profile-batch 16 \
      --capi-cuda cudnn_conv_algo_search=EXHAUSTIVE --capi-cuda prefer_nhwc=1 \
      --out "$OUT/explore-profile.json" > /dev/null 2> "$OUT/explore-profile-progress.txt"; echo "profile exit $?"
    $B --provider cuda --precision fp32,fp16 --batch 1 --runs 3 --cold 3 \
      --cold-cuda-options cudnn_conv_algo_search=HEURISTIC --cold-cuda-options cudnn_conv_algo_search=HEURISTIC,prefer_nhwc=1 \
      --out "$OUT/explore-cold.json" > /dev/null 2> "$OUT/explore-cold-progress.txt"; echo "cold exit $?"
    tail -60 "$OUT/explore-speed-progress.txt"; tail -8 "$OUT/explore-profile-progress.txt"; grep cold "$OUT/explore-cold-progress.txt"
    ;;
  e2e)
    # synthetic GPEN-512 (speed does not depend on the weights): the Solvay photo end to end through the stock binding
    # and the C API (lean options), detector on cpu and cuda; cold starts with and without the CLI's CUDA warm-up;
    # memory at batch 1 under arena limits (what of the first runs' memory is ONNX Runtime's arena)
    B="node dist/cli/index.js bench --synthetic 512"
    nproc > "$OUT/nproc.txt"
    $B --provider cuda --precision fp16 --batch 1,32 --runs 10 --photo assets/Solvay_conference_1927.png --e2e-detector cpu,cuda --e2e-runs 5 \
      --e2e-cuda-options $LEAN \
      --capi-cuda $LEAN --capi-cuda $LEAN,gpu_mem_limit=536870912 --capi-cuda $LEAN,gpu_mem_limit=268435456 \
      --out "$OUT/e2e.json" > "$OUT/e2e.txt" 2> "$OUT/e2e-progress.txt"; echo "e2e exit $?"
    $B --provider cuda --precision fp32 --batch 1 --runs 3 --cold 3 --cold-cuda-options cudnn_conv_algo_search=HEURISTIC --cold-without-warmup \
      --out "$OUT/cold.json" > /dev/null 2> "$OUT/cold-progress.txt"; echo "cold exit $?"
    grep -v "^cold" "$OUT/e2e-progress.txt" | tail -40; grep "^cold" "$OUT/cold-progress.txt"
    ;;
  explore2)
    # the padded CUDA detector end to end; memory at batch 1 under arena limits and options; cold starts with the
    # early warm-up entry, per graph optimisation level and precision
    B="node dist/cli/index.js bench --synthetic 512"
    $B --provider cuda --precision fp16 --batch 32 --runs 5 --photo assets/Solvay_conference_1927.png --e2e-detector cuda,cpu --e2e-runs 5 \
      --out "$OUT/e2e2.json" > /dev/null 2> "$OUT/e2e2-progress.txt"; echo "e2e exit $?"
    $B --provider '' --precision fp16 --batch 1 --runs 10 --capi-cuda $LEAN,gpu_mem_limit=805306368 --capi-cuda $LEAN,gpu_mem_limit=671088640 \
      --capi-cuda cudnn_conv_algo_search=HEURISTIC,arena_extend_strategy=kSameAsRequested,cudnn_conv_use_max_workspace=0 \
      --capi-cuda $LEAN,session.use_device_allocator_for_initializers=1 --capi-cuda $LEAN \
      --out "$OUT/mem.json" > /dev/null 2> "$OUT/mem-progress.txt"; echo "mem exit $?"
    $B --provider cuda --precision fp32,fp16 --batch 1 --runs 3 --cold 3 --cold-cuda-options cudnn_conv_algo_search=HEURISTIC \
      --cold-cuda-options cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=1 --cold-cuda-options cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0 \
      --out "$OUT/cold2.json" > /dev/null 2> "$OUT/cold2-progress.txt"; echo "cold exit $?"
    grep "end to end" "$OUT/e2e2-progress.txt"; grep -v "^cold" "$OUT/mem-progress.txt" | grep -v "^\s*$" | cut -c1-400 | tail -20; grep "^cold" "$OUT/cold2-progress.txt"
    ;;
  final2)
    # the final run of 2026-11-30 (second session): the peer (batches 1 and 32), then gpen-lab fp32 and fp16 on its
    # weights: CUDA graphs, the lean set, graphs without ONNX Runtime's optimisations; the Solvay photo with the padded
    # CUDA detector; cold starts per route (the optimised-graph cache: first run writes, later ones hit)
    peer 1,32
    node dist/cli/index.js bench --model /tmp/peer/peer.pth --provider cuda --precision fp32,fp16 --batch 1,32 --runs 20 \
      --capi-cuda enable_cuda_graph=1 --capi-cuda enable_cuda_graph=1,graph_optimization_level=0 --capi-cuda $LEAN \
      --photo assets/Solvay_conference_1927.png --e2e-detector cuda --e2e-runs 5 --cold 4 \
      --cold-cuda-options cudnn_conv_algo_search=HEURISTIC --cold-cuda-options cudnn_conv_algo_search=HEURISTIC,graph_cache=1 \
      --cold-cuda-options cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0 \
      --compare /tmp/peer/peer.in.npy,/tmp/peer/peer.out.npy \
      --peer-native /tmp/peer/native.json --peer-fused /tmp/peer/fused.json --out "$OUT/gpu-bench.json" > "$OUT/bench.txt" 2> "$OUT/bench-progress.txt"
    echo "bench exit $?"; cat "$OUT/bench.txt"; grep -v "^cold" "$OUT/bench-progress.txt" | cut -c1-300 | tail -40; grep "^cold" "$OUT/bench-progress.txt"
    ;;
  final3)
    # final2 trimmed (no graph without optimisations, no DEFAULT cold route), after the thread-pool fix and the CUDA
    # graph route for the pipeline; then, in a second process (a crash there cannot take the final JSON with it), the
    # Solvay photo through the C API with CUDA graphs
    peer 1,32
    node dist/cli/index.js bench --model /tmp/peer/peer.pth --provider cuda --precision fp32,fp16 --batch 1,32 --runs 20 \
      --capi-cuda enable_cuda_graph=1 --capi-cuda $LEAN \
      --photo assets/Solvay_conference_1927.png --e2e-detector cuda --e2e-runs 5 --cold 4 \
      --cold-cuda-options cudnn_conv_algo_search=HEURISTIC,graph_cache=1 --cold-cuda-options cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0 \
      --compare /tmp/peer/peer.in.npy,/tmp/peer/peer.out.npy \
      --peer-native /tmp/peer/native.json --peer-fused /tmp/peer/fused.json --out "$OUT/gpu-bench.json" > "$OUT/bench.txt" 2> "$OUT/bench-progress.txt"
    echo "bench exit $?"
    node dist/cli/index.js bench --model /tmp/peer/peer.pth --provider cuda --precision fp16 --batch 32 --runs 5 \
      --photo assets/Solvay_conference_1927.png --e2e-detector cuda --e2e-runs 5 --e2e-cuda-options enable_cuda_graph=1 \
      --out "$OUT/e2e-graph.json" > /dev/null 2> "$OUT/e2e-graph-progress.txt"; echo "e2e graph exit $?"
    cat "$OUT/bench.txt"; grep -v "^cold" "$OUT/bench-progress.txt" | cut -c1-250 | tail -30; grep "^cold" "$OUT/bench-progress.txt"; grep "end to end" "$OUT/e2e-graph-progress.txt"; tail -3 "$OUT/e2e-graph-progress.txt" | cut -c1-600
    ;;
  e2e3)
    # the pipeline through the C API after its runs moved to the JavaScript thread: CUDA graphs and the lean set
    node dist/cli/index.js bench --synthetic 512 --provider cuda --precision fp16 --batch 32 --runs 3 --warmup 1 \
      --photo assets/Solvay_conference_1927.png --e2e-detector cpu --e2e-runs 4 --e2e-cuda-options enable_cuda_graph=1 --e2e-cuda-options $LEAN \
      --out "$OUT/e2e3.json" > /dev/null 2> "$OUT/e2e3-progress.txt"; echo "e2e3 exit $?"; grep "end to end" "$OUT/e2e3-progress.txt" | cut -c1-400
    ;;
  arena)
    # P5: the CUDA arena's slack against the graph's live set (bench/live-set.ts: 161.5 MiB fp16 batch 1); BFC keeps
    # chunks whole up to max_dead_bytes_per_chunk (128 MiB by default): smaller values split them (not yet run)
    # (its first call, s4a, passed --provider '' inside a string and failed: the quotes reached bench as a provider)
    B=(node dist/cli/index.js bench --synthetic 512 --provider '' --precision fp16 --batch 1 --runs 10)
    "${B[@]}" --capi-cuda $LEAN --capi-cuda $LEAN,arena.max_dead_bytes_per_chunk=1048576 \
      --capi-cuda $LEAN,arena.max_dead_bytes_per_chunk=1048576,arena.initial_chunk_size_bytes=1048576 \
      --capi-cuda $LEAN,arena.max_dead_bytes_per_chunk=1048576,gpu_mem_limit=402653184 \
      --out "$OUT/arena.json" > /dev/null 2> "$OUT/arena-progress.txt"; echo "arena exit $?"; grep -v "^\s*$" "$OUT/arena-progress.txt" | cut -c1-300 | tail -20
    ;;
  s4a)
    # (GPEN_LAB_CUDA_PRELOAD, the preload measured here and in s4c, was removed after them: no gain)
    # session 4, first call: (1) what each large library costs to load in a fresh process (python ctypes), (2) cold
    # starts with the warm-up's preload and CUDA's eager module loading, (3) the arena mode, (4) e2e3 with the CUDA
    # detector
    ORTBIN=$(ls -d node_modules/onnxruntime-node/bin/napi-v6/linux/x64)
    python3 - "$ORTBIN" > "$OUT/libprobe.txt" 2>&1 <<'PY'
import ctypes, os, sys, time
d = sys.argv[1]
def load(f):
    a = time.perf_counter()
    try:
        ctypes.CDLL(f, mode=os.RTLD_NOW | os.RTLD_GLOBAL); r = 'ok'
    except OSError as e:
        r = str(e)[:160]
    print(f'{(time.perf_counter() - a) * 1000:8.1f} ms  load {f}  {r}', flush=True)
def maps():
    return sorted({l.split()[-1].split('/')[-1] for l in open('/proc/self/maps') if 'libcudnn' in l or 'libcublas' in l or 'onnxruntime' in l})
a = time.perf_counter(); rt = ctypes.CDLL('libcudart.so.13'); rt.cudaFree(None); print(f'{(time.perf_counter() - a) * 1000:8.1f} ms  context (cudart + cudaFree(0))')
a = time.perf_counter(); dn = ctypes.CDLL('libcudnn.so.9'); h = ctypes.c_void_p(); rc = dn.cudnnCreate(ctypes.byref(h)); print(f'{(time.perf_counter() - a) * 1000:8.1f} ms  cudnnCreate rc={rc}; mapped: {maps()}')
a = time.perf_counter(); bl = ctypes.CDLL('libcublas.so.13'); hb = ctypes.c_void_p(); rc = bl.cublasCreate_v2(ctypes.byref(hb)); print(f'{(time.perf_counter() - a) * 1000:8.1f} ms  cublasCreate rc={rc}; mapped: {maps()}')
for f in ['libcudnn_graph.so.9', 'libcudnn_engines_precompiled.so.9', 'libcudnn_engines_runtime_compiled.so.9', 'libcudnn_heuristic.so.9', 'libcudnn_ops.so.9', 'libcudnn_cnn.so.9', 'libcudnn_adv.so.9', 'libcublasLt.so.13', d + '/libonnxruntime_providers_shared.so', d + '/libonnxruntime_providers_cuda.so']:
    load(f)
print('mapped at the end:', maps())
PY
    (ldconfig -p | grep -E "libcudnn|libcublas" | awk '{print $NF}' | xargs ls -laL; ls -laL "$ORTBIN") >> "$OUT/libprobe.txt" 2>&1
    cat "$OUT/libprobe.txt" | head -30
    C="node dist/cli/index.js bench --synthetic 512 --provider cuda --precision fp16 --batch 1 --runs 3 --warmup 1 --cold 3 --no-cold-binding --cold-cuda-options cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0"
    $C --out "$OUT/cold-base.json" > /dev/null 2> "$OUT/cold-base.txt"; echo "cold base exit $?"
    GPEN_LAB_CUDA_PRELOAD=1 $C --out "$OUT/cold-preload.json" > /dev/null 2> "$OUT/cold-preload.txt"; echo "cold preload exit $?"
    CUDA_MODULE_LOADING=EAGER $C --out "$OUT/cold-eager.json" > /dev/null 2> "$OUT/cold-eager.txt"; echo "cold eager exit $?"
    CUDA_MODULE_LOADING=EAGER GPEN_LAB_CUDA_PRELOAD=1 $C --out "$OUT/cold-eager-preload.json" > /dev/null 2> "$OUT/cold-eager-preload.txt"; echo "cold eager+preload exit $?"
    grep -h "^cold" "$OUT"/cold-*.txt
    bash "$0" arena
    node dist/cli/index.js bench --synthetic 512 --provider cuda --precision fp16 --batch 32 --runs 3 --warmup 1 \
      --photo assets/Solvay_conference_1927.png --e2e-detector cuda --e2e-runs 5 --e2e-cuda-options enable_cuda_graph=1 --e2e-cuda-options $LEAN \
      --out "$OUT/e2e4.json" > /dev/null 2> "$OUT/e2e4-progress.txt"; echo "e2e4 exit $?"; grep "end to end" "$OUT/e2e4-progress.txt" | cut -c1-400
    ;;
  s4b)
    # session 4, second call: a GPEN session's first runs node by node in fresh processes (bench/first-run.ts), fp16 and
    # fp32, HEURISTIC and DEFAULT; then the arena mode
    for v in "fp16 cudnn_conv_algo_search=HEURISTIC" "fp16 cudnn_conv_algo_search=DEFAULT" "fp32 cudnn_conv_algo_search=HEURISTIC" "fp16 cudnn_conv_algo_search=HEURISTIC"; do
      set -- $v
      node --import tsx bench/first-run.ts 512 "$1" cuda "$2" > "$OUT/first-run-$1-${2#*=}.json" 2> "$OUT/first-run-err.txt"; echo "first-run $v exit $?"
      python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(round(d['createMs']), [round(x,1) for x in d['runMs']], {k: round(v,1) for k,v in d['nodeMs'].items()}); [print('  ', o) for o in d['byOp'][:8]]; [print('  ', n) for n in d['slowestFirst'][:10]]" "$OUT/first-run-$1-${2#*=}.json"
    done
    tail -5 "$OUT/first-run-err.txt"
    bash "$0" arena
    ;;
  s4c)
    # session 4, third call: cold starts with the primer (prime=1: the graph without its weights, run beside the
    # session; its first cold run writes the primer to the cache), with and without the warm-up's preload; the arena
    # through an allocator registered with the environment; the first-run profile of a second fresh process
    C=(node dist/cli/index.js bench --synthetic 512 --provider cuda --precision fp16 --batch 1 --runs 3 --warmup 1 --cold 4 --no-cold-binding)
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    "${C[@]}" --cold-cuda-options $H --cold-cuda-options $H,prime=1 --out "$OUT/cold-prime.json" > /dev/null 2> "$OUT/cold-prime.txt"; echo "cold prime exit $?"
    GPEN_LAB_CUDA_PRELOAD=1 "${C[@]}" --cold-cuda-options $H,prime=1 --out "$OUT/cold-prime-preload.json" > /dev/null 2> "$OUT/cold-prime-preload.txt"; echo "cold prime+preload exit $?"
    grep -h "^cold" "$OUT/cold-prime.txt" "$OUT/cold-prime-preload.txt"
    bash "$0" arena
    ;;
  s4d)
    # session 4, fourth call: the arena again, now that the registered allocator carries the provider's extend
    # strategy and limit (s4c's grew in powers of two: ONNX Runtime takes both from the arena configuration alone);
    # cold starts with the primer, and with initializers allocated outside the arena
    B=(node dist/cli/index.js bench --synthetic 512 --provider '' --precision fp16 --batch 1 --runs 10)
    "${B[@]}" --capi-cuda $LEAN --capi-cuda $LEAN,arena.max_dead_bytes_per_chunk=1048576 \
      --capi-cuda $LEAN,arena.max_dead_bytes_per_chunk=1048576,arena.initial_chunk_size_bytes=1048576 \
      --capi-cuda $LEAN,arena.max_dead_bytes_per_chunk=1048576,gpu_mem_limit=402653184 \
      --capi-cuda $LEAN,arena.max_dead_bytes_per_chunk=1048576,session.use_device_allocator_for_initializers=1 \
      --out "$OUT/arena2.json" > /dev/null 2> "$OUT/arena2-progress.txt"; echo "arena exit $?"; grep -v "^\s*$" "$OUT/arena2-progress.txt" | cut -c1-300 | tail -12
    C=(node dist/cli/index.js bench --synthetic 512 --provider cuda --precision fp16 --batch 1 --runs 3 --warmup 1 --cold 4 --no-cold-binding)
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0,prime=1
    "${C[@]}" --cold-cuda-options $H --cold-cuda-options $H,session.use_device_allocator_for_initializers=1 --out "$OUT/cold-prime2.json" > /dev/null 2> "$OUT/cold-prime2.txt"; echo "cold exit $?"
    grep -h "^cold" "$OUT/cold-prime2.txt"
    ;;
  final4)
    # the final run of 2026-11-30 (fourth session): the peer (batches 1 and 32), then gpen-lab fp32 and fp16 on its
    # weights: CUDA graphs, the lean set (with the arena's own figures); the Solvay photo with the CUDA detector (its
    # inputs filled by the face workers); cold starts through the binding and the C API, with and without the primer
    # (prime=1; the first primed cold start of each precision writes the primer to the cache)
    peer 1,32
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    final_bench 5 4 --cold-cuda-options $H --cold-cuda-options $H,prime=1
    ;;
  s4e)
    # session 4, after the final run: what fills the CUDA arena's peak in use (542 MiB at fp16 batch 1 against a live
    # set of ~300 MiB with the weights): weights outside the arena (the arena then holds activations and workspaces
    # only), without ONNX Runtime's graph optimisations, and with DEFAULT search (cuDNN's implicit GEMM, the smallest
    # workspaces)
    I=session.use_device_allocator_for_initializers=1
    B=(node dist/cli/index.js bench --synthetic 512 --provider '' --precision fp16 --batch 1 --runs 5)
    "${B[@]}" --capi-cuda $LEAN,$I --capi-cuda $LEAN,$I,graph_optimization_level=0 \
      --capi-cuda cudnn_conv_algo_search=DEFAULT,arena_extend_strategy=kSameAsRequested,cudnn_conv_use_max_workspace=0,mem_pattern=0,$I \
      --out "$OUT/arena3.json" > /dev/null 2> "$OUT/arena3-progress.txt"; echo "arena exit $?"; grep -v "^\s*$" "$OUT/arena3-progress.txt" | cut -c1-400 | tail -8
    ;;
  s4f)
    # session 4: the primer in parts run side by side (prime=N; the first cold start of each N runs the whole primer
    # with the profiler and writes the parts): does first-use work run in parallel on several threads?
    C=(node dist/cli/index.js bench --synthetic 512 --provider cuda --precision fp16,fp32 --batch 1 --runs 3 --warmup 1 --cold 5 --no-cold-binding)
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    "${C[@]}" --cold-cuda-options $H,prime=1 --cold-cuda-options $H,prime=2 --cold-cuda-options $H,prime=4 --out "$OUT/cold-parts.json" > /dev/null 2> "$OUT/cold-parts.txt"; echo "cold exit $?"
    grep -h "^cold" "$OUT/cold-parts.txt"
    ;;
  final5)
    # final4 again after the primer in parts (prime=N): cold starts through the binding and the C API, without the
    # primer, with one and with four parts (the first primed cold start of each precision writes the primer, the
    # first with prime=4 its parts)
    peer 1,32
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    final_bench 5 5 --cold-cuda-options $H --cold-cuda-options $H,prime=1 --cold-cuda-options $H,prime=4
    ;;
  final6)
    # final5 after the early session (restore --cuda-options with an ONNX file starts its session before node's
    # modules load), trimmed to the budget left: cold starts through the binding and the C API with and without the
    # primer (the first primed cold start of each precision writes the primer)
    peer 1,32
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    final_bench 3 4 --cold-cuda-options $H --cold-cuda-options $H,prime=1
    ;;
  s5a)
    # session 5: P5 through CUDA's stream-ordered pool (arena.use_cuda_mempool=1; its release threshold high, so that
    # the pool keeps its peak and the driver's figure after the runs is the peak), against the lean set's BFC arena,
    # with and without the weights outside it; then the early session A/B (cold starts taking turns with and without)
    M=arena.use_cuda_mempool=1,arena.cuda_mempool_release_threshold=8589934592
    I=session.use_device_allocator_for_initializers=1
    B=(node dist/cli/index.js bench --synthetic 512 --provider '' --precision fp16 --batch 1 --runs 10)
    "${B[@]}" --capi-cuda $LEAN --capi-cuda $LEAN,$M --capi-cuda $LEAN,$M,$I --capi-cuda cudnn_conv_algo_search=HEURISTIC,$M \
      --out "$OUT/mempool.json" > /dev/null 2> "$OUT/mempool-progress.txt"; echo "mempool exit $?"; grep -v "^\s*$" "$OUT/mempool-progress.txt" | cut -c1-400 | tail -12
    C=(node dist/cli/index.js bench --synthetic 512 --provider cuda --precision fp16,fp32 --batch 1 --runs 3 --warmup 1 --cold 4 --no-cold-binding --cold-without-early-session)
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    "${C[@]}" --cold-cuda-options $H,prime=1 --out "$OUT/cold-early.json" > /dev/null 2> "$OUT/cold-early.txt"; echo "cold exit $?"
    grep -h "^cold" "$OUT/cold-early.txt"
    ;;
  s5b)
    # session 5: what sets P5, one bench process per pool (CUDA's pool cannot be unregistered): cuDNN's search with a
    # 32 MiB workspace cap (EXHAUSTIVE with cudnn_conv_use_max_workspace=0) against HEURISTIC's unbounded choice,
    # ONNX Runtime's graph optimisations off, the arena without dead bytes, in one 448 MiB region, memory patterns,
    # CUDA's pool; then cold starts with the new timeline marks
    X=cudnn_conv_algo_search=EXHAUSTIVE,arena_extend_strategy=kSameAsRequested,cudnn_conv_use_max_workspace=0,mem_pattern=0
    M=arena.use_cuda_mempool=1,arena.cuda_mempool_release_threshold=8589934592
    D=arena.max_dead_bytes_per_chunk=1048576
    B=(node dist/cli/index.js bench --synthetic 512 --provider '' --precision fp16 --batch 1 --runs 5)
    "${B[@]}" --capi-cuda $LEAN --capi-cuda $X --capi-cuda $LEAN,graph_optimization_level=0 --capi-cuda $X,graph_optimization_level=0 \
      --capi-cuda $X,graph_optimization_level=0,$D --capi-cuda $X,graph_optimization_level=0,$D,arena.initial_chunk_size_bytes=469762048 \
      --capi-cuda ${X/mem_pattern=0/mem_pattern=1},graph_optimization_level=0 \
      --out "$OUT/p5.json" > /dev/null 2> "$OUT/p5-progress.txt"; echo "p5 exit $?"; grep "batch 1:" "$OUT/p5-progress.txt" | cut -c1-400
    "${B[@]}" --capi-cuda $X,graph_optimization_level=0,$M --out "$OUT/p5-pool-x.json" > /dev/null 2> "$OUT/p5-pool-x.txt"; grep "batch 1:" "$OUT/p5-pool-x.txt" | cut -c1-400
    "${B[@]}" --capi-cuda $LEAN,graph_optimization_level=0,$M --out "$OUT/p5-pool-h.json" > /dev/null 2> "$OUT/p5-pool-h.txt"; grep "batch 1:" "$OUT/p5-pool-h.txt" | cut -c1-400
    C=(node dist/cli/index.js bench --synthetic 512 --provider cuda --precision fp32,fp16 --batch 1 --runs 3 --warmup 1 --cold 4 --no-cold-binding)
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    "${C[@]}" --cold-cuda-options $H,prime=1 --out "$OUT/cold-marks.json" > /dev/null 2> "$OUT/cold-marks.txt"; echo "cold exit $?"
    grep -h "^cold" "$OUT/cold-marks.txt"
    ;;
  s5c)
    # session 5: cold starts after the paste/encoder warm-up and the placement read off the first run's path, with the
    # session's own profile (model loading, initialisation) in each run's timeline; without the primer too
    C=(node dist/cli/index.js bench --synthetic 512 --provider cuda --precision fp32,fp16 --batch 1 --runs 3 --warmup 1 --cold 5 --no-cold-binding)
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    "${C[@]}" --cold-cuda-options $H,prime=1 --cold-cuda-options $H --out "$OUT/cold-c.json" > /dev/null 2> "$OUT/cold-c.txt"; echo "cold exit $?"
    grep -h "^cold" "$OUT/cold-c.txt"
    ;;
  s5d)
    # session 5: the session made from ONNX Runtime's own format, mapped into memory (graph_cache=ort; the first cold
    # start of each precision writes it), with and without the primer, beside the primer alone
    C=(node dist/cli/index.js bench --synthetic 512 --provider cuda --precision fp32,fp16 --batch 1 --runs 3 --warmup 1 --cold 5 --no-cold-binding)
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    "${C[@]}" --cold-cuda-options $H,prime=1 --cold-cuda-options $H,prime=1,graph_cache=ort --cold-cuda-options $H,graph_cache=ort \
      --out "$OUT/cold-d.json" > /dev/null 2> "$OUT/cold-d.txt"; echo "cold exit $?"
    grep -h "^cold" "$OUT/cold-d.txt"
    ;;
  s5e)
    # session 5: s5d after the early session's imports were trimmed (capi-model.js 120 -> 30 ms on this machine) and
    # the primer's cached graph is read without yielding (its session asked for with the real one's)
    C=(node dist/cli/index.js bench --synthetic 512 --provider cuda --precision fp32,fp16 --batch 1 --runs 3 --warmup 1 --cold 5 --no-cold-binding)
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    "${C[@]}" --cold-cuda-options $H,prime=1,graph_cache=ort --cold-cuda-options $H,graph_cache=ort --cold-cuda-options $H,prime=1 \
      --out "$OUT/cold-e.json" > /dev/null 2> "$OUT/cold-e.txt"; echo "cold exit $?"
    grep -h "^cold" "$OUT/cold-e.txt"
    ;;
  s5f)
    # session 5: s5e after the first run went to a worker thread (the paste warms up meanwhile) and the graph cache is
    # looked up without yielding
    C=(node dist/cli/index.js bench --synthetic 512 --provider cuda --precision fp16,fp32 --batch 1 --runs 3 --warmup 1 --cold 5 --no-cold-binding)
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    "${C[@]}" --cold-cuda-options $H,prime=1,graph_cache=ort --cold-cuda-options $H,graph_cache=ort \
      --out "$OUT/cold-f.json" > /dev/null 2> "$OUT/cold-f.txt"; echo "cold exit $?"
    grep -h "^cold" "$OUT/cold-f.txt"
    ;;
  final7)
    # the final run of 2026-11-30 (fifth session): the peer (batches 1 and 32), then gpen-lab fp32 and fp16 on its
    # weights (CUDA graphs, the lean set, the photo with the CUDA detector), cold starts through the C API with the
    # primer and the session from ONNX Runtime's format (graph_cache=ort), each alone and together (the first cold
    # start of each writes its caches); then P5 through CUDA's pool, fp16 alone in its own process (a pool cannot be
    # unregistered, so a second variant in the same process would find the first one's memory)
    peer 1,32
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    final_bench 5 5 --no-cold-binding --cold-cuda-options $H,prime=1,graph_cache=ort --cold-cuda-options $H,prime=1 --cold-cuda-options $H,graph_cache=ort
    p5_pool
    ;;
  s5g)
    # session 5: P5 without an arena (allocator=exact: cudaMalloc/cudaFree per tensor through the CUDA provider's
    # gpu_external_alloc/free), with and without graph optimisations, cuDNN's search capped at 32 MiB. Measured: the
    # provider never called the allocator (the C API's V2 provider options have no field for it) and took the
    # default arena; allocator=exact has since been removed, so this mode no longer runs as it did
    E=cudnn_conv_use_max_workspace=0,mem_pattern=0,allocator=exact
    B=(node dist/cli/index.js bench --synthetic 512 --provider '' --precision fp16 --batch 1 --runs 10)
    "${B[@]}" --capi-cuda cudnn_conv_algo_search=HEURISTIC,$E --capi-cuda cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0,$E \
      --capi-cuda cudnn_conv_algo_search=EXHAUSTIVE,graph_optimization_level=0,$E --capi-cuda $LEAN \
      --out "$OUT/p5-exact.json" > /dev/null 2> "$OUT/p5-exact.txt"; echo "p5 exit $?"; grep -v "^\s*$" "$OUT/p5-exact.txt" | cut -c1-400 | tail -12
    ;;
  s6a)
    # session 6: what each operator costs the first time in a fresh process (bench/first-use.ts: two orders, and the
    # first runs side by side), the first run node by node with the encoder's input conv as a MatMul (now) and as
    # elementwise Mul/Add (GPEN_LAB_ECD0=elementwise: no cuBLAS batched GEMM), then cold starts of both, taking turns
    # (the elementwise form moved cuBLAS Lt's first use to cuDNN's first 1x1 convolution and gained nothing: removed)
    for o in "cast,matmul,add,mul,lrelu,gemm,gemm_nobias,reduce,conv_dw,conv3,convt seq" "cast,gemm,conv3,add,conv_dw,matmul,convt,lrelu,mul,reduce,gemm_nobias seq" \
             "cast,matmul,gemm,conv_dw,conv3,convt,add par" "gemm,gemm_nobias,matmul seq"; do
      set -- $o
      node --import tsx bench/first-use.ts "$1" "$2" cuda 2>> "$OUT/first-use-err.txt" | tee -a "$OUT/first-use.jsonl" | cut -c1-1500; echo "first-use exit $?"
    done
    for v in matmul elementwise matmul elementwise; do
      GPEN_LAB_ECD0=$v node --import tsx bench/first-run.ts 512 fp16 cuda cudnn_conv_algo_search=HEURISTIC > "$OUT/first-run-$v.json" 2>> "$OUT/first-use-err.txt"; echo "first-run $v exit $?"
      python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(round(d['createMs']), [round(x,1) for x in d['runMs']], {k: round(v,1) for k,v in d['nodeMs'].items()}); [print('  ', o) for o in d['byOp'][:6]]; [print('  ', n) for n in d['slowestFirst'][:8]]" "$OUT/first-run-$v.json"
    done
    tail -3 "$OUT/first-use-err.txt"
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    for v in matmul elementwise matmul elementwise; do
      GPEN_LAB_ECD0=$v node dist/cli/index.js bench --synthetic 512 --provider cuda --precision fp16 --batch 1 --runs 3 --warmup 1 --cold 3 --no-cold-binding \
        --cold-cuda-options $H,prime=1,graph_cache=ort --out "$OUT/cold-$v.json" > /dev/null 2> "$OUT/cold-$v.txt"; echo "cold $v exit $?"
      grep -h "^cold" "$OUT/cold-$v.txt"
    done
    ;;
  s6b)
    # session 6: the library primer (one node of each costly first use, at the model's first shapes) run beside the
    # whole primer (GPEN_LAB_PRIME_LIB=1) against the primer alone, taking turns, fp16 and fp32 (no gain: removed)
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    for v in 0 1 0 1 0 1; do
      for p in fp16 fp32; do
        GPEN_LAB_PRIME_LIB=$v node dist/cli/index.js bench --synthetic 512 --provider cuda --precision $p --batch 1 --runs 2 --warmup 1 --cold 3 --no-cold-binding \
          --cold-cuda-options $H,prime=1,graph_cache=ort --out "$OUT/cold-lib$v-$p-$RANDOM.json" > /dev/null 2> "$OUT/cold.txt"; echo "cold lib=$v $p exit $?"
        grep -h "^cold" "$OUT/cold.txt" | sed 's/(C API.*)//'
      done
    done
    ;;
  s6c)
    # session 6: the Solvay photo end to end by route (the stock binding; the C API with EXHAUSTIVE search, lean, CUDA
    # graphs), then one restore with the detector's runs traced (fill, run, decode per run; GPEN_LAB_DETECT_TRACE, an
    # exploration switch removed after s6d)
    node dist/cli/index.js bench --synthetic 512 --provider cuda --precision fp16 --batch 32 --runs 3 --warmup 1 \
      --photo assets/Solvay_conference_1927.png --e2e-detector cuda --e2e-runs 5 \
      --e2e-cuda-options cudnn_conv_algo_search=EXHAUSTIVE,graph_optimization_level=0 --e2e-cuda-options $LEAN,graph_optimization_level=0 \
      --e2e-cuda-options enable_cuda_graph=1 --out "$OUT/e2e-routes.json" > /dev/null 2> "$OUT/e2e.txt"; echo "e2e exit $?"
    grep -h "end to end" "$OUT/e2e.txt" | cut -c1-400
    GPEN_LAB_DETECT_TRACE=1 node dist/cli/index.js bench --synthetic 512 --provider cuda --precision fp16 --batch 32 --runs 1 --warmup 1 \
      --photo assets/Solvay_conference_1927.png --e2e-detector cuda --e2e-runs 2 --out "$OUT/e2e-trace.json" > /dev/null 2> "$OUT/trace.txt"; echo "trace exit $?"
    grep -c detect-trace "$OUT/trace.txt"; grep detect-trace "$OUT/trace.txt" | tail -40
    ;;
  s6d)
    # session 6: the photo end to end after the C API route reads the face workers' crops in place from page-locked
    # memory and the detector runs side by side (tiles beside the whole look, every look at once, inputs filled during
    # runs); A/B in the same call: GPEN_LAB_PIN_HOST=0 (pageable) and GPEN_LAB_DETECT_CONCURRENT=0 (sequential looks;
    # that switch and GPEN_LAB_DETECT_TRACE were removed after)
    E=(node dist/cli/index.js bench --synthetic 512 --provider cuda --precision fp16 --batch 32 --runs 2 --warmup 1 --photo assets/Solvay_conference_1927.png --e2e-detector cuda --e2e-runs 7)
    for v in "1 1" "0 1" "1 0" "1 1" "0 0"; do
      set -- $v
      GPEN_LAB_PIN_HOST=$1 GPEN_LAB_DETECT_CONCURRENT=$2 "${E[@]}" --e2e-cuda-options enable_cuda_graph=1 --out "$OUT/e2e-pin$1-conc$2-$RANDOM.json" > /dev/null 2> "$OUT/e2e.txt"; echo "e2e pin=$1 concurrent=$2 exit $?"
      grep -h "end to end" "$OUT/e2e.txt" | sed 's/(detector on cuda, C API {"enable_cuda_graph":"1"})/C API graph/; s/(detector on cuda)/stock/' | cut -c1-300
    done
    GPEN_LAB_DETECT_TRACE=1 "${E[@]}" --e2e-runs 2 --e2e-cuda-options enable_cuda_graph=1 --out "$OUT/e2e-trace.json" > /dev/null 2> "$OUT/trace.txt"; echo "trace exit $?"
    grep detect-trace "$OUT/trace.txt" | tail -16
    ;;
  s6e)
    # session 6: the blur as cuDNN runs it: depthwise against grouped and dense convolutions zero off the diagonal
    # (bench/blur.ts), batch 16 and 32
    for b in 16 32; do node --import tsx bench/blur.ts $b 20 2>&1 | tee -a "$OUT/blur.jsonl" | cut -c1-3000; done
    ;;
  s6f)
    # session 6: GPEN-512 fp16 through the C API with CUDA graphs, batch 1 and 32, its blurs grouped (now) against
    # depthwise (GPEN_LAB_BLUR=depthwise, an exploration switch removed after), taking turns
    for v in grouped depthwise grouped depthwise; do
      mkdir -p /tmp/t-$v; TMPDIR=/tmp/t-$v GPEN_LAB_BLUR=$v node dist/cli/index.js bench --synthetic 512 --provider '' --precision fp16 --batch 1,32 --runs 20 --warmup 3 \
        --capi-cuda enable_cuda_graph=1 --out "$OUT/blur-$v-$RANDOM.json" > /dev/null 2> "$OUT/b.txt"; echo "bench $v exit $?"
      grep -h "batch" "$OUT/b.txt" | cut -c1-200 | tail -4
    done
    ;;
  final8)
    # the final run of 2026-11-30 (sixth session): final7's runs, the photo end to end also through the C API with
    # CUDA graphs (the face workers' crops read in place from page-locked memory; the detector's runs side by side)
    peer 1,32
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    final_bench 5 5 --no-cold-binding --e2e-cuda-options enable_cuda_graph=1 --cold-cuda-options $H,prime=1,graph_cache=ort --cold-cuda-options $H,prime=1 --cold-cuda-options $H,graph_cache=ort
    p5_pool
    ;;
  s6g)
    # session 6, after final8 (not run: no device time was left): the fp16 blur's grouped weight made in fp32 and cast (ONNX Runtime can fold it; the fp16
    # Mul warned once per blur in CUDA sessions): the stock binding's warnings and both routes' times
    node dist/cli/index.js bench --synthetic 512 --provider cuda --precision fp16 --batch 1,32 --runs 10 --warmup 2 \
      --capi-cuda enable_cuda_graph=1 --out "$OUT/s6g.json" > "$OUT/s6g.txt" 2> "$OUT/s6g-progress.txt"; echo "bench exit $?"
    cat "$OUT/s6g.txt"; echo "constant-folding warnings: $(grep -c "constant fold" "$OUT/s6g-progress.txt")"
    ;;
  s7a)
    # session 7: the graph without cuBLAS (GPEN_LAB_NO_BLAS=1: linear layers as convolutions with a K x 1 kernel, the
    # input conv as Muls and Adds, ToRGB as a 1x2 kernel): model-only times and constant-folding warnings of both
    # forms (s6g's check comes with the current form), the first run node by node, then cold starts taking turns
    for v in 0 1; do
      mkdir -p /tmp/v$v/cache
      TMPDIR=/tmp/v$v XDG_CACHE_HOME=/tmp/v$v/cache GPEN_LAB_NO_BLAS=$v node dist/cli/index.js bench --synthetic 512 --provider cuda --precision fp16 --batch 1,32 --runs 10 --warmup 2 \
        --capi-cuda enable_cuda_graph=1 --capi-cuda $LEAN --out "$OUT/model-nb$v.json" > "$OUT/model-nb$v.txt" 2> "$OUT/model-nb$v-progress.txt"; echo "bench nb=$v exit $?"
      cat "$OUT/model-nb$v.txt"; echo "constant-folding warnings: $(grep -c "constant fold" "$OUT/model-nb$v-progress.txt")"
      TMPDIR=/tmp/v$v GPEN_LAB_NO_BLAS=$v node --import tsx bench/first-run.ts 512 fp16 cuda cudnn_conv_algo_search=HEURISTIC > "$OUT/first-run-nb$v.json" 2>> "$OUT/first-run-err.txt"; echo "first-run nb=$v exit $?"
      python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(round(d['createMs']), [round(x,1) for x in d['runMs']], {k: round(v,1) for k,v in d['nodeMs'].items()}); [print('  ', o) for o in d['byOp'][:8]]; [print('  ', n) for n in d['slowestFirst'][:8]]" "$OUT/first-run-nb$v.json"
    done
    tail -3 "$OUT/first-run-err.txt"
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    for v in 0 1 0 1; do
      for p in fp32 fp16; do
        TMPDIR=/tmp/v$v XDG_CACHE_HOME=/tmp/v$v/cache GPEN_LAB_NO_BLAS=$v node dist/cli/index.js bench --synthetic 512 --provider cuda --precision $p --batch 1 --runs 2 --warmup 1 --cold 3 --no-cold-binding \
          --cold-cuda-options $H,prime=1,graph_cache=ort --out "$OUT/cold-nb$v-$p-$RANDOM.json" > /dev/null 2> "$OUT/cold.txt"; echo "cold nb=$v $p exit $?"
        grep -h "^cold" "$OUT/cold.txt" | sed 's/(C API.*)//'
      done
    done
    ;;
  s7b)
    # session 7: P5 (fp16 batch 1, the driver's figure beyond the context) by option set, each in its own process, two
    # rounds: the lean set; cuBLAS without its workspace (CUBLAS_WORKSPACE_CONFIG=:0:0); the weights outside the arena
    # (session.use_device_allocator_for_initializers=1); the arena splitting every chunk (max_dead_bytes_per_chunk
    # 1 MiB); all three; the lean set with EXHAUSTIVE search capped at 32 MiB of workspace
    X=cudnn_conv_algo_search=EXHAUSTIVE,arena_extend_strategy=kSameAsRequested,cudnn_conv_use_max_workspace=0,mem_pattern=0
    for r in 1 2; do
      for c in "lean $LEAN" "cublas0 $LEAN" "initdev $LEAN,session.use_device_allocator_for_initializers=1" "dead1m $LEAN,arena.max_dead_bytes_per_chunk=1048576" \
               "all3 $LEAN,session.use_device_allocator_for_initializers=1,arena.max_dead_bytes_per_chunk=1048576" "exh $X"; do
        set -- $c
        W=""; [ "$1" = cublas0 ] || [ "$1" = all3 ] && W=":0:0"
        env ${W:+CUBLAS_WORKSPACE_CONFIG=$W} node dist/cli/index.js bench --synthetic 512 --provider '' --precision fp16 --batch 1 --runs 5 --warmup 1 \
          --capi-cuda "$2" --out /tmp/p5.json > /dev/null 2> /tmp/p5.txt; echo "$1 exit $?"
        grep "batch 1:" /tmp/p5.txt | cut -c1-400
        python3 -c "import json; d=json.load(open('/tmp/p5.json')); v=d['variants'][-1]; print('  P5', round(d['targets']['P5']['value'] or 0,3), 'ctx', v['contextMiB'], 'session', v.get('sessionProcessMiB'), 'b1', v['batch1ProcessMiB'], 'arena', v.get('batch1Arena'), 'ms', round(v['rows'][0]['stats']['median'],2) if v['rows'] else None)"
      done
    done
    ;;
  s7c)
    # session 7: the demodulation and the noise weights carried to the consumers' styles (graph version 3, dist)
    # against graph version 2 (dist-old, built from the commit before), fp16 model only, CUDA graphs and the lean set
    # (P5 with the arena's figures), each in its own process, taking turns
    for d in dist-old dist dist-old dist; do
      node $d/cli/index.js bench --synthetic 512 --provider '' --precision fp16 --batch 1,32 --runs 20 --warmup 3 \
        --capi-cuda enable_cuda_graph=1 --capi-cuda $LEAN --out /tmp/s7c.json > /tmp/s7c.txt 2> /tmp/s7c-progress.txt; echo "$d exit $?"
      grep -v "^P[1-4]" /tmp/s7c.txt | sed 's/{"cudnn_conv_algo_search.*}/lean/'; grep "batch 1:" /tmp/s7c-progress.txt | grep -o "[0-9]* MiB (arena.*"
    done
    ;;
  s7d)
    # session 7: P5 of graph v3 by option set, each in its own process: the lean set; its arena as one initial chunk
    # (544 or 512 MiB, every chunk split: max_dead_bytes_per_chunk 1 MiB); DEFAULT search (cuDNN's workspaces);
    # NHWC; the weights outside the arena with a 352 MiB chunk for the rest
    M=1048576
    for c in "lean $LEAN" "chunk544 $LEAN,arena.initial_chunk_size_bytes=$((544*M)),arena.max_dead_bytes_per_chunk=$M" \
             "chunk512 $LEAN,arena.initial_chunk_size_bytes=$((512*M)),arena.max_dead_bytes_per_chunk=$M" \
             "default ${LEAN/HEURISTIC/DEFAULT}" "nhwc $LEAN,prefer_nhwc=1" "nhwc-chunk512 $LEAN,prefer_nhwc=1,arena.initial_chunk_size_bytes=$((512*M)),arena.max_dead_bytes_per_chunk=$M" \
             "initdev-chunk352 $LEAN,session.use_device_allocator_for_initializers=1,arena.initial_chunk_size_bytes=$((352*M)),arena.max_dead_bytes_per_chunk=$M"; do
      set -- $c
      node dist/cli/index.js bench --synthetic 512 --provider '' --precision fp16 --batch 1 --runs 10 --warmup 2 \
        --capi-cuda "$2" --out /tmp/p5.json > /dev/null 2> /tmp/p5.txt; echo "$1 exit $?"
      grep "batch 1:" /tmp/p5.txt | grep -o "batch 1: .*" | cut -c1-200; grep -i "error" /tmp/p5.txt | head -2 | cut -c1-300
      python3 -c "import json; d=json.load(open('/tmp/p5.json')); v=d['variants'][-1]; print('  P5', round(d['targets']['P5']['value'] or 0,3), 'ctx', v['contextMiB'], 'session', v.get('sessionProcessMiB'), 'b1', v['batch1ProcessMiB'], 'arena', v.get('batch1Arena'))"
    done
    ;;
  s7e)
    # session 7: P5 of graph v3 with the arena as one initial chunk (power-of-two strategy: the as-requested one
    # ignores the initial chunk), later extensions capped at 32 MiB, every chunk split; HEURISTIC with the workspace
    # cap off (does the cap act on HEURISTIC at all?)
    M=1048576; B=cudnn_conv_algo_search=HEURISTIC,cudnn_conv_use_max_workspace=0,mem_pattern=0
    for c in "pow2-512 $B,arena.arena_extend_strategy=0,arena.initial_chunk_size_bytes=$((512*M)),arena.max_power_of_two_extend_bytes=$((32*M)),arena.max_dead_bytes_per_chunk=$M" \
             "pow2-544 $B,arena.arena_extend_strategy=0,arena.initial_chunk_size_bytes=$((544*M)),arena.max_power_of_two_extend_bytes=$((32*M)),arena.max_dead_bytes_per_chunk=$M" \
             "pow2-480 $B,arena.arena_extend_strategy=0,arena.initial_chunk_size_bytes=$((480*M)),arena.max_power_of_two_extend_bytes=$((32*M)),arena.max_dead_bytes_per_chunk=$M" \
             "lean-ws1 ${LEAN/cudnn_conv_use_max_workspace=0/cudnn_conv_use_max_workspace=1}"; do
      set -- $c
      node dist/cli/index.js bench --synthetic 512 --provider '' --precision fp16 --batch 1,32 --runs 10 --warmup 2 \
        --capi-cuda "$2" --out /tmp/p5.json > /dev/null 2> /tmp/p5.txt; echo "$1 exit $?"
      grep "batch [13][2]*:" /tmp/p5.txt | grep -o "batch .*" | cut -c1-200; grep -i "error" /tmp/p5.txt | head -2 | cut -c1-300
      python3 -c "import json; d=json.load(open('/tmp/p5.json')); v=d['variants'][-1]; print('  P5', round(d['targets']['P5']['value'] or 0,3), 'ctx', v['contextMiB'], 'session', v.get('sessionProcessMiB'), 'b1', v['batch1ProcessMiB'], 'arena', v.get('batch1Arena'))"
    done
    ;;
  s7f)
    # session 7: graph v4 (dist: ToRGB as a batched MatMul) against v3 (dist-v3) and v2 (dist-old), fp16 model only
    # (CUDA graphs and the lean set), each in its own process, taking turns; then cold starts of v2 and v4 (fp32, the
    # P3 route), taking turns, each bench's first cold start apart (it writes the caches)
    for d in dist-old dist-v3 dist dist-old dist-v3 dist; do
      node $d/cli/index.js bench --synthetic 512 --provider '' --precision fp16 --batch 1,32 --runs 20 --warmup 3 \
        --capi-cuda enable_cuda_graph=1 --capi-cuda $LEAN --out /tmp/s7f.json > /tmp/s7f.txt 2> /tmp/s7f-progress.txt; echo "$d exit $?"
      grep -v "^P[1-4]" /tmp/s7f.txt | sed 's/{"cudnn_conv_algo_search.*}/lean/'; grep "batch 1:" /tmp/s7f-progress.txt | grep -o "[0-9]* MiB (arena.*"
    done
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    for d in dist-old dist dist-old dist; do
      node $d/cli/index.js bench --synthetic 512 --provider cuda --precision fp32 --batch 1 --runs 2 --warmup 1 --cold 3 --no-cold-binding \
        --cold-cuda-options $H,prime=1,graph_cache=ort --out /tmp/cold.json > /dev/null 2> /tmp/cold.txt; echo "cold $d exit $?"
      grep -h "^cold" /tmp/cold.txt | sed 's/(C API.*)//'
    done
    ;;
  s7g)
    # session 7: graph v5 (dist: ToRGB as a batched MatMul at the two largest resolutions only) model only; then cold
    # starts (fp32, the P3 route) of v2 (dist-old), v3 (dist-v3), v4 (dist-v4) and v5 taking turns, two rounds
    node dist/cli/index.js bench --synthetic 512 --provider '' --precision fp16 --batch 1,32 --runs 20 --warmup 3 \
      --capi-cuda enable_cuda_graph=1 --capi-cuda $LEAN --out /tmp/s7g.json > /tmp/s7g.txt 2> /tmp/s7g-progress.txt; echo "v5 exit $?"
    grep -v "^P[1-4]" /tmp/s7g.txt | sed 's/{"cudnn_conv_algo_search.*}/lean/'; grep "batch 1:" /tmp/s7g-progress.txt | grep -o "[0-9]* MiB (arena.*"
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    for r in 1 2; do
      for d in dist-old dist-v3 dist-v4 dist; do
        node $d/cli/index.js bench --synthetic 512 --provider cuda --precision fp32 --batch 1 --runs 2 --warmup 1 --cold 3 --no-cold-binding \
          --cold-cuda-options $H,prime=1,graph_cache=ort --out /tmp/cold.json > /dev/null 2> /tmp/cold.txt; echo "cold $d round $r exit $?"
        grep -h "^cold" /tmp/cold.txt | sed 's/(C API.*)//' | tr '\n' ' '; echo
      done
    done
    ;;
  s8e)
    # session 8: the detector's tiles filled on the JavaScript thread and its second looks decoding only the anchors
    # that overlap their proposal (dist) against both before (dist-v8c), taking turns
    photo_ab dist-v8c
    ;;
  s8f)
    # session 8: the detector through the C API with CUDA graphs on the C API route (dist) against the stock binding's
    # sessions (dist-v8d), one round (the session's last device time)
    photo_ab dist-v8d 1
    grep -h -i "error\|failed" /tmp/ab.txt | head -5 | cut -c1-400
    ;;
  final9|final10|final11|final12)
    # the final run of the seventh session: final8's runs with graph v5 (the demodulation and the noise weights owed to
    # the consumers, ToRGB as a batched MatMul at 256 and 512 px) and each cold-start route's first (cache-writing)
    # run reported apart; the graph_cache=ort-only route dropped (slower in every call before). final10, the eighth
    # session's: the same runs with graph v6 (negative noise weights folded too), the detector's inputs as bytes, the
    # decode's alpha check in its split and the photo in chunks on the C API route. final11, the ninth session's: the
    # same runs with its changes (padded runs, 15 face workers, PNG stripes, ICC per colour, ...), then one round of
    # the photo A/B against fd0c18d (dist-v9d: before the detector's fill order and halving). final12: final11 again
    # after its fix (a failed cudaHostRegister of the detector's small outputs left CUDA's last error set, and the
    # next session's first run failed with it), without the pool's P5 run and the A/B (final11 has them; device time)
    peer 1,32
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    final_bench 5 5 --no-cold-binding --e2e-cuda-options enable_cuda_graph=1 --cold-cuda-options $H,prime=1,graph_cache=ort --cold-cuda-options $H,prime=1
    [ "$1" = final12 ] && exit 0
    p5_pool
    if [ "$1" = final11 ]; then photo_ab dist-v9d 1; fi
    ;;
  s7h)
    # session 7, after final9: graph v6 (dist: negative noise weights folded too, through a PRelu) against v5
    # (dist-v5) on the peer's weights (noise weights drawn around zero), fp16, each in its own process, two rounds
    export GPEN_SRC=$PWD/.peer/face_model; mkdir -p /tmp/peer
    python3 .peer/torch_gpen.py --size 512 --batches 1 --out /tmp/peer/native.json --save-pth /tmp/peer/peer.pth > "$OUT/peer-native.log" 2>&1; echo "peer exit $?"
    for d in dist-v5 dist dist-v5 dist; do
      node $d/cli/index.js bench --model /tmp/peer/peer.pth --provider '' --precision fp16 --batch 1,32 --runs 20 --warmup 3 \
        --capi-cuda enable_cuda_graph=1 --capi-cuda $LEAN --compare /tmp/peer/peer.in.npy,/tmp/peer/peer.out.npy --out /tmp/s7h.json > /tmp/s7h.txt 2> /tmp/s7h-progress.txt; echo "$d exit $?"
      grep -v "^P[1-4]" /tmp/s7h.txt | sed 's/{"cudnn_conv_algo_search.*}/lean/'; grep "batch 1:\|vs peer" /tmp/s7h-progress.txt | grep -o "vs peer.*\|[0-9]* MiB (arena.*"
    done
    ;;
  s8a)
    # session 8: the photo end to end, the detector's inputs as bytes (the graph maps them to [-1, 1]) and the decode's
    # alpha check folded into its split (dist) against the seventh session's code (dist-v7), taking turns; dist's
    # stages traced (GPEN_LAB_TRACE, an exploration switch: the detector's phases, the paste's parts)
    E=(bench --synthetic 512 --provider cuda --precision fp16 --batch 32 --runs 2 --warmup 1 --photo assets/Solvay_conference_1927.png --e2e-detector cuda --e2e-runs 7 --e2e-cuda-options enable_cuda_graph=1)
    for d in dist-v7 dist dist-v7 dist; do
      GPEN_LAB_TRACE=1 node $d/cli/index.js "${E[@]}" --out /tmp/s8a.json > /dev/null 2> /tmp/s8a.txt; echo "$d exit $?"
      grep -h "end to end" /tmp/s8a.txt | sed 's/(detector on cuda, C API {"enable_cuda_graph":"1"})/C API graph/; s/(detector on cuda)/stock/' | cut -c1-300
      grep -h "^trace" /tmp/s8a.txt | tail -9
    done
    ;;
  s8b)
    # session 8: the detector's runs traced on the photo (GPEN_LAB_TRACE, an exploration switch: per run of each
    # runBatched call, when its fill started and ended, its run, its decoding; ms since the detection started)
    GPEN_LAB_TRACE=1 node dist/cli/index.js bench --synthetic 512 --provider cuda --precision fp16 --batch 32 --runs 2 --warmup 1 --photo assets/Solvay_conference_1927.png \
      --e2e-detector cuda --e2e-runs 3 --e2e-cuda-options enable_cuda_graph=1 --out /tmp/s8b.json > /dev/null 2> /tmp/s8b.txt; echo "exit $?"
    grep -h "end to end" /tmp/s8b.txt | cut -c1-300; grep -h "^trace" /tmp/s8b.txt | tail -16
    ;;
  s8c)
    # session 8: the photo end to end with its 29 faces in three overlapping chunks (dist: the face workers align and
    # paste one chunk while the GPU runs another) against in one go (dist-v8a), taking turns
    photo_ab dist-v8a
    ;;
  s8d)
    # session 8: the detector's inputs filled by the face workers all at once per call (dist) against 16 at a time,
    # each run's beside the run before (dist-v8b), taking turns
    photo_ab dist-v8b
    ;;
  s9a)
    # session 9: a CPU profile of the JavaScript thread over 10 warm Solvay photos on the C API route (graphs), and
    # the stock binding's cost of runs whose batch size changes (scripts/probe-e2e.mjs)
    node scripts/probe-e2e.mjs all 2>&1 | grep -v "^\s*$" | cut -c1-300 | tail -30
    # and the PNG outputs in stripes on the face workers (dist) against libvips (dist-v9a, 126523a), taking turns
    photo_ab dist-v9a
    ;;
  s9b)
    # session 9: the CLI's defaults on CUDA (stock binding, batch 4) before (dist-v9a) and after the padded runs (dist);
    # the batch switches through the C API's lean set; the photo A/B (graphs and stock, dist-v9a against dist: PNG
    # stripes, the detector's decode, the composite on the workers, padded stock runs in chunks); the profile again
    for d in dist-v9a dist; do DIST=$d node scripts/probe-e2e.mjs cli4 2>&1 | grep -v "^\s*$" | cut -c1-300 | tail -5; done
    node scripts/probe-e2e.mjs switch-capi 2>&1 | grep -v "^\s*$" | cut -c1-300 | tail -8
    photo_ab dist-v9a
    node scripts/probe-e2e.mjs profile 2>&1 | grep -v "^\s*$" | cut -c1-300 | tail -10
    ;;
  s9c)
    # session 9: the face workers' count (8, 12, 15, 8 again) on the C API route with CUDA graphs (PNG stripes of 128 KB)
    node scripts/probe-e2e.mjs threads 2>&1 | grep -v "^\s*$" | cut -c1-300 | tail -6
    ;;
  s9d)
    # session 9: the ICC profile per distinct colour, the detector's locked host buffers, the PNG stripes below the
    # faces compressed while the chunks run (dist) against 30a71f8 (dist-v9c: 15 face workers), taking turns
    photo_ab dist-v9c
    ;;
  final13)
    # the final run of the tenth session: final12's runs, and the NHWC route beside them (prefer_nhwc=1 with the graph's
    # NHWC form: MatMuls over NHWC views, dense blurs): C API sets, the photo end to end, a cold-start route
    peer 1,32
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    final_bench 5 5 --no-cold-binding --capi-cuda enable_cuda_graph=1,prefer_nhwc=1 --capi-cuda $LEAN,prefer_nhwc=1 \
      --e2e-cuda-options enable_cuda_graph=1 --e2e-cuda-options enable_cuda_graph=1,prefer_nhwc=1 \
      --cold-cuda-options $H,prime=1,graph_cache=ort --cold-cuda-options $H,prime=1 --cold-cuda-options $H,prime=1,prefer_nhwc=1
    ;;
  final14)
    # final13 after the cold start's imports were cut (onnx-proto, yauzl and onnxruntime-node loaded on first use, the
    # rewritten detector graphs cached on disk, only the invoked command's module loaded), without the sets final13
    # showed slower (the NHWC lean set, the NHWC cold route); then the cold start (fp32, the P3 route) of the code before
    # (dist-v10a, eb05e86) and after, taking turns, two rounds
    peer 1,32
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    final_bench 5 5 --no-cold-binding --capi-cuda enable_cuda_graph=1,prefer_nhwc=1 \
      --e2e-cuda-options enable_cuda_graph=1 --e2e-cuda-options enable_cuda_graph=1,prefer_nhwc=1 \
      --cold-cuda-options $H,prime=1,graph_cache=ort --cold-cuda-options $H,prime=1
    cold_ab dist-v10a
    ;;
  s10d)
    # after final14: the photo end to end on the C API routes (CUDA graphs, NCHW and NHWC; fp32 and fp16; the detector
    # on CUDA through the C API), twice in one process each, where final14's bench aborted (an illegal memory access in
    # a CUDA graph replay, with the early detector since reverted); then the cold start (fp32, the P3 route) before
    # the lazy imports (dist-v10a, eb05e86) and after (dist), taking turns, two rounds
    for r in 1 2; do
      node dist/cli/index.js bench --synthetic 512 --provider cuda --precision fp32,fp16 --batch 1 --runs 2 --warmup 1 --photo assets/Solvay_conference_1927.png \
        --e2e-detector cuda --e2e-runs 5 --e2e-cuda-options enable_cuda_graph=1 --e2e-cuda-options enable_cuda_graph=1,prefer_nhwc=1 --out /tmp/e2e.json > /dev/null 2> /tmp/e2e.txt; echo "e2e round $r exit $?"
      grep -h "end to end\|failure\|rror" /tmp/e2e.txt | grep -v "W:onnxruntime" | cut -c1-250
    done
    cold_ab dist-v10a
    ;;
  s10a)
    # session 10: the GPU's kernels timed by CUPTI (scripts/kernel-profile.py: torch.profiler in the same process as an
    # ONNX Runtime CUDA session through the C API), synthetic GPEN-512 fp16 at batch 32, its blurs as in graph v6 (none
    # merged) against merged into their convolutions from 128 px and from 8 px; then each through the bench (C API,
    # CUDA graphs, batch 1 and 32), taking turns
    for m in 1e9 128 8; do
      GPEN_LAB_MERGE_BLUR=$m node dist/cli/index.js model synth --size 512 --fp16 -o /tmp/m-$m.onnx > /dev/null || echo "synth $m failed"
      python3 scripts/kernel-profile.py /tmp/m-$m.onnx 32 512 3 EXHAUSTIVE > "$OUT/kp-$m.json" 2> "$OUT/kp-$m.err"; echo "profile $m exit $?"; grep -v Warning "$OUT/kp-$m.err" | tail -3 | cut -c1-300
      python3 -c "import json; d=json.load(open('$OUT/kp-$m.json')); print('$m', d['wall_ms_per_run'], d['kernel_ms_per_run'], d['kernels_per_run']); [print('  ', r[1], r[2], r[0][:110]) for r in d['by_name'][:12]]"
    done
    for m in 1e9 128 8 1e9 128 8; do
      node dist/cli/index.js bench --model /tmp/m-$m.onnx --provider '' --precision fp16 --batch 1,32 --runs 20 --warmup 3 --capi-cuda enable_cuda_graph=1 \
        --out /tmp/s10a.json > /tmp/s10a.txt 2> /tmp/s10a-p.txt; echo "bench $m exit $?"; grep -v "^P" /tmp/s10a.txt | head -4
    done
    ;;
  s10b)
    # session 10: the same profile through ONNX Runtime's own NHWC layout (prefer_nhwc=1; cuDNN's NHWC kernels wrapped
    # in NCHW<->NHWC conversions took a quarter of s10a's batch-32 run), EXHAUSTIVE and HEURISTIC, and the bench
    GPEN_LAB_MERGE_BLUR=1e9 node dist/cli/index.js model synth --size 512 --fp16 -o /tmp/m-1e9.onnx > /dev/null || echo "synth failed"
    for a in EXHAUSTIVE HEURISTIC; do
      python3 scripts/kernel-profile.py /tmp/m-1e9.onnx 32 512 3 $a prefer_nhwc=1 > "$OUT/kp-nhwc-$a.json" 2> "$OUT/kp-nhwc-$a.err"; echo "profile $a exit $?"; grep -v Warning "$OUT/kp-nhwc-$a.err" | tail -3 | cut -c1-300
      python3 -c "import json; d=json.load(open('$OUT/kp-nhwc-$a.json')); print('$a', d['wall_ms_per_run'], d['kernel_ms_per_run'], d['kernels_per_run']); [print('  ', r[1], r[2], r[0][:110]) for r in d['by_name'][:16]]"
    done
    node dist/cli/index.js bench --model /tmp/m-1e9.onnx --provider '' --precision fp16 --batch 1,32 --runs 20 --warmup 3 --capi-cuda enable_cuda_graph=1,prefer_nhwc=1 \
      --capi-cuda enable_cuda_graph=1 --out /tmp/s10b.json > /tmp/s10b.txt 2> /tmp/s10b-p.txt; echo "bench exit $?"; grep -v "^P" /tmp/s10b.txt | head -6
    ;;
  s10c)
    # session 10: graph forms under ONNX Runtime's NHWC layout (prefer_nhwc=1, CUDA graphs, batch 1 and 32, synthetic
    # GPEN-512 fp16): A graph v6's form; B the MatMuls over NHWC views (GPEN_LAB_NHWC=1: nothing converted back to
    # NCHW between convolutions); C B with the blurs from 128 px merged into their convolutions; D all merged; E B with
    # the blurs dense; F B with the blurs depthwise. Two rounds taking turns; then CUPTI profiles of C and D
    declare -A V=([A]="GPEN_LAB_MERGE_BLUR=1e9" [B]="GPEN_LAB_NHWC=1 GPEN_LAB_MERGE_BLUR=1e9" [C]="GPEN_LAB_NHWC=1 GPEN_LAB_MERGE_BLUR=128"
      [D]="GPEN_LAB_NHWC=1 GPEN_LAB_MERGE_BLUR=8" [E]="GPEN_LAB_NHWC=1 GPEN_LAB_MERGE_BLUR=1e9 GPEN_LAB_BLUR_GROUP=dense" [F]="GPEN_LAB_NHWC=1 GPEN_LAB_MERGE_BLUR=1e9 GPEN_LAB_BLUR_GROUP=1")
    for v in A B C D E F; do env ${V[$v]} node dist/cli/index.js model synth --size 512 --fp16 -o /tmp/m-$v.onnx > /dev/null || echo "synth $v failed"; done
    for v in A B C D E F A B C D E F; do
      node dist/cli/index.js bench --model /tmp/m-$v.onnx --provider '' --precision fp16 --batch 1,32 --runs 20 --warmup 3 --capi-cuda enable_cuda_graph=1,prefer_nhwc=1 \
        --out /tmp/s10c.json > /tmp/s10c.txt 2> /tmp/s10c-p.txt; echo "bench $v exit $?"; grep -v "^P" /tmp/s10c.txt | cut -f 3,5 | tr '\n' ' '; echo
    done
    for v in C D; do
      python3 scripts/kernel-profile.py /tmp/m-$v.onnx 32 512 3 EXHAUSTIVE prefer_nhwc=1 > "$OUT/kp-$v.json" 2> "$OUT/kp-$v.err"; echo "profile $v exit $?"
      python3 -c "import json; d=json.load(open('$OUT/kp-$v.json')); print('$v', d['wall_ms_per_run'], d['kernel_ms_per_run'], d['kernels_per_run']); [print('  ', r[1], r[2], r[0][:100]) for r in d['by_name'][:14]]"
    done
    ;;
  s11a)
    # session 11: gpen-lab's FusedAct operator (gpen-ops.ts, a PTX kernel): ptxas on its PTX, fused against plain
    # outputs on CUDA (probe-fused.mjs), then synthetic GPEN-512 fp16 in the NHWC form without and with FusedAct (C API,
    # CUDA graphs, batch 1 and 32), taking turns, two rounds; then the Solvay photo end to end on both
    node -e "import('./dist/runtime/act-ptx.js').then((m) => require('fs').writeFileSync('/tmp/act.ptx', m.actPtx()))"
    PTXAS=$(ls /usr/local/cuda*/bin/ptxas 2>/dev/null | head -1); echo "ptxas: ${PTXAS:-none}"
    [ -n "$PTXAS" ] && { $PTXAS -arch=sm_90 /tmp/act.ptx -o /tmp/act.cubin 2>&1 | head -20; echo "ptxas exit ${PIPESTATUS[0]}"; }
    timeout 300 node scripts/probe-fused.mjs 2>&1 | grep -v "W:onnxruntime" | tail -20
    for r in 1 2; do for fa in 0 1; do
      node dist/cli/index.js bench --synthetic 512 --provider '' --precision fp16 --batch 1,32 --runs 20 --warmup 3 --capi-cuda enable_cuda_graph=1,prefer_nhwc=1,fused_act=$fa \
        --out /tmp/s11a.json > /tmp/s11a.txt 2> /tmp/s11a-p.txt; echo "bench fused_act=$fa exit $?"; grep -v "^P" /tmp/s11a.txt | cut -f 3,5 | tr '\n' ' '; echo; grep -i "rror\|fail" /tmp/s11a-p.txt | head -3
    done; done
    node dist/cli/index.js bench --synthetic 512 --provider cuda --precision fp16 --batch 32 --runs 2 --warmup 1 --photo assets/Solvay_conference_1927.png --e2e-detector cuda --e2e-runs 7 \
      --e2e-cuda-options enable_cuda_graph=1,prefer_nhwc=1 --e2e-cuda-options enable_cuda_graph=1,prefer_nhwc=1,fused_act=1 --out /tmp/ab.json > /dev/null 2> /tmp/ab.txt; echo "photo exit $?"
    grep -h "end to end\|rror" /tmp/ab.txt | grep -v "W:onnxruntime" | cut -c1-300
    ;;
  s11b)
    # session 11: s11a's photo run aborted once in its third route (fused) with a CUDA error: the same, twice, logs kept
    photo_routes
    ;;
  s11c)
    # session 11: s11b's abort (CUDA error 717 in a graph replay, the third route of a bench process) pinned down: one
    # Restorer per process (fused; plain NHWC; fused without chunks: one graph), then two in one process as the bench
    N='"enable_cuda_graph":"1","prefer_nhwc":"1"'
    run() { timeout 200 node scripts/probe-fused.mjs photo "$@" > "$OUT/p-$K.txt" 2>&1; echo "$K exit $?"; grep -v "W:onnxruntime" "$OUT/p-$K.txt" | grep -v "^\s*$" | cut -c1-400 | tail -6; }
    K=fused run "[{$N,\"fused_act\":\"1\"}]" true 15
    K=plain run "[{$N}]" true 15
    K=fused-nochunks run "[{$N,\"fused_act\":\"1\"}]" false 15
    K=two run "[{$N},{$N,\"fused_act\":\"1\"}]" true 10
    ;;
  s11d)
    # session 11: after the fix (runs padded to one size on the CUDA-graph route too; a change of size binds under a
    # new graph id): s11c's two Restorers in one process, three times, and s11b's bench photo runs, twice
    N='"enable_cuda_graph":"1","prefer_nhwc":"1"'
    run() { timeout 200 node scripts/probe-fused.mjs photo "$@" > "$OUT/p-$K.txt" 2>&1; echo "$K exit $?"; grep -v "W:onnxruntime" "$OUT/p-$K.txt" | grep -v "^\s*$" | cut -c1-300 | tail -4; }
    for r in 1 2 3; do K=two-$r run "[{$N},{$N,\"fused_act\":\"1\"}]" true 12; done
    photo_routes
    ;;
  final15)
    # the final run of the eleventh session: the peer, then final13's sets with FusedAct beside the NHWC route (C API
    # sets and the photo end to end), after the CUDA-graph route's runs were padded to one size (s11b-s11d). The peer
    # alone with `final15 peer` (a call of its own, for the 600 s limit), then `final15` uses its files while warm
    [ "${2:-}" = peer ] && { peer 1,32; tail -n 2 "$OUT/peer-native.log" "$OUT/peer-fused.log"; exit 0; }
    [ -f /tmp/peer/fused.json ] || peer 1,32
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    final_bench 5 5 --no-cold-binding --capi-cuda enable_cuda_graph=1,prefer_nhwc=1,fused_act=1 --capi-cuda enable_cuda_graph=1,prefer_nhwc=1 \
      --e2e-cuda-options enable_cuda_graph=1,prefer_nhwc=1,fused_act=1 --e2e-cuda-options enable_cuda_graph=1,prefer_nhwc=1 \
      --cold-cuda-options $H,prime=1,graph_cache=ort --cold-cuda-options $H,prime=1
    ;;
  s11e)
    # session 11, after final15 (P5 0.744 from the lean set: the NHWC graph sets' arenas reserved 1023-1025 MiB for a
    # peak in use of 545-559, where final13's reserved 553): P5 (fp16, batch 1, synthetic GPEN-512) of each set in a
    # process of its own, the arena grown by powers of two (the default) and as requested
    G=enable_cuda_graph=1,prefer_nhwc=1
    for set in $G,fused_act=1 $G,fused_act=1,arena_extend_strategy=kSameAsRequested $G $G,arena_extend_strategy=kSameAsRequested; do
      node dist/cli/index.js bench --synthetic 512 --provider '' --precision fp16 --batch 1 --runs 10 --capi-cuda $set --out /tmp/p5.json > /dev/null 2> /tmp/p5.txt; echo "$set exit $?"
      grep "batch 1:" /tmp/p5.txt | cut -c1-300
      python3 -c "import json; d=json.load(open('/tmp/p5.json')); v=d['variants'][0]; print('   context', v['contextMiB'], 'process', v['batch1ProcessMiB'], 'P5 GB', round((v['batch1ProcessMiB']-v['contextMiB'])*1048576/1e9, 3))"
    done
    ;;
  s11f)
    # session 11: s11e's best set (FusedAct, the arena as requested: 0.617 GB) with cuDNN's workspace capped too, P5
    # and its speed (batch 1 and 32) in a process of its own each
    G=enable_cuda_graph=1,prefer_nhwc=1,fused_act=1,arena_extend_strategy=kSameAsRequested
    for set in $G,cudnn_conv_use_max_workspace=0 $G; do
      node dist/cli/index.js bench --synthetic 512 --provider '' --precision fp16 --batch 1,32 --runs 10 --capi-cuda $set --out /tmp/p5.json > /dev/null 2> /tmp/p5.txt; echo "$set exit $?"
      grep "batch 1:\|batch 32:" /tmp/p5.txt | cut -c1-300
      python3 -c "import json; d=json.load(open('/tmp/p5.json')); v=d['variants'][0]; print('   context', v['contextMiB'], 'process', v['batch1ProcessMiB'], 'P5 GB', round((v['batch1ProcessMiB']-v['contextMiB'])*1048576/1e9, 3))"
    done
    ;;
  s11g)
    # session 11: FusedAct's compute callback returning a status (OrtCustomOp version 16, KernelComputeV2): the quick
    # probe (fp16, CUDA graphs, batch 3) and the bench line (b1, b32)
    QUICK=1 timeout 120 node scripts/probe-fused.mjs 2>&1 | grep -v "W:onnxruntime" | tail -4
    node dist/cli/index.js bench --synthetic 512 --provider '' --precision fp16 --batch 1,32 --runs 10 --capi-cuda enable_cuda_graph=1,prefer_nhwc=1,fused_act=1 \
      --out /tmp/g.json > /tmp/g.txt 2> /tmp/g-p.txt; echo "bench exit $?"; grep -v "^P" /tmp/g.txt | cut -f 3,5 | tr '\n' ' '; echo
    ;;
  s12a)
    # session 12: P5 (fp16, batch 1, synthetic GPEN-512, FusedAct with CUDA graphs) per arena set, a process each: the
    # arena as requested (s11e's 0.617 GB: reserved 623 MiB for 470 in use) with memory patterns off, with every free
    # chunk split, both, one initial chunk grown by small steps, the weights outside the arena; then the photo's
    # JavaScript thread profiled on the fused route (scripts/probe-e2e.mjs profile)
    G=enable_cuda_graph=1,prefer_nhwc=1,fused_act=1
    S=$G,arena_extend_strategy=kSameAsRequested
    for set in $S $S,mem_pattern=0 $S,arena.max_dead_bytes_per_chunk=0 $S,mem_pattern=0,arena.max_dead_bytes_per_chunk=0 \
      $G,arena.initial_chunk_size_bytes=503316480,arena.max_dead_bytes_per_chunk=0,arena.max_power_of_two_extend_bytes=16777216 \
      $G,mem_pattern=0,arena.initial_chunk_size_bytes=503316480,arena.max_dead_bytes_per_chunk=0,arena.max_power_of_two_extend_bytes=16777216 \
      $S,session.use_device_allocator_for_initializers=1 $S,mem_pattern=0,session.use_device_allocator_for_initializers=1; do
      node dist/cli/index.js bench --synthetic 512 --provider '' --precision fp16 --batch 1 --runs 10 --capi-cuda $set --out /tmp/p5.json > /dev/null 2> /tmp/p5.txt; echo "$set exit $?"
      grep "batch 1:" /tmp/p5.txt | cut -c1-200
      python3 -c "import json; d=json.load(open('/tmp/p5.json')); v=d['variants'][0]; print('   context', v['contextMiB'], 'process', v['batch1ProcessMiB'], 'arena', v.get('batch1Arena'), 'P5 GB', round((v['batch1ProcessMiB']-v['contextMiB'])*1048576/1e9, 3))"
    done
    PROBE_CUDA_OPTIONS=$G node scripts/probe-e2e.mjs profile 2>&1 | grep -v "^\s*$" | grep -v "W:onnxruntime" | cut -c1-300 | tail -12
    node scripts/profile-summary.mjs "$OUT/main.cpuprofile" 40 2>&1 | cut -c1-200
    ;;
  s12b)
    # session 12: the photo on the fused C API route (scripts/probe-detector.mjs, 10 warm photos a process): the
    # eleventh session's build (dist-s11) and this one's taking turns (grey decode through a per-profile table, the
    # detector's runs from the staging buffer, its outputs locked), two rounds; then the detector's batch 32, 48, 64
    for r in 1 2; do for d in dist-s11 dist; do DIST=$d node scripts/probe-detector.mjs 16 2>&1 | grep "detector batch\|rror" | cut -c1-400; done; done
    for b in 32 48 64; do node scripts/probe-detector.mjs $b 2>&1 | grep "detector batch\|rror" | cut -c1-400; done
    ;;
  s12c)
    # session 12: the detector's GPU time. Its two models alone at batch 16 and 64 per CUDA option set (HEURISTIC, the
    # default EXHAUSTIVE search, each with prefer_nhwc=1), then the photo with the detector's options varied
    node scripts/probe-detector.mjs 16 > /dev/null 2>&1
    for b in 16 64; do node scripts/probe-detector.mjs $b runs 2>&1 | grep "a run\|rror" | cut -c1-300; done
    for set in cudnn_conv_algo_search=EXHAUSTIVE cudnn_conv_algo_search=HEURISTIC,prefer_nhwc=1 cudnn_conv_algo_search=EXHAUSTIVE,prefer_nhwc=1; do
      PROBE_DETECTOR_CUDA=$set node scripts/probe-detector.mjs 16 2>&1 | grep "detector batch\|rror" | cut -c1-400
    done
    node scripts/probe-detector.mjs 16 2>&1 | grep "detector batch\|rror" | cut -c1-400
    ;;
  s12d)
    # session 12: the photo (scripts/probe-detector.mjs, the detector NHWC now) in three chunks (10, 10, 9) and in two
    # (15, 14: one round of the 15 face workers each), taking turns, two rounds (GPEN_LAB_PIPELINE_CHUNKS_PROBE, an
    # exploration switch, since replaced by restore.ts pipelineChunk)
    for r in 1 2; do for c in 3 2; do GPEN_LAB_PIPELINE_CHUNKS_PROBE=$c node scripts/probe-detector.mjs 16 2>&1 | grep "detector batch\|rror" | sed "s/^/chunks $c: /" | cut -c1-400; done; done
    ;;
  final16)
    # the final run of the twelfth session: the peer (`final16 peer`, a call of its own), then gpen-lab on its weights
    # with every C API variant in a process of its own (--isolate: P5 counted alone), FusedAct with the arena grown as
    # requested and no memory patterns (s12a: 0.583 GB) beside final15's fused set, the photo on the fused route (the
    # detector NHWC, grey decode, two chunks) and final15's cold routes
    [ "${2:-}" = peer ] && { peer 1,32; tail -n 2 "$OUT/peer-native.log" "$OUT/peer-fused.log"; exit 0; }
    [ -f /tmp/peer/fused.json ] || peer 1,32
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    F=enable_cuda_graph=1,prefer_nhwc=1,fused_act=1
    final_bench 7 5 --isolate --no-cold-binding --capi-cuda $F,arena_extend_strategy=kSameAsRequested,mem_pattern=0 --capi-cuda $F \
      --e2e-cuda-options $F --cold-cuda-options $H,prime=1,graph_cache=ort --cold-cuda-options $H,prime=1
    ;;
  s12e)
    # session 12, after final16 (P5 0.617 GB on the peer's weights: reserved 623 MiB for 470 in use, memory patterns off
    # or on): the arena's slack. Each set in a process of its own (synthetic GPEN-512 fp16, batch 1): a free chunk split
    # whenever more than 1 MiB of it would go unused (the default leaves up to 128 MiB), and one initial region of 384,
    # 448 or 512 MiB (grown by powers of two) where freed neighbours merge
    G=enable_cuda_graph=1,prefer_nhwc=1,fused_act=1
    S=$G,arena_extend_strategy=kSameAsRequested
    D=arena.max_dead_bytes_per_chunk=1048576
    for set in $S,mem_pattern=0 $S,mem_pattern=0,$D $S,$D $G,mem_pattern=0,$D,arena.initial_chunk_size_bytes=402653184 \
      $G,mem_pattern=0,$D,arena.initial_chunk_size_bytes=469762048 $G,mem_pattern=0,$D,arena.initial_chunk_size_bytes=536870912; do
      node dist/cli/index.js bench --synthetic 512 --provider '' --precision fp16 --batch 1 --runs 10 --capi-cuda $set --out /tmp/p5.json > /dev/null 2> /tmp/p5.txt; echo "$set exit $?"
      grep "batch 1:" /tmp/p5.txt | cut -c1-200
      python3 -c "import json; d=json.load(open('/tmp/p5.json')); v=d['variants'][0]; print('   context', v['contextMiB'], 'process', v['batch1ProcessMiB'], 'arena', v.get('batch1Arena'), 'P5 GB', round((v['batch1ProcessMiB']-v['contextMiB'])*1048576/1e9, 3))"
    done
    ;;
  final17)
    # final16 with the P5 set of s12e: FusedAct with one initial arena region of 576 MiB for batch 1 (the peak in use
    # is 465-470 MiB: freed neighbours merge in one region), free chunks split beyond 1 MiB unused, no memory patterns
    [ "${2:-}" = peer ] && { peer 1,32; tail -n 2 "$OUT/peer-native.log" "$OUT/peer-fused.log"; exit 0; }
    [ -f /tmp/peer/fused.json ] || peer 1,32
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    F=enable_cuda_graph=1,prefer_nhwc=1,fused_act=1
    final_bench 7 5 --isolate --no-cold-binding --capi-cuda $F,mem_pattern=0,arena.max_dead_bytes_per_chunk=1048576,arena.initial_chunk_size_bytes=603979776 --capi-cuda $F \
      --e2e-cuda-options $F --cold-cuda-options $H,prime=1,graph_cache=ort --cold-cuda-options $H,prime=1
    ;;
  s12f)
    # session 12, after final17 (its P5 set, one initial region of 576 MiB, extended by 1 GiB on the peer's weights: a
    # free chunk too small once, and the next region was the default 1 GiB cap): on the peer's weights (native, batch 1
    # only, for its seeded weights), each set in a process of its own (--isolate), fp16 batch 1
    export GPEN_SRC=$PWD/.peer/face_model
    python3 .peer/torch_gpen.py --size 512 --batches 1 --runs 5 --out /tmp/peer/native.json --save-pth /tmp/peer/peer.pth > "$OUT/peer-native.log" 2>&1; echo "peer native exit $?"
    F=enable_cuda_graph=1,prefer_nhwc=1,fused_act=1,mem_pattern=0,arena.max_dead_bytes_per_chunk=1048576
    node dist/cli/index.js bench --model /tmp/peer/peer.pth --provider '' --precision fp16 --batch 1 --runs 10 --isolate \
      --capi-cuda $F,arena_extend_strategy=kSameAsRequested --capi-cuda $F,arena.initial_chunk_size_bytes=536870912,arena.max_power_of_two_extend_bytes=67108864 \
      --capi-cuda $F,arena.initial_chunk_size_bytes=603979776,arena.max_power_of_two_extend_bytes=67108864 --out /tmp/p5.json > /dev/null 2> /tmp/p5.txt; echo "bench exit $?"
    python3 -c "
import json; d=json.load(open('/tmp/p5.json'))
for v in d['variants']: print(v['capiOptions'], v['ok'], v.get('error'), 'b1', [round(r['stats']['median'],2) for r in v['rows']], 'context', v['contextMiB'], 'process', v['batch1ProcessMiB'], 'arena', v.get('batch1Arena'), 'P5 GB', round((v['batch1ProcessMiB']-v['contextMiB'])*1048576/1e9, 3) if v['batch1ProcessMiB'] else None)"
    ;;
  s12g)
    # session 12: FusedAct's cold start, with the primer (prime=1: the primer's runs on worker threads call the
    # operator's JavaScript back) and without, fp16 synthetic GPEN-512, three cold starts each after the first
    F=enable_cuda_graph=1,prefer_nhwc=1,fused_act=1
    node dist/cli/index.js bench --synthetic 512 --provider cuda --precision fp16 --batch 1 --runs 2 --warmup 1 --cold 3 --no-cold-binding \
      --cold-cuda-options $F,prime=1 --cold-cuda-options $F --out /tmp/cold.json > /dev/null 2> "$OUT/cold.txt"; echo "bench exit $?"
    grep "^cold\|rror" "$OUT/cold.txt" | cut -c1-300
    ;;
  final18|final19)
    # final17 with P5's set that held in s12e and s12f (FusedAct, the arena as requested, free chunks split beyond
    # 1 MiB unused: 0.585 GB on synthetic and on the peer's weights); final19: the same on the thirteenth session's
    # build (cold starts timed by a launcher without CUDA, the profile's placement scanned, images written unsynced)
    [ "${2:-}" = peer ] && { peer 1,32; tail -n 2 "$OUT/peer-native.log" "$OUT/peer-fused.log"; exit 0; }
    [ -f /tmp/peer/fused.json ] || peer 1,32
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    F=enable_cuda_graph=1,prefer_nhwc=1,fused_act=1
    final_bench 7 5 --isolate --no-cold-binding --capi-cuda $F,arena_extend_strategy=kSameAsRequested,arena.max_dead_bytes_per_chunk=1048576 --capi-cuda $F \
      --e2e-cuda-options $F --cold-cuda-options $H,prime=1,graph_cache=ort --cold-cuda-options $H,prime=1
    ;;
  s13a)
    # session 13: where a cold start's time outside the child's own clock goes (spawn to node's clock, from a fresh
    # parent and from one holding CUDA), the P3 route's cold starts with that split, then two cold starts of the same
    # route under node's CPU profiler (the JavaScript thread from start to the written face)
    node scripts/probe-spawn.mjs; echo "probe-spawn exit $?"
    H=cudnn_conv_algo_search=HEURISTIC,graph_optimization_level=0
    node dist/cli/index.js bench --synthetic 512 --provider cuda --precision fp16 --batch 1 --runs 2 --warmup 1 --cold 4 --no-cold-binding \
      --cold-cuda-options $H,prime=1,graph_cache=ort --out "$OUT/cold.json" > /dev/null 2> "$OUT/cold.txt"; echo "bench exit $?"
    grep "^cold\|rror" "$OUT/cold.txt" | cut -c1-300
    mkdir -p "$OUT/prof"
    M=$(ls -t /tmp/gpen-lab-bench-cache/synthetic-gpen-512-s0-fp16*.onnx | head -1); echo "model $M"
    for i in 1 2; do
      node --cpu-prof --cpu-prof-dir="$OUT/prof" --cpu-prof-interval 250 dist/cli/index.js restore assets/demo-face.png -o /tmp/o --model "$M" \
        --provider cuda --batch 1 --json --fp16 --cuda-options $H,prime=1,graph_cache=ort > "$OUT/prof-run$i.json" 2> "$OUT/prof-run$i.txt"; echo "profiled run $i exit $?"
    done
    ls -la "$OUT/prof"
    ;;
  defaults1|defaults2|defaults3)
    # what a user gets without flags, in three calls back to back: (1) the peer's seeded weights, restore with defaults
    # beside the flagged routes (bench/cli-defaults.ts) and serve's /readyz with no flag but the model; (2) the default
    # lab; (3) the peer timed (native, fused) and gpen-lab bench as in final19 (P1-P5), the CLI figures merged in
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
  *) echo "usage: device-bench.sh defaults1|defaults2|defaults3| peer|ours|final|final2|final3|explore|e2e|explore2|e2e3|arena|s4a|s4b|s4c|s4d|final4|s4e|s4f|final5|final6|s5a|s5b|s5c|s5d|s5e|s5f|final7|s5g|s6a|s6b|s6c|s6d|s6e|s6f|final8|s6g|s7a|s7b|s7c|s7d|s7e|s7f|s7g|final9|s7h|s8a|s8b|s8c|s8d|s8e|s8f|final10|s9a|s9b|s9c|s9d|final11|final12|s10a|s10b|s10c|final13|final14|s10d|s11a|s11b|s11c|s11d|final15|s11e|s11f|s11g|s12a|s12b|s12c|s12d|final16|s12e|final17|s12f|s12g|final18|s13a|final19" >&2; exit 2 ;;
esac
