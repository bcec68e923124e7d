#!/usr/bin/env bash
# Estimated H100 training time of the mlp and cnn presets, without a GPU:
# one steady-state training step of each (f32 and --amp) runs through the
# trainer's `fit` and GPU backend on the PTX simulator, every launch is
# recorded, and the roofline model of kernels-ptx/sim/src/cost.rs prices it
# (constants and rules with their sources there). Prints an nsys-like
# per-kernel table per preset and, last, the line
#   H100 estimate: mlp <seconds> s/epoch, cnn <seconds> s/epoch
# (f32; the --amp line is the one before). Release build: the simulation is
# the slow part (minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked --release -p lasagna-trainer --test launch_budget -- \
  --ignored --exact estimate_seconds_per_epoch_on_an_h100 --nocapture --test-threads 1 \
  2>&1 | sed -E 's/^test estimate_seconds_per_epoch_on_an_h100 \.\.\. //' \
  | grep -v -E '^(running [0-9]+ tests?|test result:.*|ok|)$' \
  | awk '/^H100 estimate:/ { last = $0; next } { print } END { if (last == "") exit 1; print last }'
