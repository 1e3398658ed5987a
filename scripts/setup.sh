#!/usr/bin/env bash
# Installs the Debian packages h1bkv builds and tests with, then configures and builds it.
# Usage: scripts/setup.sh [build-dir]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(build-essential cmake libcli11-dev nlohmann-json3-dev libgtest-dev libgmock-dev bubblewrap
      libbenchmark-dev libomp-dev clang libclang-rt-14-dev gnuplot-nox python3
      zlib1g-dev libbz2-dev libeigen3-dev libcpp-httplib-dev libhwy-dev pkg-config curl
      python3-venv chromium nginx)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
# The official openai client for the serve tests (tests/cli/serve_openai_client.py), in a
# git-ignored virtual environment; without network the tests that need it skip.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import openai' 2>/dev/null; then
  { python3 -m venv .venv && .venv/bin/pip install -q openai==1.109.1; } ||
    echo "setup: could not install the openai client into .venv; its serve tests will skip" >&2
fi
build=${1:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)"
