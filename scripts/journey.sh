#!/usr/bin/env bash
# The main job, on a fresh machine: install what is missing (Rust targets,
# QEMU, ARM binutils), train the MNIST MLP on the CPU, export it as int8,
# deploy it to an emulated Cortex-M4 (QEMU mps2-an386) and print the report:
# flash, RAM, instructions per inference, accuracy on the device, and the
# check that every device prediction equals the host engine's.
#
# IMAGES=N picks how many test images run on the device (default: all 10,000).
# Outputs land in out/: mlp.lsn (trained), mlp-int8.lsn (deployed),
# deploy.json (the report, machine-readable).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo build --release --locked -p lasagna-cli
lasagna=target/release/lasagna
mkdir -p out

echo
echo "==> 1/3 train the MLP (784-256-64-10) on MNIST"
"$lasagna" train --model mlp --out out/mlp.lsn --metrics out/mlp-metrics.json

echo
echo "==> 2/3 export it as int8 (BatchNorm folded, calibrated on 1,000 training images)"
"$lasagna" export --model-file out/mlp.lsn --quantize int8 --out out/mlp-int8.lsn

echo
echo "==> 3/3 deploy it to the emulated Cortex-M4"
"$lasagna" deploy --model-file out/mlp-int8.lsn --board qemu-m4 \
  --images "${IMAGES:-10000}" --json out/deploy.json
