#!/usr/bin/env bash
# The whole test suite: what CI runs and what a newcomer runs after cloning.
# Prints each step; fails on the first red step.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Property tests draw their cases from a fixed seed here, so a red run is
# reproducible and a green one is not luck (two tolerance flakes, 1 case in
# thousands, each failed a CI run on 2026-12-06). Local `cargo test` still
# draws new cases every run; set PROPTEST_RNG_SEED to pin it there too.
export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-20261206}"

step() { printf '\n==> %s\n' "$*"; }

# Every test that skips (all of it or a part) appends one line `TEST (FILE):
# REASON` to this file (tests/src/skip.rs): cargo test hides a passing test's
# output, so the summary at the end, pass or fail, is where a skip shows.
LASAGNA_SKIP_LOG="$(mktemp "${TMPDIR:-/tmp}/lasagna-skips.XXXXXX")"
export LASAGNA_SKIP_LOG
skip_summary() {
  printf '\nskipped tests: %d\n' "$(($(wc -l <"$LASAGNA_SKIP_LOG")))"
  cat "$LASAGNA_SKIP_LOG"
  rm -f "$LASAGNA_SKIP_LOG"
}
trap skip_summary EXIT

bash scripts/setup.sh
# Thumb builds use the project sysroot when the toolchain lacks the targets
# (docs/toolchain.md); nothing changes where rustup installed them.
eval "$(bash scripts/thumb-sysroot.sh env)"

step "data: MNIST files match data/mnist/SHA256SUMS.raw"
bash scripts/check-data.sh

step "format: cargo fmt --check"
cargo fmt --all -- --check

step "architecture: no import cycles inside a crate; the trainer and the ONNX converter have no UI crates, the deploy tool no trainer, the files crate neither (ARCHITECTURE.md)"
python3 scripts/import-cycles.py
for crate in lasagna-trainer lasagna-onnx; do
  if cargo tree --locked -p "$crate" -e normal --prefix none | grep -E '^(clap|indicatif|plotters) '; then
    echo "$crate depends on a UI crate (above): that belongs in lasagna-cli" >&2
    exit 1
  fi
done
if cargo tree --locked -p lasagna-deploy --prefix none | grep -E '^lasagna-trainer '; then
  echo "lasagna-deploy depends on lasagna-trainer: the deploy tool needs only format, infer, protocol and files" >&2
  exit 1
fi
# The first line is lasagna-files itself.
if cargo tree --locked -p lasagna-files -e normal --prefix none | tail -n +2 | grep -E '^(lasagna-[a-z-]+|clap|indicatif|plotters) '; then
  echo "lasagna-files depends on the crate above: it sits below the trainer, the deploy tool and the CLI" >&2
  exit 1
fi

step "lint: cargo clippy (workspace, all targets, -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "lint: the engine with fast-math"
cargo clippy --locked -p lasagna-infer --all-targets --features fast-math -- -D warnings

step "no_std: reader, firmware protocol and engine build for the microcontroller targets"
for target in thumbv7em-none-eabihf thumbv6m-none-eabi; do
  cargo build --locked -p lasagna-format --no-default-features --target "$target"
  cargo build --locked -p lasagna-protocol --target "$target"
  cargo build --locked -p lasagna-infer --target "$target"
  cargo build --locked -p lasagna-infer --target "$target" --features fast-math
done

step "lint: the engine's Cortex-M4 DSP kernels (arm-dsp)"
cargo clippy --locked -p lasagna-infer --target thumbv7em-none-eabihf --features arm-dsp -- -D warnings

step "firmware: fmt, clippy and builds for Cortex-M4 (arm-dsp) and Cortex-M0+ (committed int8 test model; clippy also with the RP2040's boot2)"
(cd firmware && cargo fmt -- --check \
  && cargo clippy --locked --release -- -D warnings \
  && cargo clippy --locked --release --target thumbv6m-none-eabi -- -D warnings \
  && cargo clippy --locked --release --target thumbv6m-none-eabi --features rp2040-boot2 -- -D warnings \
  && cargo build --locked --release \
  && cargo build --locked --release --target thumbv6m-none-eabi)

step "kernels: ptxas assembles kernels-ptx/ptx/*.ptx for sm_80 and sm_90, no spills, snapshot matches"
bash scripts/ptxas.sh
# The generated tensor-core GEMM is what its generator writes.
python3 kernels-ptx/gen/gemm_f16.py | cmp - kernels-ptx/ptx/gemm_f16.ptx

step "docs: the kernel table of docs/BENCHMARKS.md says it is generated, when, at which commit, by scripts/kernel-table.sh"
# Regenerating it needs a release build of the simulator run (minutes on 2
# cores), so CI checks the marker the script writes, not the numbers.
if ! sed -n '/^<!-- kernel-table:begin -->$/{n;p;}' docs/BENCHMARKS.md |
  grep -qE '^Generated [0-9]{4}-[0-9]{2}-[0-9]{2} at commit [0-9a-f]{7,40} by `bash scripts/kernel-table\.sh`'; then
  echo "docs/BENCHMARKS.md: the line after <!-- kernel-table:begin --> must be the marker scripts/kernel-table.sh writes" >&2
  echo "HINT: bash scripts/kernel-table.sh" >&2
  exit 1
fi

step "tests: cargo test (workspace, unit + property + golden + doc tests; includes cli/tests/deploy.rs:"
echo "    an int8 MLP trained on a subset runs on the emulated Cortex-M4 on 500 test images, device == host;"
echo "    cli/tests/deploy_kernels.rs: every Cortex-M4 int8 conv, max-pool and LSTM loop on the device, == host;"
echo "    lasagna-onnx's own tests, and cli/tests/onnx.rs: PyTorch's ONNX fixtures imported and the presets"
echo "    exported as ONNX, each against ONNX Runtime on the 10,000 test images; import, export, import"
echo "    byte-identical; the README's \"From PyTorch\" commands, deployed, device == host)"
# setup.sh installed ONNX Runtime and QEMU: a missing one is a failure here,
# not a skip (CI=true alone does the same).
LASAGNA_REQUIRE_ORT=1 LASAGNA_REQUIRE_QEMU=1 cargo test --workspace --locked

step "tests: every kernel test on the strict simulator (warps interleaved, blocks shuffled, race detector,"
echo "    poisoned registers and shared memory, deferred cp.async, .approx at the ISA bound, FMA contraction,"
echo "    ptxas resource limits; kernels-ptx/sim/README.md \"Strict mode\"), under two seeds"
ptx_tests=()
for f in tests/tests/ptx_*.rs; do ptx_tests+=(--test "$(basename "$f" .rs)"); done
for seed in 1 2; do
  LASAGNA_SIM_STRICT=1 LASAGNA_SIM_SEED="$seed" cargo test --locked -p lasagna-ptx-sim
  LASAGNA_SIM_STRICT=1 LASAGNA_SIM_SEED="$seed" cargo test --locked -p lasagna-tests "${ptx_tests[@]}"
done

step "docs: the GEMM table of docs/BENCHMARKS.md is what tests/tests/ptx_gemm.rs prints (the simulator, 512^3: seconds)"
gemm_table="$(cargo test --locked -p lasagna-tests --test ptx_gemm -- --ignored --exact print_kernel_table --nocapture |
  grep -E '^\| `gemm` \| [0-9]+x[0-9]+x[0-9]+ \| sm_')"
if ! diff <(grep -E '^\| `gemm` \| [0-9]+x[0-9]+x[0-9]+ \| sm_' docs/BENCHMARKS.md) - <<<"$gemm_table"; then
  echo "docs/BENCHMARKS.md: the GEMM table differs from the generator's (diff above: < docs, > now)" >&2
  echo "HINT: cargo test -p lasagna-tests --test ptx_gemm -- --ignored --nocapture, and paste its rows" >&2
  exit 1
fi

step "tests: the engine with fast-math (its own tests, and MNIST argmax agreement)"
cargo test --locked -p lasagna-infer --features fast-math
cargo test --locked -p lasagna-tests --features fast-math --test mnist_engine

step "loom: the CPU thread pool's synchronisation under every interleaving (lasagna-pool, tests/loom.rs)"
# Its own target folder: --cfg loom would otherwise rebuild the workspace.
CARGO_TARGET_DIR=target/loom RUSTFLAGS="--cfg loom" cargo test --locked --release -p lasagna-pool --test loom

step "cuda: the trainer's cuda feature builds, lints and runs its driver tests against the stand-in libcuda"
echo "    (scripts/cuda-standin.sh; without a GPU the tests print why they skip; LASAGNA_REQUIRE_CUDA=1 makes that fail)"
(
  eval "$(bash scripts/cuda-standin.sh)"
  cargo build --locked -p lasagna-trainer -p lasagna-cli --features cuda
  cargo clippy --locked -p lasagna-trainer -p lasagna-cli -p lasagna-benches --features cuda --all-targets -- -D warnings
  cargo test --locked -p lasagna-trainer --features cuda --lib backend::gpu::driver
  cargo test --locked -p lasagna-trainer --features cuda --test cuda_driver --test cuda_parity -- --nocapture
  cargo test --locked -p lasagna-trainer --features cuda --test cuda_bench -- --ignored --nocapture
  # The bundle for GPU machines builds (linked against glibc 2.28 with
  # cargo-zigbuild), fits in 64 MiB, needs no GLIBC_ symbol newer than 2.28,
  # and its run.sh, against the stub, runs every step, marks them failed in a
  # valid summary.json and exits 1.
  bash scripts/gpu-bundle.sh target/gpu-bundle
  bash scripts/gpu-bundle-check.sh glibc target/gpu-bundle 2.28
  bash scripts/gpu-bundle-check.sh run target/gpu-bundle stub
  cargo run --locked --quiet -p lasagna-cli --features cuda -- info
)

step "cuda on the simulator: the cuda binary end to end on a fake libcuda.so.1 backed by the PTX simulator"
echo "    (scripts/sim-driver.sh; kernels-ptx/sim-driver/README.md lists its fault-injection variables)"
(
  eval "$(bash scripts/sim-driver.sh)"
  cargo build --locked -p lasagna-cli --features cuda
  # The driver functions the binary imports are exactly the fake driver's exports.
  bash scripts/sim-driver-symbols.sh target/debug/lasagna target/release/liblasagna_sim_driver.so
  # info; train --device cuda|auto, mlp and cnn, with and without --amp, against --device cpu.
  bash scripts/sim-driver-train.sh
  # The driver and parity tests run for real here: a skip is a failure.
  LASAGNA_REQUIRE_CUDA=1 cargo test --locked -p lasagna-trainer --features cuda --test cuda_driver --test cuda_parity
  # What the user reads on out of memory, a kernel fault, a refused PTX, no device, code 46.
  LASAGNA_REQUIRE_SIM_DRIVER=1 cargo test --locked -p lasagna-cli --features cuda --test cuda_sim_driver
  # The GPU bundle's run.sh (built in the cuda step above) on the fake driver:
  # every step it runs must pass. The simulator is an interpreter, so the
  # training steps take one epoch of a few images (sim-driver-train.sh's data,
  # test set cut to 32 images); the GEMM bench and compute-sanitizer (which
  # needs a real GPU) are left out.
  RUN_ONLY="info cuda_driver cuda_parity train-mlp train-cnn-amp" \
    RUN_DATA="$PWD/target/sim-driver-data" RUN_EPOCHS=1 \
    RUN_TRAIN_ARGS="--train-subset 48 --val 16 --batch-size 16" \
    bash scripts/gpu-bundle-check.sh run target/gpu-bundle passed
)
