#!/usr/bin/env bash
# Verifies the committed MNIST copy: every file present, and the sha256 of
# each decompressed file equal to data/mnist/SHA256SUMS.raw.
set -euo pipefail
cd "$(dirname "$0")/../data/mnist"
status=0
while read -r sum name; do
  if [ ! -f "$name.gz" ]; then
    echo "missing data/mnist/$name.gz (restore it from git, or copy it from the MNIST database)" >&2
    status=1; continue
  fi
  got=$(gzip -dc "$name.gz" | sha256sum | cut -d' ' -f1)
  if [ "$got" != "$sum" ]; then
    echo "data/mnist/$name.gz: sha256 $got, expected $sum (corrupted copy)" >&2
    status=1
  else
    echo "ok  $name"
  fi
done < SHA256SUMS.raw
exit $status
