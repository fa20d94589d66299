#!/usr/bin/env bash
# Here, from the repository root, after ../shared/device/pack.sh: the CUDA library sets of the cuda-sets lab
# (examples/lab-cuda-sets.yaml) for the GPU machine, which reaches no network. Debian's CUDA 12.4 runtime packages
# (trixie non-free) and libcudart11.0 of CUDA 11.8 (bookworm non-free), fetched with apt-get through a sources list
# and lists of its own (the system's stay as they are); the CUDA 12 build's providers
# (com.github.asus4.onnxruntime.linux-x64-gpu@0.2.1) and its libonnxruntime (onnxruntime-node@1.19.2), both with npm
# pack. One stream in parts sized to the calls, .device/sets-NN/, each with the stream's sums; run.sh's cuda-sets mode
# unpacks.
set -euo pipefail
work=${CUDA_SETS_WORK:-$HOME/.cache/device-kit/cuda-sets}
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/debs" "$work/stream"
printf '%s\n' 'deb http://deb.debian.org/debian trixie non-free' 'deb http://deb.debian.org/debian bookworm non-free' \
  > "$work/apt/sources.list"
touch "$work/apt/status"
apt=(apt-get -q -o "Dir::Etc::SourceList=$work/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
  -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache" -o "Dir::State::Status=$work/apt/status"
  -o APT::Architecture=amd64)
# both suites name a libcurand10: the versions pin each set
debs=(libcudart12=12.4.127~12.4.1-2 libcublas12=12.4.5.8~12.4.1-2 libcublaslt12=12.4.5.8~12.4.1-2
  libcufft11=11.2.1.3~12.4.1-2 libcurand10=11.1.1+~10.3.5.147~12.4.1-2 libnvrtc12=12.4.127~12.4.1-2
  libcudart11.0=11.8.89~11.8.0-5~deb12u1)
if [ "$(ls "$work/debs"/*.deb 2>/dev/null | wc -l)" != "${#debs[@]}" ]; then
  "${apt[@]}" update
  (cd "$work/debs" && "${apt[@]}" download "${debs[@]}")
fi
s=$work/stream
if [ ! -f "$s/ort121-providers.tar.xz" ]; then
  tmp=$(mktemp -d); npm pack com.github.asus4.onnxruntime.linux-x64-gpu@0.2.1 --pack-destination "$tmp" --silent
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/Plugins/Linux/x64
  tar -C "$tmp/package/Plugins/Linux/x64" -cf - libonnxruntime_providers_cuda.so libonnxruntime_providers_shared.so \
    libonnxruntime_providers_tensorrt.so | xz -9 -T2 > "$s/ort121-providers.tar.xz.part"
  mv "$s/ort121-providers.tar.xz.part" "$s/ort121-providers.tar.xz"; rm -rf "$tmp"
fi
if [ ! -f "$s/libonnxruntime.so.1.19.2.xz" ]; then
  tmp=$(mktemp -d); npm pack onnxruntime-node@1.19.2 --pack-destination "$tmp" --silent
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/bin/napi-v3/linux/x64/libonnxruntime.so.1.19.2
  xz -9 -c "$tmp/package/bin/napi-v3/linux/x64/libonnxruntime.so.1.19.2" > "$s/libonnxruntime.so.1.19.2.xz"; rm -rf "$tmp"
fi
rm -rf .device/sets-*
# part sizes fill each call up to the 64 MiB a call carries: the first five ride with pack.sh's payloads (node and
# the GL debs with cuda-03, node_modules with dist, each cuda-0N), the rest alone
tar -C "$work" -cf "$work/sets.tar" debs stream
n=$(python3 - "$work/sets.tar" <<'PY'
import os, sys
src = sys.argv[1]
sizes = [30_000_000, 24_500_000, 10_000_000, 10_000_000, 10_000_000]
with open(src, 'rb') as f:
    i = 0
    while True:
        size = sizes[i] if i < len(sizes) else 62_500_000
        chunk = f.read(size)
        if not chunk:
            break
        d = f'.device/sets-{i:02d}'
        os.makedirs(d, exist_ok=True)
        with open(f'{d}/sets.tar.{i:02d}', 'wb') as o:
            o.write(chunk)
        i += 1
print(i)
PY
)
rm "$work/sets.tar"
(cd .device && sha256sum sets-*/sets.tar.* > "$work/SHA256SUMS")
for d in .device/sets-*; do cp "$work/SHA256SUMS" "$d/"; done
echo "$n parts:"; du -sh .device/sets-*
echo "carry each with .device/bin: bash .device/bin/stash.sh; then run.sh cuda-sets"
