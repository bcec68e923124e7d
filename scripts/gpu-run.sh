#!/usr/bin/env bash
# run.sh of the bundle scripts/gpu-bundle.sh builds: on a machine with the
# NVIDIA driver (no Rust needed), runs the GPU checks and benchmarks and
# writes everything into RESULTS_DIR:
#
#   info.txt              `lasagna info`: the device, or why none was found
#   cuda_driver.txt       driver smoke test
#   cuda_parity.txt       CUDA backend vs CPU, step by step, worst mismatches
#   gemm.jsonl            GEMM GFLOP/s of the PTX kernel
#   train-{mlp,cnn}.json  `lasagna train --device cuda`, 5 epochs: per-epoch
#                         seconds, test accuracy; train-cnn-amp.json with --amp
#   gemm.jsonl            also the fp16 tensor-core GEMM (TFLOP/s, 1024-8192)
#   torch.jsonl           the same MLP and CNN in PyTorch (DataLoader, then
#                         preloaded on the GPU) and torch.matmul GEMMs
#   summary.txt           exit status of each step
#
# Every step runs even when an earlier one fails; the exit status is that of
# the first failure.
set -uo pipefail
OUT="${1:?usage: run.sh RESULTS_DIR}"
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$OUT"
export LASAGNA_DATA="$HERE/data/mnist"
# On the GPU machine a missing device is a failure, not a skip.
export LASAGNA_REQUIRE_CUDA=1
status=0
step() {
  local name="$1" out="$2"
  shift 2
  local t0=$SECONDS
  "$@" >"$OUT/$out" 2>"$OUT/$out.err"
  local rc=$?
  echo "$name: rc $rc, $((SECONDS - t0)) s" | tee -a "$OUT/summary.txt"
  if [ $rc -ne 0 ] && [ $status -eq 0 ]; then status=$rc; fi
}
: >"$OUT/summary.txt"
step info info.txt "$HERE/bin/lasagna" info
step cuda_driver cuda_driver.txt "$HERE/bin/cuda_driver" --nocapture
step cuda_parity cuda_parity.txt "$HERE/bin/cuda_parity" --nocapture --test-threads 1
step gemm gemm.jsonl "$HERE/bin/cuda_bench" --ignored --nocapture --test-threads 1
for m in mlp cnn; do
  step "train-$m" "train-$m.txt" "$HERE/bin/lasagna" train --model "$m" --device cuda \
    --epochs 5 --metrics "$OUT/train-$m.json"
done
# Mixed precision (fp16 tensor-core GEMMs, dynamic loss scaling) vs the f32 run above.
step train-cnn-amp train-cnn-amp.txt "$HERE/bin/lasagna" train --model cnn --device cuda \
  --epochs 5 --amp --metrics "$OUT/train-cnn-amp.json"
if [ -f "$HERE/peers/torch_mnist.py" ]; then
  step torch torch.jsonl python3 "$HERE/peers/torch_mnist.py" --data "$LASAGNA_DATA" --epochs 5
fi
exit $status
