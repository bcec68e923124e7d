#!/usr/bin/env bash
# Builds a self-contained bundle for a GPU machine that has the NVIDIA driver
# but no Rust toolchain (a lent cloud GPU, a lab workstation):
#
#   bash scripts/gpu-bundle.sh [OUT]          # default OUT: gpu-bundle/
#   scp -r gpu-bundle gpu-host: && ssh gpu-host 'gpu-bundle/run.sh results'
#
# OUT holds (under 64 MiB; the script fails if it is not):
#   bin/lasagna        the CLI built with --features cuda
#   bin/cuda_driver    driver smoke test (allocate, copy, launch relu_forward)
#   bin/cuda_parity    the CUDA backend vs the CPU, step by step (MLP, CNN)
#   bin/cuda_bench     GEMM throughput of the PTX kernel (JSON lines)
#   data/mnist/        the four MNIST IDX files
#   peers/             torch_mnist.py, when ../shared/peers has it
#   run.sh             runs all of it; results go to the folder it is given
#
# Building needs no GPU: scripts/cuda-standin.sh supplies cuda.h and a stub
# libcuda.so.1 to link against; on the GPU machine the binaries load the
# driver's own libcuda.so.1.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-gpu-bundle}"
log() { echo "gpu-bundle: $*" >&2; }

eval "$(bash scripts/cuda-standin.sh)"
# The bundle must not carry the stub's path: run.sh runs against the driver.
unset LD_LIBRARY_PATH

log "building lasagna and the GPU test binaries (release, --features cuda)"
cargo build --release --locked -p lasagna-cli --features cuda --bin lasagna
tests=(cuda_driver cuda_parity cuda_bench)
args=()
for t in "${tests[@]}"; do args+=(--test "$t"); done
json="$(cargo test --release --locked -p lasagna-trainer --features cuda --no-run \
  "${args[@]}" --message-format=json 2>/dev/null)"

rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/data/mnist" "$OUT/peers"
strip_to() { objcopy --strip-debug "$1" "$2" 2>/dev/null || cp "$1" "$2"; }
strip_to target/release/lasagna "$OUT/bin/lasagna"
for t in "${tests[@]}"; do
  exe="$(printf '%s\n' "$json" | python3 -c '
import json, sys
name = sys.argv[1]
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == name:
        print(m["executable"])
' "$t" | tail -n 1)"
  if [ -z "$exe" ]; then
    log "cargo did not report the test binary $t"
    exit 1
  fi
  strip_to "$exe" "$OUT/bin/$t"
done
cp data/mnist/*.gz "$OUT/data/mnist/"
if [ -f ../shared/peers/torch_mnist.py ]; then
  cp ../shared/peers/torch_mnist.py "$OUT/peers/"
else
  log "../shared/peers/torch_mnist.py not found: run.sh will skip the PyTorch baselines"
fi
cp scripts/gpu-run.sh "$OUT/run.sh"
chmod +x "$OUT/run.sh" "$OUT"/bin/*

bytes="$(du -sb "$OUT" | cut -f1)"
if [ "$bytes" -gt $((64 * 1024 * 1024)) ]; then
  log "$OUT is $bytes bytes, over the 64 MiB a device session can carry"
  exit 1
fi
log "wrote $OUT ($((bytes / 1024)) KiB). On the GPU machine: $OUT/run.sh RESULTS_DIR"
