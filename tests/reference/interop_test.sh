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
# Every fixture's checkpoint first, then one python process checks them all
# (importing torch takes seconds; once per fixture dominated the test).
n=0
args=()
for f in "$root"/tests/reference/fixtures/*/; do
  name=$(basename "$f")
  grep -q '"after_one_step"' "$f/expected.json" || continue
  "$descent" train "$f/model.nn" --data "$f/data.csv" --init "$f/init.safetensors" \
    --no-shuffle --epochs 1 --save "$tmp/$name.safetensors" > /dev/null
  args+=(--checkpoint "$tmp/$name.safetensors" --fixture "$name")
  n=$((n + 1))
done
/usr/bin/python3 "$root/tests/reference/interop_check.py" --key after_one_step "${args[@]}"
echo "checked $n fixtures"
[ "$n" -ge 10 ]
