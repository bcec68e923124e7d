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
taskset -c 0 valgrind --tool=callgrind --collect-atstart=no --toggle-collect='lasagna_trainer::train::fit*' \
  --callgrind-out-file="$tmp/cg.out" \
  "$bin" train --model "$model" --epochs 1 --train-subset "$images" --val 0 \
  --device cpu --seed 1 --quiet --out "$tmp/m.lsn" > "$tmp/log" 2>&1 || { cat "$tmp/log" >&2; exit 1; }
total=$(callgrind_annotate "$tmp/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done {gsub(",", "", $1); print $1; done = 1}')
steps=$(( (images + 63) / 64 ))
echo "callgrind $model: $total instructions in fit over $images images ($steps steps of 64): $(( total / steps )) per step"
callgrind_annotate "$tmp/cg.out" 2>/dev/null | awk -v top="${TOP:-12}" '/file:function/ {on=1; next} on && NF && n < top {print; n++}'
