#!/usr/bin/env bash
# Builds a self-contained bundle for a GPU machine that has the NVIDIA driver
# but no Rust toolchain (a lent cloud GPU, a lab workstation):
#
#   bash scripts/gpu-bundle.sh [OUT]          # default OUT: gpu-bundle/
#   scp -r gpu-bundle gpu-host: && ssh gpu-host 'gpu-bundle/run.sh results'
#
# OUT holds (under 64 MiB, what a device session can carry; the script fails
# if it is not):
#   bin/lasagna        the CLI built with --features cuda
#   bin/cuda_driver    driver smoke test (allocate, copy, launch relu_forward)
#   bin/cuda_parity    the CUDA backend vs the CPU, step by step (MLP, CNN)
#   bin/cuda_bench     GEMM throughput of the PTX kernel (JSON lines)
#   bin/gpu_kernels    every PTX kernel the trainer launches, timed at the
#                      presets' training shapes, and GEMM/HGEMM 1024-8192
#                      (benches/benches/gpu_kernels.rs; JSON lines)
#   tools/compute-sanitizer/
#                      NVIDIA's compute-sanitizer, from the PyPI wheel
#                      nvidia-cuda-sanitizer-api: run.sh runs cuda_driver and
#                      cuda_parity under memcheck, racecheck and synccheck
#   data/mnist/        the four MNIST IDX files
#   peers/             from benches/peers/: torch_mnist.py (the PyTorch
#                      baselines), torch_gemm.py (cuBLAS through PyTorch) and
#                      gemm_ratio.py (ours / cuBLAS)
#   run.sh             runs all of it (scripts/gpu-run.sh); results go to the
#                      folder it is given, with a summary.json
#   VERSION            the commit it was built from
#
# The binaries are linked against glibc 2.28 (cargo-zigbuild with zig from
# PyPI, scripts/zigbuild.sh), so they start on RHEL 8, Ubuntu 20.04 and
# anything newer; scripts/gpu-bundle-check.sh glibc checks every ELF file.
#
# compute-sanitizer: of the wheels on PyPI only nvidia-cuda-sanitizer-api
# (CUDA 13) carries the whole launcher. nvidia-cuda-sanitizer-api-cu12
# 12.9.79 has the launcher binary but not the TreeLauncherSubreaper it
# executes (it stops with "couldn't find exit code"), and 12.8.93 and
# 12.4.127 carry only the API library. The 13.4.92 launcher, its helpers,
# libraries and license are 36.1 MB (36,070,342 bytes; the wheel's docs,
# headers and 32-bit x86/ helpers stay out; the wheel itself is 17.8 MB), and
# the bundle with it 59.9 MB (57.1 MiB) of the 64 MiB, without it 23.8 MB.
# It should need a CUDA 13 driver (R580 or newer) on the GPU machine; it has
# not run on a GPU yet (without one its injection library kills the target
# process, so CI only checks that run.sh records those steps as failed).
# GPU_BUNDLE_SANITIZER=0 leaves it out.
#
# Building needs no GPU: scripts/cuda-standin.sh supplies cuda.h and a stub
# libcuda.so.1 to link against; on the GPU machine the binaries load the
# driver's own libcuda.so.1.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-gpu-bundle}"
GLIBC="2.28"
SANITIZER_VERSION="13.4.92"
log() { echo "gpu-bundle: $*" >&2; }

eval "$(bash scripts/cuda-standin.sh)"
# The bundle must not carry the stub's path: run.sh runs against the driver.
unset LD_LIBRARY_PATH
eval "$(bash scripts/zigbuild.sh env)"
# cargo-zigbuild reads the glibc version from the target's suffix. Its
# linker is `zig cc`, which finds the stub libcuda through the -L that
# cust_raw's build script adds (CUDA_LIBRARY_PATH/lib64).
host="$(rustc -vV | sed -n 's/^host: //p')"
target="$host.$GLIBC"

# Prints the executable cargo built for a target named $1, from cargo's JSON
# messages on stdin.
executable() {
  python3 -c '
import json, sys
name, found = sys.argv[1], ""
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == name:
        found = m["executable"]
print(found)
' "$1"
}

log "building lasagna and the GPU test binaries (release, --features cuda, $target)"
cli_json="$("$ZIGBUILD" zigbuild --release --locked --target "$target" \
  -p lasagna-cli --features cuda --bin lasagna --message-format=json-render-diagnostics)"
tests=(cuda_driver cuda_parity cuda_bench)
args=()
for t in "${tests[@]}"; do args+=(--test "$t"); done
json="$("$ZIGBUILD" test --release --locked --target "$target" -p lasagna-trainer --features cuda \
  --no-run "${args[@]}" --message-format=json-render-diagnostics)"
# The kernel bench is a bench target (harness = false): built, as cargo bench
# builds it, with the release profile.
bench_json="$("$ZIGBUILD" zigbuild --release --locked --target "$target" \
  -p lasagna-benches --features cuda --bench gpu_kernels --message-format=json-render-diagnostics)"

# compute-sanitizer from PyPI, once, into .tools (see the header for why
# this wheel). A wheel already downloaded into $PTXAS_WHEELS (default
# /tmp/nv) is used before PyPI, as in scripts/ptxas.sh.
sanitizer=""
if [ "${GPU_BUNDLE_SANITIZER:-1}" != 0 ]; then
  sdir="$PWD/.tools/compute-sanitizer"
  if [ "$(cat "$sdir/.installed" 2>/dev/null)" != "$SANITIZER_VERSION" ]; then
    rm -rf "$sdir"
    wheels="${PTXAS_WHEELS:-/tmp/nv}"
    find_links=()
    if compgen -G "$wheels/nvidia_cuda_sanitizer_api-$SANITIZER_VERSION-*.whl" >/dev/null; then
      find_links=(--find-links "$wheels")
    fi
    log "installing nvidia-cuda-sanitizer-api==$SANITIZER_VERSION (compute-sanitizer) into $sdir"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-deps \
      --target "$sdir" "${find_links[@]}" "nvidia-cuda-sanitizer-api==$SANITIZER_VERSION" >&2
    echo "$SANITIZER_VERSION" >"$sdir/.installed"
  fi
  sanitizer="$sdir/nvidia/cu13/compute-sanitizer"
  if [ ! -f "$sanitizer/compute-sanitizer" ] || [ ! -f "$sanitizer/TreeLauncherSubreaper" ]; then
    log "the wheel has no compute-sanitizer launcher in $sanitizer. HINT: rm -rf $sdir and re-run"
    exit 1
  fi
fi

rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/data/mnist" "$OUT/peers"
strip_to() { objcopy --strip-debug "$1" "$2" 2>/dev/null || cp "$1" "$2"; }
for t in lasagna gpu_kernels "${tests[@]}"; do
  if [ "$t" = lasagna ]; then
    exe="$(printf '%s\n' "$cli_json" | executable lasagna)"
  elif [ "$t" = gpu_kernels ]; then
    exe="$(printf '%s\n' "$bench_json" | executable gpu_kernels)"
  else
    exe="$(printf '%s\n' "$json" | executable "$t")"
  fi
  if [ -z "$exe" ]; then
    log "cargo did not report the binary $t"
    exit 1
  fi
  strip_to "$exe" "$OUT/bin/$t"
done
if [ -n "$sanitizer" ]; then
  # The launcher looks for its libraries and helpers beside itself, as in the
  # CUDA toolkit's compute-sanitizer/ folder.
  mkdir -p "$OUT/tools/compute-sanitizer"
  cp "$sanitizer"/compute-sanitizer "$sanitizer"/TreeLauncher* "$sanitizer"/*.so \
    "$OUT/tools/compute-sanitizer/"
  cp "$sdir"/nvidia_cuda_sanitizer_api-*.dist-info/licenses/License.txt \
    "$OUT/tools/compute-sanitizer/" 2>/dev/null || true
  chmod +x "$OUT/tools/compute-sanitizer/compute-sanitizer" "$OUT"/tools/compute-sanitizer/TreeLauncher*
fi
cp data/mnist/*.gz "$OUT/data/mnist/"
cp benches/peers/torch_mnist.py benches/peers/torch_gemm.py benches/peers/gemm_ratio.py "$OUT/peers/"
cp scripts/gpu-run.sh "$OUT/run.sh"
chmod +x "$OUT/run.sh" "$OUT"/bin/*
{
  git describe --always --dirty 2>/dev/null || echo unknown
} >"$OUT/VERSION"

bash scripts/gpu-bundle-check.sh glibc "$OUT" "$GLIBC"

bytes="$(du -sb "$OUT" | cut -f1)"
if [ "$bytes" -gt $((64 * 1024 * 1024)) ]; then
  log "$OUT is $bytes bytes, over the 64 MiB a device session can carry"
  exit 1
fi
log "wrote $OUT ($((bytes / 1024)) KiB: $(du -sh "$OUT/bin" | cut -f1) bin, $(du -sh "$OUT/tools" 2>/dev/null | cut -f1 || echo 0) tools). On the GPU machine: $OUT/run.sh RESULTS_DIR"
