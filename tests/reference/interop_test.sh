#!/usr/bin/env bash
# PyTorch interop: for every full fixture, one step of `descent train` saved as
# a checkpoint must load into nn.Sequential with load_state_dict(strict=True)
# and hold PyTorch's weights after one step. Registered with ctest only when
# python3-torch is installed (descent itself never needs PyTorch).
set -euo pipefail
descent=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
for f in "$root"/tests/reference/fixtures/*/; do
  name=$(basename "$f")
  grep -q '"after_one_step"' "$f/expected.json" || continue
  for engine in jit; do
    "$descent" train "$f/model.nn" --data "$f/data.csv" --init "$f/init.safetensors" \
      --no-shuffle --epochs 1 --engine "$engine" --save "$tmp/$name.safetensors" > /dev/null
    /usr/bin/python3 "$root/tests/reference/interop_check.py" --checkpoint "$tmp/$name.safetensors" \
      --fixture "$name" --key after_one_step
  done
  n=$((n + 1))
done
echo "checked $n fixtures"
[ "$n" -ge 10 ]
