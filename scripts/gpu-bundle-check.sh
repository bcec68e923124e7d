#!/usr/bin/env bash
# Checks of the GPU bundle (scripts/gpu-bundle.sh) that need no GPU; CI runs
# both on the bundle it builds:
#
#   bash scripts/gpu-bundle-check.sh glibc BUNDLE [2.28]
#       every ELF file in BUNDLE (our binaries and compute-sanitizer's) needs
#       no GLIBC_ symbol version newer than 2.28, so the bundle starts on
#       RHEL 8, Ubuntu 20.04 and newer; prints the offending symbols if not.
#   bash scripts/gpu-bundle-check.sh run BUNDLE [stub|passed]
#       runs BUNDLE/run.sh into a temporary folder and validates its
#       summary.json. `stub` (the default) runs it against the stand-in
#       libcuda of scripts/cuda-standin.sh, where every device step fails
#       with "no device": run.sh must still run every step, write a complete
#       summary.json that marks them failed (none timed out, none passed
#       but `info`), and exit 1. `passed` runs it against whatever libcuda
#       the environment gives and wants every step that ran to pass.
#
# Why the `run` check: run.sh is what the first real GPU runs, maybe in a
# session of a few minutes. A bug in its control flow (a step that stops the
# script, a summary that is not JSON) would waste that session, and nothing
# else exercises it before then.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "gpu-bundle-check: $*" >&2; }

glibc_check() {
  local bundle="$1" max="${2:-2.28}" bad=0 files=0 f highest worst=""
  while IFS= read -r -d '' f; do
    # ELF files only: the magic is 0x7f 'E' 'L' 'F'.
    [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] || continue
    files=$((files + 1))
    highest="$(objdump -T "$f" | grep -oE 'GLIBC_[0-9]+(\.[0-9]+)+' | sed "s/GLIBC_//" | sort -uV | tail -n 1 || true)"
    [ -z "$highest" ] && continue
    worst="$(printf '%s\n%s\n' "$worst" "$highest" | sort -V | tail -n 1)"
    if [ "$(printf '%s\n%s\n' "$max" "$highest" | sort -V | tail -n 1)" != "$max" ]; then
      log "$f needs GLIBC_$highest, newer than GLIBC_$max:"
      objdump -T "$f" | awk -v max="$max" '
        match($0, /GLIBC_[0-9.]+/) {
          v = substr($0, RSTART + 6, RLENGTH - 6)
          split(v, a, "."); split(max, b, ".")
          if (a[1] > b[1] || (a[1] == b[1] && a[2] + 0 > b[2] + 0)) print "    " $NF " (GLIBC_" v ")"
        }' >&2
      bad=1
    fi
  done < <(find "$bundle" -type f -print0)
  if [ "$files" -eq 0 ]; then
    log "no ELF files in $bundle"
    exit 1
  fi
  if [ $bad -ne 0 ]; then
    log "HINT: build the bundle with scripts/gpu-bundle.sh (it links against glibc $max with cargo-zigbuild)"
    exit 1
  fi
  echo "gpu-bundle-check: $files ELF files in $bundle, newest glibc symbol version GLIBC_${worst:-none} (limit $max)"
}

run_check() {
  local bundle="$1" mode="${2:-stub}" results rc=0
  bundle="$(cd "$bundle" && pwd)"
  results="$(mktemp -d)"
  if [ "$mode" = stub ]; then
    eval "$(bash scripts/cuda-standin.sh)"
    # The stub first, even where a driver is installed: the check is of the
    # control flow when every device call fails.
    export LD_LIBRARY_PATH="$PWD/.tools/cuda-standin/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  # A short cap on each step: nothing here should run for long, and a hang
  # must end as a timed-out step rather than a stuck CI.
  RUN_STEP_LIMIT_S="${RUN_STEP_LIMIT_S:-300}" "$bundle/run.sh" "$results" || rc=$?
  local ok=0
  python3 - "$results/summary.json" "$rc" "$mode" <<'PY' || ok=$?
import json, sys
path, rc, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
errors = []
def need(cond, what):
    if not cond:
        errors.append(what)
try:
    with open(path) as f:
        s = json.load(f)
except (OSError, ValueError) as e:
    sys.exit(f"gpu-bundle-check: {path} is not valid JSON: {e}")
steps = s.get("steps", [])
need(s.get("format") == "lasagna-gpu-run" and s.get("version") == 1, "format/version")
need(s.get("complete") is True, "complete is not true")
need(s.get("exit_code") == rc, f"exit_code {s.get('exit_code')} but run.sh exited {rc}")
types = {"name": str, "command": str, "status": str, "timed_out": bool}
for st in steps:
    for k, t in types.items():
        need(isinstance(st.get(k), t), f"step {st.get('name')}: {k} is not a {t.__name__}")
    need(st.get("status") in ("passed", "failed", "timed_out", "skipped"), f"step {st.get('name')}: status")
    if st.get("status") == "skipped":
        need(bool(st.get("reason")), f"step {st['name']}: skipped without a reason")
    else:
        need(isinstance(st.get("exit_code"), int), f"step {st.get('name')}: exit_code")
        need(isinstance(st.get("seconds"), (int, float)), f"step {st.get('name')}: seconds")
        need(st["timed_out"] == (st["status"] == "timed_out"), f"step {st['name']}: timed_out")
names = [st.get("name") for st in steps]
need(len(set(names)) == len(names), "step names repeat")
for n in ("info", "cuda_driver", "cuda_parity", "gemm", "kernels", "torch-gemm", "gemm-vs-cublas",
          "train-mlp", "train-cnn", "train-cnn-amp", "torch"):
    need(n in names, f"no step {n}")
for tool in ("memcheck", "racecheck", "synccheck"):
    for t in ("cuda_driver", "cuda_parity"):
        need(f"{tool}-{t}" in names, f"no step {tool}-{t}")
failed = [st["name"] for st in steps if st.get("status") in ("failed", "timed_out")]
need(sorted(s.get("failed", [])) == sorted(failed), "the failed list disagrees with the steps")
by = {st.get("name"): st for st in steps}
if mode == "stub":
    need(rc == 1, f"run.sh exited {rc} against the stub, not 1")
    for st in steps:
        n, status = st.get("name"), st.get("status")
        if n == "info":
            need(status == "passed", "info did not pass (it reports the missing device)")
        elif n in ("torch", "torch-gemm"):
            need(status in ("skipped", "failed"), f"{n}: {status}")
        elif n == "gemm-vs-cublas":
            # Nothing to join: the kernel bench failed without a device.
            need(status == "skipped", f"{n}: {status}, not skipped, against the stub")
        elif status != "skipped" or not n.startswith(("memcheck-", "racecheck-", "synccheck-")):
            need(status == "failed", f"{n}: {status}, not failed, against the stub")
else:
    need(rc == 0 and not failed, f"run.sh exited {rc}; failed: {failed}")
if errors:
    for e in errors:
        print(f"gpu-bundle-check: summary.json: {e}", file=sys.stderr)
    sys.exit(1)
counts = {}
for st in steps:
    counts[st["status"]] = counts.get(st["status"], 0) + 1
print(f"gpu-bundle-check: run.sh ({mode}) exited {rc}; summary.json valid, "
      + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
PY
  if [ $ok -ne 0 ]; then
    log "run.sh's results are kept in $results"
    return 1
  fi
  rm -rf "$results"
}

case "${1:-}" in
  glibc) glibc_check "${2:?BUNDLE}" "${3:-2.28}" ;;
  run) run_check "${2:?BUNDLE}" "${3:-stub}" ;;
  *)
    echo "usage: bash scripts/gpu-bundle-check.sh glibc BUNDLE [MAX] | run BUNDLE [stub|passed]" >&2
    exit 2
    ;;
esac
