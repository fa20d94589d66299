#!/usr/bin/env bash
# On the GPU machine (../shared/device), after the stash calls. Two calls, back to back:
#   bash scripts/device-bench.sh peer     the official PyTorch GPEN-512 (native ops, then fused ops), seeded weights
#                                         saved for gpen-lab; JSON in /tmp/peer and $OUT
#   bash scripts/device-bench.sh ours     gpen-lab bench on the peer's weights (cuda and webgpu, fp32 and fp16), the
#                                         Solvay photo end to end, cold starts, agreement with the peer, P1-P5
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" /tmp/peer
bash .device/bin/setup.sh > "$OUT/setup-kit.txt" 2>&1 || { cat "$OUT/setup-kit.txt"; exit 1; }
. .device/bin/env.sh
case "${1:-}" in
  peer)
    export GPEN_SRC=$PWD/.peer/face_model
    python3 .peer/torch_gpen.py --size 512 --batches 1,8,16,32 --out /tmp/peer/native.json --save-pth /tmp/peer/peer.pth > "$OUT/peer-native.log" 2>&1; echo "peer native exit $?"
    python3 .peer/torch_gpen.py --size 512 --batches 1,8,16,32 --out /tmp/peer/fused.json --fused > "$OUT/peer-fused.log" 2>&1; echo "peer fused exit $?"
    cp /tmp/peer/*.json "$OUT/" 2>/dev/null; tail -3 "$OUT/peer-native.log" "$OUT/peer-fused.log"
    ;;
  ours)
    node dist/cli/index.js bench --model /tmp/peer/peer.pth --provider cuda,webgpu --precision fp32,fp16 --batch 1,8,16,32 --runs 20 \
      --photo assets/Solvay_conference_1927.png --e2e-runs 3 --cold 3 --compare /tmp/peer/peer.in.npy,/tmp/peer/peer.out.npy \
      --peer-native /tmp/peer/native.json --peer-fused /tmp/peer/fused.json --out "$OUT/gpu-bench.json" > "$OUT/bench.txt" 2> "$OUT/bench-progress.txt"
    echo "bench exit $?"; cat "$OUT/bench.txt"; tail -40 "$OUT/bench-progress.txt"
    ;;
  *) echo "usage: device-bench.sh peer|ours" >&2; exit 2 ;;
esac
