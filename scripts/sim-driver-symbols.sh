#!/usr/bin/env bash
# Fails when the driver functions a `cuda` binary imports differ from what the
# fake driver (kernels-ptx/sim-driver) exports: a new driver call would make the
# binary fail to start on it, and a stale export is untested surface.
#
#   bash scripts/sim-driver-symbols.sh [binary] [driver]
#
# Defaults: target/debug/lasagna (built with --features cuda) and
# target/release/liblasagna_sim_driver.so (scripts/sim-driver.sh builds it).
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:-target/debug/lasagna}"
lib="${2:-target/release/liblasagna_sim_driver.so}"
for f in "$bin" "$lib"; do
  if [ ! -f "$f" ]; then
    echo "sim-driver-symbols: $f does not exist. HINT: build it first (scripts/test.sh, cuda step)" >&2
    exit 1
  fi
done

# nm -D prints "U name" for imports and "addr T name" for exports; a
# versioned import would read name@VERSION.
imported="$(nm -D --undefined-only "$bin" | awk '{print $NF}' | sed 's/@.*//' | grep -E '^cu[A-Z]' | sort -u)"
exported="$(nm -D --defined-only "$lib" | awk '$2 == "T" {print $3}' | grep -E '^cu[A-Z]' | sort -u)"
if [ "$imported" != "$exported" ]; then
  echo "sim-driver-symbols: $bin imports a different set of cu* functions than $lib exports" >&2
  diff <(echo "$imported") <(echo "$exported") | sed -n 's/^< /  imported, not exported: /p; s/^> /  exported, not imported: /p' >&2
  echo "HINT: add (or drop) the export in kernels-ptx/sim-driver/src/lib.rs" >&2
  exit 1
fi
echo "sim-driver-symbols: the $(echo "$imported" | wc -l) cu* functions $bin imports are exactly those the fake driver exports"
