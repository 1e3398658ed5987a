#!/usr/bin/env bash
# Sets up (packages, model), builds and runs the whole test suite:
#   1. unit + integration tests (CTest, Release build)
#   2. the same unit tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   3. the fuzzers (GGUF reader, cache specs, calibration JSON, tokenizers) for 60 s in all (libFuzzer, clang)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
scripts/get_model.sh
# OpenMP threads sleep instead of spinning while two test programs share the cores
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
# The Qwen2.5-Coder-1.5B tests (label Qwen) take long: only with H1BKV_QWEN=1 (and the model fetched)
qwen=(-LE Qwen)
[ "${H1BKV_QWEN:-0}" = 1 ] && qwen=()
ctest --test-dir build --output-on-failure -j2 "${qwen[@]}"
scripts/test_sanitize.sh
FUZZ_SECONDS=${FUZZ_SECONDS:-60} scripts/fuzz.sh
