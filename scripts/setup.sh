#!/usr/bin/env bash
# Installs what the build and tests need, idempotently: the Rust components
# and targets named in rust-toolchain.toml. Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v rustup >/dev/null 2>&1; then
  echo "rustup is missing: install it from https://rustup.rs, then re-run." >&2
  exit 1
fi
# rustup reads rust-toolchain.toml here, so these act on the pinned toolchain.
rustup toolchain install stable --profile minimal >/dev/null 2>&1 || true
rustup component add rustfmt clippy rust-src >/dev/null
rustup target add thumbv7em-none-eabihf thumbv6m-none-eabi >/dev/null

# The emulated Cortex-M4 (QEMU's mps2-an386) and ELF section sizes, for
# the firmware and `lasagna deploy`; a C compiler and pip, for the stand-in
# libcuda (scripts/cuda-standin.sh) and ptxas (scripts/ptxas.sh). Installed
# only when missing.
need=()
command -v qemu-system-arm >/dev/null 2>&1 || need+=(qemu-system-arm)
command -v arm-none-eabi-size >/dev/null 2>&1 || need+=(binutils-arm-none-eabi)
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "setup: installing ${need[*]} (apt)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
