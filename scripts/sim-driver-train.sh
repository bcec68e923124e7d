#!/usr/bin/env bash
# The `cuda` build of `lasagna` trains end to end on the fake driver
# (scripts/sim-driver.sh) and lands where the CPU does: `info`, then `train`
# with --device cuda and --device auto, MLP and CNN, with and without --amp,
# each compared with --device cpu on the same seed and subset (train, val and
# test loss; relative tolerance $TOL). Prints one line per run with the loss
# differences and the wall times; docs/BENCHMARKS.md keeps a copy.
#
# Expects LD_LIBRARY_PATH from `eval "$(bash scripts/sim-driver.sh)"` and
# target/debug/lasagna built with --features cuda. The simulator is an
# interpreter (a CNN image takes about a second), so the runs are tiny, and
# the test set is cut to its first $TEST_IMAGES images in a scratch copy of
# the data folder.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${BIN:-target/debug/lasagna}"
TOL="${TOL:-1e-3}"
TEST_IMAGES="${TEST_IMAGES:-32}"
DATA="target/sim-driver-data"
OUT="target/sim-driver-runs"
mkdir -p "$DATA" "$OUT"

# A scratch data folder: the training files linked, the test files cut.
ln -sf "$PWD/data/mnist/train-images-idx3-ubyte.gz" "$PWD/data/mnist/train-labels-idx1-ubyte.gz" "$DATA/"
python3 - "$DATA" "$TEST_IMAGES" <<'PY'
import gzip, struct, sys
out, n = sys.argv[1], int(sys.argv[2])
for name, head in (("t10k-images-idx3-ubyte", 16), ("t10k-labels-idx1-ubyte", 8)):
    raw = gzip.open(f"data/mnist/{name}.gz").read()
    fields = list(struct.unpack(">" + "I" * (head // 4), raw[:head]))
    item = 1
    for d in fields[2:]:
        item *= d
    fields[1] = n  # IDX: magic, count, then dimensions
    with gzip.open(f"{out}/{name}.gz", "wb") as f:
        f.write(struct.pack(">" + "I" * len(fields), *fields) + raw[head : head + n * item])
PY

"$BIN" info | tee "$OUT/info.txt"
grep -q 'cuda: Lasagna PTX simulator' "$OUT/info.txt"

# model -> its subset flags (the CNN's images cost ~30x the MLP's on the simulator).
declare -A SIZE=(
  [mlp]="--train-subset 512 --val 128 --batch-size 64"
  [cnn]="--train-subset 48 --val 16 --batch-size 16"
)
for model in mlp cnn; do
  for amp in "" --amp; do
    tag="$model${amp:+-amp}"
    # shellcheck disable=SC2086 # SIZE holds several flags
    args=(train --model "$model" --epochs 1 --seed 7 --quiet --data "$DATA" ${SIZE[$model]} $amp)
    for device in cpu cuda auto; do
      start=$(date +%s.%N)
      "$BIN" "${args[@]}" --device "$device" --metrics "$OUT/$tag-$device.json" 2>"$OUT/$tag-$device.err" >/dev/null || {
        cat "$OUT/$tag-$device.err" >&2
        echo "sim-driver-train: $tag --device $device failed" >&2
        exit 1
      }
      awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }' >"$OUT/$tag-$device.seconds"
    done
    grep -q 'device: cuda:0 (auto' "$OUT/$tag-auto.err" || {
      echo "sim-driver-train: --device auto did not pick the fake driver's device" >&2
      exit 1
    }
  done
done

python3 - "$OUT" "$TOL" <<'PY'
import json, sys
out, tol = sys.argv[1], float(sys.argv[2])
bad = []
print(f"{'run':<18}{'train loss cpu':>15}{'|d| train':>11}{'|d| val':>10}{'|d| test':>10}{'cpu s':>8}{'sim s':>8}")
for tag in ("mlp", "mlp-amp", "cnn", "cnn-amp"):
    cpu = json.load(open(f"{out}/{tag}-cpu.json"))
    secs = lambda d: float(open(f"{out}/{tag}-{d}.seconds").read())
    for dev in ("cuda", "auto"):
        gpu = json.load(open(f"{out}/{tag}-{dev}.json"))
        pairs = [
            (cpu["epochs"][-1]["train_loss"], gpu["epochs"][-1]["train_loss"]),
            (cpu["epochs"][-1]["val_loss"], gpu["epochs"][-1]["val_loss"]),
            (cpu["test_loss"], gpu["test_loss"]),
        ]
        d = [abs(a - b) for a, b in pairs]
        print(f"{tag + ' ' + dev:<18}{pairs[0][0]:>15.6f}{d[0]:>11.2e}{d[1]:>10.2e}{d[2]:>10.2e}{secs('cpu'):>8.1f}{secs(dev):>8.1f}")
        bad += [f"{tag} {dev}: {a} vs {b}" for (a, b), e in zip(pairs, d) if e > tol * abs(a)]
if bad:
    print("sim-driver-train: losses differ from the CPU's by more than", tol, "relative:", *bad, sep="\n  ", file=sys.stderr)
    sys.exit(1)
PY
