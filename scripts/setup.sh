#!/usr/bin/env bash
# Installs what descent needs to build, test and run, from Debian's packages only.
# Idempotent: it asks apt only for packages that are not installed yet.
set -euo pipefail
PACKAGES=(build-essential cmake ninja-build clang-19 libclang-rt-19-dev llvm-19-dev llvm-19-tools
  libfmt-dev catch2 libcli11-dev nlohmann-json3-dev zlib1g-dev dataset-fashion-mnist
  openmpi-bin libopenmpi-dev)
# `setup.sh --bench` adds the PyTorch baseline the benchmarks compare against
# (never needed to build, test or run descent).
if [ "${1:-}" = "--bench" ]; then PACKAGES+=(python3-torch libopenblas0-pthread); fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
