#!/usr/bin/env bash
# Runs one pass test the way LLVM's lit does: every `// RUN: <command>` line of
# FILE, with %s replaced by FILE's path, in bash with pipefail, `descent` and
# LLVM's FileCheck and `not` on the PATH. Fails on the first failing line.
# Usage: run_test.sh DESCENT_BINARY LLVM_TOOLS_DIR FILE
set -u
if [ $# -ne 3 ]; then
  echo "usage: run_test.sh DESCENT_BINARY LLVM_TOOLS_DIR FILE" >&2
  exit 2
fi
export PATH="$(dirname "$1"):$2:$PATH"
file=$3
n=0
while IFS= read -r line; do
  n=$((n + 1))
  cmd=${line#*RUN: }
  cmd=${cmd//%s/$file}
  echo "RUN: $cmd"
  if ! bash -o pipefail -c "$cmd"; then
    echo "FAILED: $file, RUN line $n" >&2
    exit 1
  fi
done < <(grep -E '^// RUN: ' "$file")
if [ "$n" -eq 0 ]; then
  echo "$file: no // RUN: lines" >&2
  exit 1
fi
