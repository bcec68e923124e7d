#!/usr/bin/env bash
# Regenerates the PTX kernel table of docs/BENCHMARKS.md: every kernel of
# lasagna-kernels launched once on the PTX simulator at a training shape
# (tests/tests/ptx_table.rs), next to its ptxas resource usage read from the
# committed kernels-ptx/ptxas-snapshot.txt (`bash scripts/ptxas.sh` keeps that
# current; this script does not run ptxas). The table replaces everything
# between the `kernel-table:begin` and `kernel-table:end` markers.
#
#   bash scripts/kernel-table.sh          rewrite the table in docs/BENCHMARKS.md
#   bash scripts/kernel-table.sh --print  only print it
set -euo pipefail
cd "$(dirname "$0")/.."

DOC="docs/BENCHMARKS.md"
SNAPSHOT="kernels-ptx/ptxas-snapshot.txt"
BEGIN="<!-- kernel-table:begin -->"
END="<!-- kernel-table:end -->"

print_only=0
case "${1:-}" in
  "") ;;
  --print) print_only=1 ;;
  *)
    echo "usage: bash scripts/kernel-table.sh [--print]" >&2
    exit 2
    ;;
esac

if [ ! -f "$SNAPSHOT" ]; then
  echo "kernel-table: $SNAPSHOT is missing. HINT: run \`bash scripts/ptxas.sh --bless\`" >&2
  exit 1
fi
for marker in "$BEGIN" "$END"; do
  if [ "$(grep -cxF -- "$marker" "$DOC")" != 1 ]; then
    echo "kernel-table: $DOC must hold the line \`$marker\` exactly once" >&2
    exit 1
  fi
done

log="$(mktemp)"
trap 'rm -f "$log" "$log.table" "$log.doc"' EXIT
echo "kernel-table: running every kernel on the simulator (cargo test --release)" >&2
if ! cargo test --release -p lasagna-tests --test ptx_table -- \
  --ignored --nocapture --test-threads 1 >"$log" 2>&1; then
  cat "$log" >&2
  echo "kernel-table: the table test failed (output above)" >&2
  exit 1
fi
grep '^|' "$log" >"$log.table" || true
rows=$(($(wc -l <"$log.table") - 2))
if [ "$rows" -lt 1 ]; then
  cat "$log" >&2
  echo "kernel-table: the test printed no table (output above)" >&2
  exit 1
fi

ptxas_version="$(sed -n 's/^# ptxas \([0-9.]*\).*/\1/p' "$SNAPSHOT" | head -n 1)"
{
  # scripts/test.sh checks this line's form: the date, the commit, the script.
  echo "Generated $(date -u +%F) at commit $(git rev-parse --short HEAD) by \`bash scripts/kernel-table.sh\`: $rows launches;"
  echo "ptxas ${ptxas_version:-?} columns from \`$SNAPSHOT\`, the rest counted by the"
  echo "simulator (\`tests/tests/ptx_table.rs\`)."
  echo
  cat "$log.table"
  echo
} >"$log.doc"

if [ "$print_only" = 1 ]; then
  cat "$log.doc"
  exit 0
fi
awk -v begin="$BEGIN" -v end="$END" -v table="$log.doc" '
  $0 == begin { print; while ((getline line < table) > 0) print line; skip = 1; next }
  $0 == end { skip = 0 }
  !skip { print }
' "$DOC" >"$DOC.tmp"
mv "$DOC.tmp" "$DOC"
echo "kernel-table: wrote $rows rows into $DOC" >&2
