#!/usr/bin/env bash
# A Lasagna preset (CPU) vs the same network in JAX (CPU), side by side in
# one run on this machine. Prints each run's per-epoch seconds and test
# accuracy and the ratio of seconds per epoch.
# Usage: bash scripts/bench-vs-jax.sh mlp|cnn|lstm [EPOCHS]   (ROUNDS=N, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-mlp}"
epochs="${2:-5}"
out="${OUT_DIR:-out/bench-$model}"
# The Lasagna side runs exactly the peer's network.
case "$model" in
  mlp) peer=benches/peers/jax_mlp.py; ours=mlp ;;
  cnn) peer=benches/peers/jax_cnn.py; ours=benches/peers/cnn_as_jax.toml ;;
  lstm) peer=benches/peers/jax_lstm.py; ours=lstm ;;  # written here after jax_mlp.py (the peers had no LSTM)
  *) echo "unknown model $model (mlp, cnn or lstm)" >&2; exit 2 ;;
esac
mkdir -p "$out"

venv=.tools/peers-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q jax optax flax
fi
cargo build --release --locked -p lasagna-cli >/dev/null

[ -f "$peer" ] || { echo "missing $peer (the JAX peer baseline)" >&2; exit 1; }

rounds="${ROUNDS:-3}"
# This machine is a shared VM whose speed drifts; alternate the two
# contenders for several rounds so both see the same conditions.
for r in $(seq 1 "$rounds"); do
  echo "== round $r/$rounds: lasagna $model --val 0 (all 60,000, as the JAX peer trains)"
  ./target/release/lasagna train --model "$ours" --epochs "$epochs" --device cpu --val 0 --metrics "$out/lasagna_val0_$r.json" --quiet
  echo "== round $r/$rounds: JAX + optax (CPU, all 60,000)"
  "$venv/bin/python" "$peer" --epochs "$epochs" --data data/mnist > "$out/jax_$r.log"
  tail -n 1 "$out/jax_$r.log" > "$out/jax_$r.json"
done

echo "== lasagna $model, default (55,000 train / 5,000 val), once"
./target/release/lasagna train --model "$ours" --epochs "$epochs" --device cpu --metrics "$out/lasagna_val5000.json" --quiet

"$venv/bin/python" - "$out" "$rounds" <<'PY'
import json, sys, statistics as st
d, rounds = sys.argv[1], int(sys.argv[2])
ours5k = json.load(open(f"{d}/lasagna_val5000.json"))
o, j, oacc, jacc = [], [], [], []
for r in range(1, rounds + 1):
    ours = json.load(open(f"{d}/lasagna_val0_{r}.json"))
    jax = json.load(open(f"{d}/jax_{r}.json"))
    o += [e["seconds"] for e in ours["epochs"]]
    # JAX's first epoch includes XLA compilation; it is left out of its median.
    j += jax["epoch_seconds"][1:]
    oacc.append(ours["test_accuracy"]); jacc.append(jax["test_accuracy"])
o5 = [e["seconds"] for e in ours5k["epochs"]]
print(f"lasagna --val 5000: test acc {100*ours5k['test_accuracy']:.2f}%  s/epoch median {st.median(o5):.3f}  ({55000/st.median(o5):.0f} images/s)")
print(f"lasagna --val 0   : test acc {100*oacc[0]:.2f}%  s/epoch median {st.median(o):.3f} over {len(o)} epochs, min {min(o):.3f}, max {max(o):.3f}")
print(f"jax               : test acc {100*jacc[0]:.2f}%  s/epoch median {st.median(j):.3f} over {len(j)} epochs, min {min(j):.3f}, max {max(j):.3f}")
print(f"ratio jax/lasagna seconds per epoch (median, both on 60,000 images): {st.median(j)/st.median(o):.2f}x")
PY
