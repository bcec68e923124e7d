#!/usr/bin/env bash
# cargo-zigbuild and zig, so that scripts/gpu-bundle.sh links the GPU bundle
# against glibc 2.28 (RHEL 8's) instead of the build machine's: linked on
# CI's glibc 2.36, the binaries need GLIBC_2.35 (`hypotf`) and GLIBC_2.34
# (`pthread_create`, `__libc_start_main`) and do not start on Ubuntu 20.04
# (glibc 2.31), RHEL 9 or Amazon Linux 2023 (2.34). zig ships stub libc.so
# files for every glibc version, and cargo-zigbuild makes `zig cc` the
# linker for a target such as `x86_64-unknown-linux-gnu.2.28`; the Rust
# toolchain is not changed.
#
#   bash scripts/zigbuild.sh ensure   # install once (scripts/setup.sh runs it)
#   eval "$(bash scripts/zigbuild.sh env)"
#                                     # ZIGBUILD=<cargo-zigbuild>, CARGO_ZIGBUILD_ZIG_PATH
#
# Both come from PyPI (pip --target into .tools/zigbuild, git-ignored; no
# system install): `ziglang` is zig's official wheel, and `cargo-zigbuild`'s
# wheel is its prebuilt static binary, which installs in seconds where
# `cargo install cargo-zigbuild` compiles it and its dependencies for
# minutes on CI's two cores. The versions are pinned; a stamp holds them and
# this script's hash, so a second run only compares the stamp.
set -euo pipefail
cd "$(dirname "$0")/.."

ZIGBUILD_VERSION="0.24.0"
ZIG_VERSION="0.17.1"
DIR="$PWD/.tools/zigbuild"

log() { echo "zigbuild: $*" >&2; }

ensure() {
  local key stamp
  key="cargo-zigbuild $ZIGBUILD_VERSION ziglang $ZIG_VERSION $(sha256sum "$0" | cut -c1-16)"
  stamp="$DIR/.installed"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] &&
    [ -x "$DIR/bin/cargo-zigbuild" ] && [ -x "$DIR/ziglang/zig" ]; then
    return 0
  fi
  rm -rf "$DIR"
  log "installing cargo-zigbuild==$ZIGBUILD_VERSION and ziglang==$ZIG_VERSION (PyPI) into $DIR"
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
    --target "$DIR" "cargo-zigbuild==$ZIGBUILD_VERSION" "ziglang==$ZIG_VERSION" >&2
  # pip --target keeps the wheels' modes, but say so if a platform wheel was missing.
  if [ ! -x "$DIR/bin/cargo-zigbuild" ] || [ ! -x "$DIR/ziglang/zig" ]; then
    log "pip installed no cargo-zigbuild or zig binary for this platform ($(uname -m))"
    log "HINT: rm -rf $DIR and re-run; or install zig and cargo-zigbuild by hand"
    exit 1
  fi
  echo "$key" >"$stamp"
}

case "${1:-}" in
  ensure)
    ensure
    ;;
  env)
    ensure
    printf 'export ZIGBUILD=%q\n' "$DIR/bin/cargo-zigbuild"
    # cargo-zigbuild would otherwise look for `zig` on PATH or `python3 -m ziglang`.
    printf 'export CARGO_ZIGBUILD_ZIG_PATH=%q\n' "$DIR/ziglang/zig"
    ;;
  *)
    echo "usage: bash scripts/zigbuild.sh ensure|env" >&2
    exit 2
    ;;
esac
