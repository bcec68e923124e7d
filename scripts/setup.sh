#!/usr/bin/env bash
# Installs what the build and tests need, idempotently, and never changes the
# Rust compiler: it uses the toolchain that is already here (the minimum is
# `rust-version` in Cargo.toml), adds only its components, and makes the
# microcontroller targets usable (scripts/thumb-sysroot.sh: rustup's when it
# has them, else built once from rust-src). Safe to run again and again; a
# second run takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v rustc >/dev/null 2>&1 || ! command -v cargo >/dev/null 2>&1; then
  echo "setup: Rust is missing: install it from https://rustup.rs, then re-run." >&2
  exit 1
fi
before="$(rustc -vV)"

# The oldest compiler the workspace builds and tests with (`rust-version` in
# Cargo.toml). An older one is reported, not upgraded: that is the user's call.
want="$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)"
have="$(sed -n 's/^release: \([0-9.]*\).*/\1/p' <<<"$before")"
if [ -n "$want" ] && [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n 1)" != "$want" ]; then
  echo "setup: $(rustc -V) is older than Rust $want, the oldest this project builds with." >&2
  echo "HINT: rustup update stable (or install Rust $want or newer), then re-run." >&2
  exit 1
fi

# rustfmt and clippy for the checks, rust-src for the thumb sysroot. `rustup
# component add` adds to the installed toolchain as it is (no `rustup
# toolchain install`: that upgrades the compiler).
if command -v rustup >/dev/null 2>&1; then
  for c in rustfmt clippy rust-src; do
    rustup component add "$c" >/dev/null 2>&1 ||
      echo "setup: rustup could not add $c to $(rustc -V); continuing without it." >&2
  done
else
  echo "setup: no rustup; using $(rustc -V) with the components it has." >&2
fi

bash scripts/thumb-sysroot.sh ensure

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

# ONNX Runtime, onnx and numpy (PyPI), for scripts/onnx-ort-check.py: the
# ONNX tests (cli/tests/onnx.rs) check every `lasagna import` and `lasagna
# export --onnx` against ONNX Runtime on the MNIST test set. Nothing is
# installed when python3 already imports all three. Otherwise the versions
# the fixtures were made with (onnx/fixtures/make_fixtures.py) go into
# .tools/python (git-ignored; pip --target, like scripts/zigbuild.sh, so a
# system Python that refuses pip installs (PEP 668) is left alone), and the
# tests put that folder on PYTHONPATH. A stamp holds the versions, so a
# second run only compares it.
ORT_PACKAGES="onnxruntime==1.32.0 onnx==1.23.2 numpy==2.4.6"
ort_dir="$PWD/.tools/python"
if ! python3 -c 'import onnxruntime, onnx, numpy' >/dev/null 2>&1 &&
  [ "$(cat "$ort_dir/.installed" 2>/dev/null)" != "$ORT_PACKAGES" ]; then
  echo "setup: installing $ORT_PACKAGES (PyPI) into $ort_dir"
  rm -rf "$ort_dir"
  # shellcheck disable=SC2086 # one word per package
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
    --target "$ort_dir" $ORT_PACKAGES
  echo "$ORT_PACKAGES" >"$ort_dir/.installed"
fi

# zig and cargo-zigbuild (PyPI, into .tools/zigbuild): the GPU bundle is
# linked against glibc 2.28 with them (scripts/gpu-bundle.sh).
bash scripts/zigbuild.sh ensure

if [ "$(rustc -vV)" != "$before" ]; then
  echo "setup: the compiler changed during setup; this is a bug in scripts/setup.sh." >&2
  echo "before:"$'\n'"$before"$'\n'"after:"$'\n'"$(rustc -vV)" >&2
  exit 1
fi
