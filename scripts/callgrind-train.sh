#!/usr/bin/env bash
# Instructions the CPU backend executes per training step, counted by
# callgrind: repeatable on a shared VM where wall time drifts. Only
# `lasagna_trainer::train::fit` is counted (data loading and setup are not),
# on one core (taskset) so the count does not depend on the core count.
# Usage: bash scripts/callgrind-train.sh MODEL [IMAGES] [LASAGNA-BINARY]
#   MODEL: mlp | cnn | lstm | a TOML file; IMAGES: training images (default 1280 = 20 steps of 64)
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:?usage: callgrind-train.sh MODEL [IMAGES] [BINARY]}"
images="${2:-1280}"
bin="${3:-target/release/lasagna}"
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 1; }
[ -x "$bin" ] || cargo build --release --locked -p lasagna-cli >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A cut-down MNIST (the first IMAGES training images, 100 test images): under
# callgrind, loading 70,000 images and testing on 10,000 takes many minutes.
python3 - "$images" "$tmp/mnist" <<'PY'
import gzip, os, struct, sys
n, out = int(sys.argv[1]), sys.argv[2]
os.makedirs(out)
for name, keep in [("train-images-idx3-ubyte", n), ("train-labels-idx1-ubyte", n),
                   ("t10k-images-idx3-ubyte", 100), ("t10k-labels-idx1-ubyte", 100)]:
    raw = gzip.open(f"data/mnist/{name}.gz").read()
    dims = raw[3]
    shape = list(struct.unpack(f">{dims}I", raw[4:4 + 4 * dims]))
    per = 1
    for d in shape[1:]:
        per *= d
    shape[0] = min(keep, shape[0])
    head = raw[:4] + struct.pack(f">{dims}I", *shape)
    body = raw[4 + 4 * dims: 4 + 4 * dims + shape[0] * per]
    open(f"{out}/{name}", "wb").write(head + body)
PY
taskset -c 0 valgrind --tool=callgrind --collect-atstart=no --toggle-collect='lasagna_trainer::train::fit*' \
  --callgrind-out-file="$tmp/cg.out" \
  "$bin" train --model "$model" --epochs 1 --train-subset "$images" --val 0 \
  --data "$tmp/mnist" --device cpu --seed 1 --quiet --out "$tmp/m.lsn" > "$tmp/log" 2>&1 || { cat "$tmp/log" >&2; exit 1; }
total=$(callgrind_annotate "$tmp/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done {gsub(",", "", $1); print $1; done = 1}')
steps=$(( (images + 63) / 64 ))
echo "callgrind $model: $total instructions in fit over $images images ($steps steps of 64): $(( total / steps )) per step"
callgrind_annotate "$tmp/cg.out" 2>/dev/null | awk -v top="${TOP:-12}" '/file:function/ {on=1; next} on && NF && n < top {print; n++}'
