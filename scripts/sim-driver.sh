#!/usr/bin/env bash
# The fake CUDA driver for running the trainer's `cuda` build without a GPU:
# builds kernels-ptx/sim-driver (a libcuda.so.1 whose device is the PTX
# simulator), links it as .tools/sim-driver/lib64/libcuda.so.1 (git-ignored),
# and prints on stdout the environment to build and run with:
#
#   eval "$(bash scripts/sim-driver.sh)"
#   cargo run -p lasagna-cli --features cuda -- info
#
# The build variables are scripts/cuda-standin.sh's (cust_raw links against
# the stand-in's libcuda.so; the NEEDED entry is libcuda.so.1 either way);
# LD_LIBRARY_PATH then puts the fake driver first, so at run time it shadows
# both the stub and a real driver. Fault injection and the memory cap are
# environment variables read at cuInit: kernels-ptx/sim-driver/README.md.
#
# The driver is built in release: the simulator is an interpreter, and at
# the dev profile's opt-level 0 a training epoch takes many times longer.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="$PWD/.tools/sim-driver/lib64"
log() { echo "sim-driver: $*" >&2; }

bash scripts/cuda-standin.sh
cargo build --locked --release --quiet -p lasagna-sim-driver >&2
built="$PWD/target/release/liblasagna_sim_driver.so"
if [ ! -f "$built" ]; then
  log "cargo built no $built"
  exit 1
fi
mkdir -p "$DIR"
# Links, not copies: a rebuild is picked up without re-running this script.
ln -sf "$built" "$DIR/libcuda.so.1"
ln -sf "$built" "$DIR/libcuda.so"
log "fake libcuda.so.1 (PTX simulator) in $DIR"
printf 'export LD_LIBRARY_PATH=%q${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}\n' "$DIR"
