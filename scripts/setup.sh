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
