#!/usr/bin/env bash
# Assembles every kernels-ptx/ptx/*.ptx with NVIDIA's ptxas for each GPU
# generation we ship for, so a PTX typo or a register spill fails here, on a
# machine without a GPU, instead of at module load time on one.
#
#   bash scripts/ptxas.sh           assemble, fail on errors or spills, compare
#                                   resources with kernels-ptx/ptxas-snapshot.txt
#   bash scripts/ptxas.sh --bless   the same, then rewrite the snapshot
#   bash scripts/ptxas.sh --table   print the resources as a Markdown table
#                                   (the one in docs/kernels.md)
#
# ptxas comes from the PyPI wheel `nvidia-cuda-nvcc-cu12`, installed once into
# .tools/nvcc (git-ignored), so neither setup.sh nor a CUDA toolkit is needed.
# A wheel already downloaded into $PTXAS_WHEELS (default /tmp/nv) is used
# before PyPI. The snapshot is why register counts are reviewed: a change in
# them shows up as a diff in the pull request, with the kernel edit that caused it.
set -euo pipefail
cd "$(dirname "$0")/.."

NVCC_VERSION="12.9.86"
ARCHS=(sm_80 sm_90)
TOOLS=".tools/nvcc"
SNAPSHOT="kernels-ptx/ptxas-snapshot.txt"
WHEELS="${PTXAS_WHEELS:-/tmp/nv}"

mode="check"
case "${1:-}" in
  "") ;;
  --bless) mode="bless" ;;
  --table) mode="table" ;;
  *)
    echo "usage: bash scripts/ptxas.sh [--bless | --table]" >&2
    exit 2
    ;;
esac

# --- install ---------------------------------------------------------------
# The stamp records the installed version, so a version bump reinstalls and an
# unchanged one costs nothing.
stamp="$TOOLS/.installed-$NVCC_VERSION"
if [ ! -f "$stamp" ]; then
  rm -rf "$TOOLS"
  find_links=()
  if compgen -G "$WHEELS/nvidia_cuda_nvcc_cu12-$NVCC_VERSION-*.whl" >/dev/null; then
    find_links=(--find-links "$WHEELS")
  fi
  echo "ptxas: installing nvidia-cuda-nvcc-cu12==$NVCC_VERSION into $TOOLS" >&2
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-deps \
    --target "$TOOLS" "${find_links[@]}" "nvidia-cuda-nvcc-cu12==$NVCC_VERSION" >&2
  touch "$stamp"
fi
PTXAS="$(find "$TOOLS" -type f -name ptxas -perm -u+x | head -n 1)"
if [ -z "$PTXAS" ]; then
  echo "ptxas: no ptxas binary under $TOOLS. HINT: rm -rf $TOOLS and re-run" >&2
  exit 1
fi

# --- assemble --------------------------------------------------------------
# One line per (kernel, arch): kernel arch registers smem spill_stores spill_loads.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
shopt -s nullglob
files=(kernels-ptx/ptx/*.ptx)
if [ ${#files[@]} -eq 0 ]; then
  echo "ptxas: no kernels-ptx/ptx/*.ptx files" >&2
  exit 1
fi
: >"$work/rows"
failed=0
for ptx in "${files[@]}"; do
  for arch in "${ARCHS[@]}"; do
    log="$work/$(basename "$ptx" .ptx).$arch.log"
    # -Werror: ptxas warnings (e.g. a double-precision op demoted) are bugs too.
    if ! "$PTXAS" -v -Werror -arch="$arch" -o /dev/null "$ptx" >"$log" 2>&1; then
      echo "ptxas: FAILED $ptx ($arch):" >&2
      cat "$log" >&2
      failed=1
      continue
    fi
    # ptxas prints, per entry: "Compiling entry function 'NAME' for 'ARCH'",
    # "N bytes spill stores, M bytes spill loads", "Used R registers, ... S bytes smem".
    awk -v arch="$arch" '
      /Compiling entry function/ { match($0, /\x27[^\x27]+\x27/); name = substr($0, RSTART + 1, RLENGTH - 2) }
      /spill stores/ {
        for (i = 1; i <= NF; i++) {
          if ($(i + 1) == "bytes" && $(i + 2) == "spill" && $(i + 3) ~ /^stores/) ss = $i
          if ($(i + 1) == "bytes" && $(i + 2) == "spill" && $(i + 3) ~ /^loads/) sl = $i
        }
      }
      /Used [0-9]+ registers/ {
        regs = 0; smem = 0
        for (i = 1; i <= NF; i++) {
          if ($(i + 1) ~ /^registers/) regs = $i
          if ($(i + 1) == "bytes" && $(i + 2) ~ /^smem/) smem = $i
        }
        printf "%s %s %s %s %s %s\n", name, arch, regs, smem, ss + 0, sl + 0
      }' "$log" >>"$work/rows"
  done
done
if [ "$failed" -ne 0 ]; then
  exit 1
fi
sort -k1,1 -k2,2 "$work/rows" | awk '{ printf "%-28s %-6s %4s %6s %4s %4s\n", $1, $2, $3, $4, $5, $6 }' >"$work/table"

spills="$(awk '$5 != 0 || $6 != 0' "$work/table")"
if [ -n "$spills" ]; then
  echo "ptxas: register spills (kernel arch regs smem spill-stores spill-loads):" >&2
  echo "$spills" >&2
  echo "HINT: reduce live registers (smaller register tile) or raise .maxnreg" >&2
  exit 1
fi

{
  echo "# ptxas $NVCC_VERSION -v resource usage; regenerate: bash scripts/ptxas.sh --bless"
  echo "# kernel                     arch   regs   smem  spS  spL"
  cat "$work/table"
} >"$work/snapshot"

case "$mode" in
  table)
    echo "| kernel | arch | registers | shared (bytes) | spill stores | spill loads |"
    echo "|---|---|---:|---:|---:|---:|"
    awk '{ printf "| `%s` | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6 }' "$work/table"
    ;;
  bless)
    cp "$work/snapshot" "$SNAPSHOT"
    echo "ptxas: wrote $SNAPSHOT ($(wc -l <"$work/table") kernel/arch rows)"
    ;;
  check)
    if [ ! -f "$SNAPSHOT" ]; then
      echo "ptxas: $SNAPSHOT is missing. HINT: bash scripts/ptxas.sh --bless" >&2
      exit 1
    fi
    if ! diff -u "$SNAPSHOT" "$work/snapshot" >&2; then
      echo "ptxas: resource usage differs from $SNAPSHOT (- committed, + now)." >&2
      echo "HINT: if the change is intended, run bash scripts/ptxas.sh --bless and commit the snapshot" >&2
      exit 1
    fi
    echo "ptxas: ${#files[@]} files, $(wc -l <"$work/table") kernel/arch rows assembled; no spills; snapshot matches"
    ;;
esac
