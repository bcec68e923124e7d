#!/usr/bin/env bash
# The microcontroller targets' `core`, `alloc` and `compiler_builtins`, when
# the toolchain cannot get them from rustup (docs/toolchain.md says why).
#
#   bash scripts/thumb-sysroot.sh ensure   make both thumb targets usable:
#                                          the toolchain's own when it has
#                                          them or `rustup target add` works,
#                                          else a sysroot built from rust-src
#                                          under .tools/sysroot/ (once per
#                                          compiler; scripts/setup.sh runs it)
#   eval "$(bash scripts/thumb-sysroot.sh env)"
#                                          point cargo's thumb builds at that
#                                          sysroot (prints nothing when the
#                                          toolchain has the targets)
#   bash scripts/thumb-sysroot.sh dir      print the sysroot's path for this
#                                          compiler (whether built or not)
#
# The sysroot's key is the compiler's `release` and `commit-hash` from
# `rustc -vV`; `lasagna deploy` computes the same path
# (deploy/src/rust_target.rs), so keep the two in step.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
targets=(thumbv7em-none-eabihf thumbv6m-none-eabi)

# .tools/sysroot/rustc-<release>-<first 12 of commit-hash>
sysroot_dir() {
  local vv release hash
  vv="$(rustc -vV)"
  release="$(sed -n 's/^release: //p' <<<"$vv")"
  hash="$(sed -n 's/^commit-hash: //p' <<<"$vv")"
  echo "$root/.tools/sysroot/rustc-${release}-${hash:0:12}"
}

# Whether rustc finds `core` for target $1 (in sysroot $2 when given): the
# same question every build asks, answered by compiling an empty no_std crate.
core_found() {
  local t="$1" s="${2:-}" tmp ok=1
  tmp="$(mktemp -d)"
  if echo '#![no_std]' | rustc - --crate-name lasagna_probe --crate-type rlib \
    --emit=metadata --out-dir "$tmp" --target "$t" ${s:+--sysroot "$s"} >/dev/null 2>&1; then
    ok=0
  fi
  rm -rf "$tmp"
  return $ok
}

# Builds core, alloc and compiler_builtins for target $1 from the toolchain's
# rust-src into sysroot $2. -Zbuild-std is unstable, hence RUSTC_BOOTSTRAP=1
# for this one build only; the libraries it makes are used by stable rustc.
build_target() {
  local t="$1" s="$2" src work lib
  src="$(rustc --print sysroot)/lib/rustlib/src/rust/library"
  if [ ! -f "$src/core/Cargo.toml" ]; then
    echo "thumb-sysroot: rust-src is missing ($src), so $t cannot be built." >&2
    echo "HINT: rustup component add rust-src, then re-run bash scripts/setup.sh" >&2
    return 1
  fi
  work="$root/.tools/sysroot-build"
  rm -rf "$work"
  mkdir -p "$work"
  # Its own workspace, so the repository's workspace does not claim it.
  # The profile is the one the Rust project ships these libraries with
  # (library/Cargo.toml): one codegen unit, except compiler_builtins, whose
  # intrinsics each get their own object file.
  cat >"$work/Cargo.toml" <<'TOML'
[package]
name = "lasagna-sysroot-build"
version = "0.0.0"
edition = "2021"
publish = false

[lib]
path = "lib.rs"

[workspace]

[profile.release]
opt-level = 3
codegen-units = 1
debug = 0

[profile.release.package.compiler_builtins]
codegen-units = 10000
TOML
  echo '#![no_std]' >"$work/lib.rs"
  echo "thumb-sysroot: building core, alloc, compiler_builtins for $t from rust-src (once per compiler, about 30 s)"
  # -Cembed-bitcode=yes: cargo turns bitcode off for a profile without LTO,
  # and the firmware links with fat LTO ("failed to get bitcode from object
  # file for LTO" otherwise). compiler-builtins-mem: memcpy and friends, as
  # rustup's own builds of these targets have them (no libc here).
  (cd "$work" && RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Cembed-bitcode=yes" \
    CARGO_TARGET_DIR="$work/target" \
    cargo build --quiet --release --target "$t" \
    -Zbuild-std=core,alloc,compiler_builtins \
    -Zbuild-std-features=compiler-builtins-mem)
  lib="$s/lib/rustlib/$t/lib"
  rm -rf "$lib"
  mkdir -p "$lib"
  cp "$work/target/$t/release/deps/"lib{core,alloc,compiler_builtins}-*.rlib "$lib/"
  rm -rf "$work"
}

ensure() {
  local s t
  s="$(sysroot_dir)"
  for t in "${targets[@]}"; do
    if core_found "$t"; then
      echo "thumb-sysroot: $t: the toolchain has it"
    elif core_found "$t" "$s"; then
      echo "thumb-sysroot: $t: built from rust-src, cached in ${s#"$root"/}"
    elif command -v rustup >/dev/null 2>&1 && rustup target add "$t" >/dev/null 2>&1 && core_found "$t"; then
      echo "thumb-sysroot: $t: installed with rustup"
    else
      build_target "$t" "$s"
      if ! core_found "$t" "$s"; then
        echo "thumb-sysroot: $t: built, but rustc still cannot use it (see above)." >&2
        return 1
      fi
      echo "thumb-sysroot: $t: built from rust-src into ${s#"$root"/}"
    fi
  done
}

# CARGO_TARGET_<TRIPLE>_RUSTFLAGS applies to that target's crates only, so
# build scripts and proc macros keep the toolchain's own std.
env_lines() {
  local s t var
  s="$(sysroot_dir)"
  for t in "${targets[@]}"; do
    core_found "$t" && continue
    if core_found "$t" "$s"; then
      var="CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$t")_RUSTFLAGS"
      printf 'export %s="${%s:+$%s }--sysroot=%s"\n' "$var" "$var" "$var" "$s"
    else
      echo "thumb-sysroot: $t is not usable. HINT: bash scripts/setup.sh" >&2
    fi
  done
}

case "${1:-}" in
  ensure) ensure ;;
  env) env_lines ;;
  dir) sysroot_dir ;;
  *)
    echo "usage: bash scripts/thumb-sysroot.sh ensure|env|dir" >&2
    exit 2
    ;;
esac
