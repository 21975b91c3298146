#!/usr/bin/env bash
# A short, fixed-time libFuzzer run of every fuzz target (what `make fuzz-smoke`
# and CI run): fuzz/smoke.sh <fuzz build dir> <seconds per target> [target...]
# Each target starts from its committed corpus and dictionary, with a memory
# limit (-rss_limit_mb, which also caps any single allocation) and a per-input
# timeout. New inputs go to a scratch corpus, never into fuzz/corpus. A crash
# leaves its input in <build>/fuzz-artifacts/ and fails the run; keep it in
# fuzz/regressions/<target>/ once fixed, so ctest replays it in every build.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:?usage: fuzz/smoke.sh <fuzz build dir> <seconds per target> [target...]}
SECONDS_PER_TARGET=${2:?usage: fuzz/smoke.sh <fuzz build dir> <seconds per target> [target...]}
shift 2
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(parser safetensors checkpoint idx csv ir)
# 2 GB is ten times what the largest legal input of max_len bytes needs: an
# allocation beyond it means a size taken from the file was trusted.
RSS_LIMIT_MB=${FUZZ_RSS_LIMIT_MB:-2048}
TIMEOUT_S=${FUZZ_TIMEOUT_S:-10}

ARTIFACTS=$BUILD/fuzz-artifacts
mkdir -p "$ARTIFACTS"
status=0
for t in "${TARGETS[@]}"; do
  work=$(mktemp -d "${TMPDIR:-/tmp}/descent-fuzz-corpus-$t.XXXXXX")
  log=$ARTIFACTS/$t.log
  start=$(date +%s)
  if "$BUILD/fuzz/fuzz_$t" -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb="$RSS_LIMIT_MB" \
      -timeout="$TIMEOUT_S" -dict="fuzz/dict/$t.dict" -artifact_prefix="$ARTIFACTS/$t-" \
      -print_final_stats=1 "$work" "fuzz/corpus/$t" "fuzz/regressions/$t" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "fuzz-smoke: $t: ok, ${runs:-?} inputs in $(($(date +%s) - start)) s, $cov"
  else
    status=1
    echo "fuzz-smoke: $t: FAILED (log: $log); the input:"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz:|artifact_prefix|Test unit written)' "$log" | head -20 || tail -30 "$log"
  fi
  rm -rf "$work"
done
exit $status
