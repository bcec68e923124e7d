#!/usr/bin/env bash
# run.sh of the bundle scripts/gpu-bundle.sh builds: on a machine with the
# NVIDIA driver (no Rust, no CUDA toolkit, PyTorch optional), runs the GPU
# checks and benchmarks and writes everything into RESULTS_DIR:
#
#   summary.json          every step: name, command, exit code, seconds,
#                         timed_out, status (passed|failed|timed_out|skipped),
#                         and the numbers it printed as JSON (see below);
#                         rewritten after each step, so a session cut short
#                         still leaves one ("complete": false until the end)
#   summary.txt           the same, one line a step
#   info.txt              `lasagna info`: the device, or why none was found
#   cuda_driver.txt       driver smoke test
#   cuda_parity.txt       CUDA backend vs CPU, step by step, worst mismatches
#   gemm.jsonl            GEMM GFLOP/s of the PTX kernel, and the fp16
#                         tensor-core GEMM (TFLOP/s, 1024-8192)
#   kernels.jsonl         every PTX kernel the trainer launches at the presets'
#                         training shapes, and GEMM/HGEMM 1024-8192: time,
#                         GFLOP/s, GB/s, % of the device's peak (gpu_kernels)
#   torch-gemm.jsonl      the same square GEMM/HGEMM through cuBLAS (PyTorch;
#                         skipped with one line where it is not installed)
#   gemm-vs-cublas.txt    the two joined: ours / cuBLAS per dtype and size
#   train-{mlp,cnn}.json  `lasagna train --device cuda`, 5 epochs: per-epoch
#                         seconds, test accuracy; train-cnn-amp.json with --amp
#   torch.jsonl           the same MLP and CNN in PyTorch (DataLoader, then
#                         preloaded on the GPU) and torch.matmul GEMMs; skipped
#                         with one line where PyTorch is not installed
#   {memcheck,racecheck,synccheck}-{cuda_driver,cuda_parity}.txt
#                         the parity tests under NVIDIA compute-sanitizer,
#                         when the bundle carries it (tools/compute-sanitizer)
#   *.err                 each step's stderr
#
# summary.json's "results" of a step are the JSON objects it printed one a
# line (cuda_bench, torch_mnist.py); a training step has "metrics", the key
# numbers of its --metrics file.
#
# Every step runs under `timeout` (its limit is in the table below) and the
# next step runs whatever the last one did. Exit status: 0 when no step
# failed or timed out, 1 when one did (summary.json says which), 2 when
# run.sh itself cannot run.
#
#   RUN_ONLY="info cuda_parity memcheck-*"   run only these steps (globs);
#                                            the others are "skipped"
#   RUN_STEP_LIMIT_S=120                     cap every step's time limit
#   RUN_DATA=DIR                             MNIST from DIR, not the bundle's
#   RUN_EPOCHS=5                             epochs of each training step
#   RUN_TRAIN_ARGS="--train-subset 256 --val 64"
#                                            added to every training step (CI
#                                            runs run.sh on the simulator's
#                                            fake libcuda, where a full run
#                                            would take hours)
#   PYTHON=python3                           for summary.json and PyTorch
set -euo pipefail
OUT="${1:-}"
if [ -z "$OUT" ] || [ $# -ne 1 ]; then
  echo "usage: run.sh RESULTS_DIR" >&2
  exit 2
fi
HERE="$(cd "$(dirname "$0")" && pwd)"
PYTHON="${PYTHON:-python3}"
RUN_ONLY="${RUN_ONLY:-}"
RUN_STEP_LIMIT_S="${RUN_STEP_LIMIT_S:-}"
if ! command -v timeout >/dev/null 2>&1; then
  echo "run.sh: \`timeout\` (GNU coreutils) is missing; it bounds every step" >&2
  exit 2
fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
export LASAGNA_DATA="${RUN_DATA:-$HERE/data/mnist}"
read -ra train_args <<<"${RUN_TRAIN_ARGS:-}"
epochs="${RUN_EPOCHS:-5}"
# On the GPU machine a missing device is a failure, not a skip.
export LASAGNA_REQUIRE_CUDA=1

# One record a step, fields split by the unit separator (0x1f): a tab would
# merge empty fields when bash reads them back.
STEPS="$OUT/.steps"
SEP=$'\x1f'
STARTED="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
: >"$STEPS"
: >"$OUT/summary.txt"
{
  uname -srm
  getconf GNU_LIBC_VERSION 2>/dev/null || true
  if command -v nvidia-smi >/dev/null 2>&1; then
    timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap \
      --format=csv,noheader 2>&1 || true
  else
    echo "nvidia-smi: not found"
  fi
} >"$OUT/host.txt"

have_python=""
if command -v "$PYTHON" >/dev/null 2>&1; then have_python=yes; fi

# The --metrics file's key numbers, the JSON lines of stdout, and the rest of
# each step's record, gathered into summary.json (atomically: tmp, rename).
write_summary() {
  local complete="$1" tmp="$OUT/.summary.json.tmp"
  if [ -z "$have_python" ] || ! summary_python "$complete" >"$tmp"; then
    summary_bash "$complete" >"$tmp"
  fi
  mv -f "$tmp" "$OUT/summary.json"
}

summary_python() {
  "$PYTHON" - "$OUT" "$HERE" "$STARTED" "$1" <<'PY'
import json, os, sys, time
out, here, started, complete = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "yes"

def json_lines(path):
    found = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                line = line.strip()
                if line.startswith("{") and line.endswith("}"):
                    try:
                        v = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(v, dict):
                        found.append(v)
    except OSError:
        pass
    return found

def metrics(path):
    try:
        with open(path) as f:
            m = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(m, dict):
        return None
    epochs = m.get("epochs") if isinstance(m.get("epochs"), list) else []
    return {
        "file": os.path.basename(path),
        "device": m.get("device"),
        "test_accuracy": m.get("test_accuracy"),
        "test_loss": m.get("test_loss"),
        "seconds_total": m.get("seconds_total"),
        "epoch_seconds": [e.get("seconds") for e in epochs if isinstance(e, dict)],
        "train_loss": [e.get("train_loss") for e in epochs if isinstance(e, dict)],
        "amp_skipped_steps": m.get("amp_skipped_steps"),
    }

steps = []
with open(os.path.join(out, ".steps"), errors="replace") as f:
    for row in f:
        c = row.rstrip("\n").split("\x1f")
        name, status, rc, secs, timed_out, limit, stdout, stderr, metrics_file, reason, command = c
        s = {
            "name": name,
            "command": command,
            "status": status,
            "exit_code": int(rc) if rc else None,
            "seconds": float(secs) if secs else None,
            "timed_out": timed_out == "yes",
            "limit_s": int(limit) if limit else None,
            "stdout": stdout or None,
            "stderr": stderr or None,
        }
        if reason:
            s["reason"] = reason
        if stdout:
            r = json_lines(os.path.join(out, stdout))
            if r:
                s["results"] = r
        if metrics_file:
            s["metrics"] = metrics(os.path.join(out, metrics_file))
        steps.append(s)

def names(*statuses):
    return [s["name"] for s in steps if s["status"] in statuses]

failed = names("failed", "timed_out")
try:
    with open(os.path.join(here, "VERSION")) as f:
        bundle = f.read().strip()
except OSError:
    bundle = None
with open(os.path.join(out, "host.txt"), errors="replace") as f:
    host = [l.rstrip("\n") for l in f if l.strip()]
summary = {
    "format": "lasagna-gpu-run",
    "version": 1,
    "bundle": bundle,
    "host": host,
    "started": started,
    "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) if complete else None,
    "complete": complete,
    "exit_code": (1 if failed else 0) if complete else None,
    "passed": names("passed"),
    "failed": failed,
    "skipped": names("skipped"),
    "steps": steps,
}
json.dump(summary, sys.stdout, indent=1)
print()
PY
}

# No Python here (or it failed): the same records, without the parsed numbers.
summary_bash() {
  local complete=false sep="" esc='s/\\/\\\\/g; s/"/\\"/g'
  [ "$1" = yes ] && complete=true
  printf '{"format": "lasagna-gpu-run", "version": 1, "started": "%s", "complete": %s, ' \
    "$STARTED" "$complete"
  printf '"note": "%s not found or failed: step outputs not parsed", "steps": [' "$PYTHON"
  local name status rc secs timed_out limit stdout stderr metrics reason command
  while IFS="$SEP" read -r name status rc secs timed_out limit stdout stderr metrics reason command; do
    [ "$timed_out" = yes ] && timed_out=true || timed_out=false
    printf '%s\n {"name": "%s", "command": "%s", "status": "%s", "exit_code": %s, "seconds": %s, ' \
      "$sep" "$name" "$(sed "$esc" <<<"$command")" "$status" "${rc:-null}" "${secs:-null}"
    printf '"timed_out": %s, "limit_s": %s, "stdout": "%s", "stderr": "%s", "reason": "%s"}' \
      "$timed_out" "${limit:-null}" "$stdout" "$stderr" "$(sed "$esc" <<<"$reason")"
    sep=","
  done <"$STEPS"
  echo ']}'
}

selected() {
  local name="$1" pat pats
  [ -z "$RUN_ONLY" ] && return 0
  read -ra pats <<<"$RUN_ONLY"
  for pat in "${pats[@]}"; do
    # shellcheck disable=SC2053 # a glob on purpose
    [[ "$name" == $pat ]] && return 0
  done
  return 1
}

# record NAME STATUS RC SECONDS TIMED_OUT LIMIT STDOUT STDERR METRICS REASON COMMAND
record() {
  local IFS="$SEP"
  echo "$*" >>"$STEPS"
  local line="$1: $2"
  [ -n "$3" ] && line+=", rc $3, $4 s"
  [ -n "${10}" ] && line+=" (${10})"
  echo "$line" | tee -a "$OUT/summary.txt"
  write_summary no
}

skip() { record "$1" skipped "" "" no "" "" "" "" "$2" "${3:-}"; }

# step NAME LIMIT_S STDOUT_FILE [--metrics FILE] COMMAND...
step() {
  local name="$1" limit="$2" out="$3" metrics=""
  shift 3
  if [ "${1:-}" = --metrics ]; then
    metrics="$2"
    shift 2
  fi
  local command
  command="$(printf '%q ' "$@")"
  command="${command% }"
  if ! selected "$name"; then
    skip "$name" "not in RUN_ONLY" "$command"
    return 0
  fi
  if [ -n "$RUN_STEP_LIMIT_S" ] && [ "$RUN_STEP_LIMIT_S" -lt "$limit" ]; then
    limit="$RUN_STEP_LIMIT_S"
  fi
  local t0 t1 rc=0 status timed_out=no
  t0="$(date +%s%N)"
  # SIGTERM at the limit, SIGKILL 10 s later; 124 and 137 are timeout's own.
  timeout --kill-after=10 "$limit" "$@" </dev/null >"$OUT/$out" 2>"$OUT/$out.err" || rc=$?
  t1="$(date +%s%N)"
  local ms=$(((t1 - t0) / 1000000))
  local secs
  secs="$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
  if [ $rc -eq 0 ]; then
    status=passed
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    status=timed_out
    timed_out=yes
  else
    status=failed
  fi
  record "$name" "$status" "$rc" "$secs" "$timed_out" "$limit" "$out" "$out.err" "$metrics" "" "$command"
}

BIN="$HERE/bin"
step info 120 info.txt "$BIN/lasagna" info
step cuda_driver 300 cuda_driver.txt "$BIN/cuda_driver" --nocapture
step cuda_parity 900 cuda_parity.txt "$BIN/cuda_parity" --nocapture --test-threads 1
step gemm 900 gemm.jsonl "$BIN/cuda_bench" --ignored --nocapture --test-threads 1
# The kernel benches, then cuBLAS at the same square sizes, back to back on
# the same GPU (one after the other: run together they would share it), then
# the ratio table. `--bench` is what cargo bench passes: without it the
# binary runs each case once, untimed.
step kernels 600 kernels.jsonl "$BIN/gpu_kernels" --bench
peer_gemm="$HERE/peers/torch_gemm.py"
if [ ! -f "$peer_gemm" ]; then
  skip torch-gemm "the bundle has no peers/torch_gemm.py"
elif [ -z "$have_python" ]; then
  skip torch-gemm "$PYTHON not found"
elif ! timeout 120 "$PYTHON" -c 'import torch' >/dev/null 2>&1; then
  skip torch-gemm "PyTorch is not installed for $PYTHON"
else
  step torch-gemm 600 torch-gemm.jsonl "$PYTHON" "$peer_gemm"
fi
if [ -n "$have_python" ] && grep -qs '"what": "lasagna-kernel"' "$OUT/kernels.jsonl" &&
  grep -qs '"what": "torch-gemm"' "$OUT/torch-gemm.jsonl"; then
  step gemm-vs-cublas 120 gemm-vs-cublas.txt \
    "$PYTHON" "$HERE/peers/gemm_ratio.py" "$OUT/kernels.jsonl" "$OUT/torch-gemm.jsonl"
else
  skip gemm-vs-cublas "no GEMM results from both kernels and torch-gemm to join"
fi
for m in mlp cnn; do
  step "train-$m" 1800 "train-$m.txt" --metrics "train-$m.json" \
    "$BIN/lasagna" train --model "$m" --device cuda --epochs "$epochs" --metrics "$OUT/train-$m.json" \
    ${train_args[@]+"${train_args[@]}"}
done
# Mixed precision (fp16 tensor-core GEMMs, dynamic loss scaling) vs the f32 run above.
step train-cnn-amp 1800 train-cnn-amp.txt --metrics train-cnn-amp.json \
  "$BIN/lasagna" train --model cnn --device cuda --epochs "$epochs" --amp --metrics "$OUT/train-cnn-amp.json" \
  ${train_args[@]+"${train_args[@]}"}

# PyTorch is optional: a driver-only machine skips the peer with one line.
peer="$HERE/peers/torch_mnist.py"
if [ ! -f "$peer" ]; then
  skip torch "the bundle has no peers/torch_mnist.py"
elif [ -z "$have_python" ]; then
  skip torch "$PYTHON not found"
elif ! timeout 120 "$PYTHON" -c 'import torch, numpy' >/dev/null 2>&1; then
  skip torch "PyTorch (or numpy) is not installed for $PYTHON"
else
  step torch 1800 torch.jsonl "$PYTHON" "$peer" --data "$LASAGNA_DATA" --epochs "$epochs"
fi

# The parity tests under compute-sanitizer: out-of-bounds and misaligned
# accesses (memcheck), shared-memory races (racecheck), barriers that not all
# threads of a block or warp reach (synccheck). --error-exitcode makes a
# finding fail the step even when the tests themselves pass.
san="$HERE/tools/compute-sanitizer/compute-sanitizer"
for tool in memcheck racecheck synccheck; do
  for t in cuda_driver cuda_parity; do
    limit=600
    [ "$t" = cuda_parity ] && limit=1800
    if [ -x "$san" ]; then
      step "$tool-$t" "$limit" "$tool-$t.txt" "$san" --tool "$tool" --error-exitcode 86 \
        --print-limit 50 "$BIN/$t" --nocapture --test-threads 1
    else
      skip "$tool-$t" "the bundle has no tools/compute-sanitizer"
    fi
  done
done

write_summary yes
status=0
failed="$(cut -d "$SEP" -f2 "$STEPS" | grep -cxE 'failed|timed_out' || true)"
rm -f "$STEPS"
if [ "$failed" -gt 0 ]; then status=1; fi
echo "run.sh finished: $failed step(s) failed or timed out (exit $status); summary in $OUT/summary.json" |
  tee -a "$OUT/summary.txt"
exit $status
