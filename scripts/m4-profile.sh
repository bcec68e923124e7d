#!/usr/bin/env bash
# Where an inference's instructions go on the emulated Cortex-M, per
# function: runs `lasagna deploy` on ONE image with QEMU logging every
# translated block (-d in_asm,exec,nochain), then sums each executed
# block's instruction count by the function it belongs to. Counts include
# the boot, the model check and the image's quantization (outside what
# `deploy` reports); the kernels' lines are what the report's count is
# made of. Needs the release CLI (cargo build --release -p lasagna-cli).
#
#   bash scripts/m4-profile.sh cnn-int8.lsn [qemu-m4] [top N, default 15]
set -euo pipefail
model=${1:?usage: m4-profile.sh MODEL.lsn [BOARD] [TOP]}
board=${2:-qemu-m4}
top=${3:-15}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
real=$(command -v qemu-system-arm) || { echo "qemu-system-arm not found (sudo apt-get install qemu-system-arm)" >&2; exit 1; }
cat > "$work/qemu-system-arm" <<WRAP
#!/bin/sh
exec "$real" -d in_asm,exec,nochain -D "$work/log" "\$@"
WRAP
chmod +x "$work/qemu-system-arm"
PATH="$work:$PATH" "$here/target/release/lasagna" deploy --model-file "$model" --board "$board" --images 1 | grep -E "cost|host check"
python3 - "$work/log" "$top" <<'PY'
import collections, re, sys
size, first, count = {}, None, 0
per = collections.Counter()
for line in open(sys.argv[1], errors="replace"):
    if line.startswith("IN:"):
        first, count = None, 0
    elif (m := re.match(r"0x([0-9a-f]{8}):", line)):
        first = int(m.group(1), 16) if first is None else first
        count += 1
        size[first] = count
    elif line.startswith("Trace"):
        pc = int(line.split("[")[1].split("/")[1], 16)
        per[line.rsplit("]", 1)[1].strip()] += size.get(pc, 0)
total = sum(per.values())
print(f"{total:>12,} instructions executed in all (boot and image loading included)")
for name, n in per.most_common(int(sys.argv[2])):
    short = re.sub(r"17h[0-9a-f]{16}E$", "", name)
    print(f"{n:>12,} {100 * n / total:5.1f}%  {short}")
PY
