#!/usr/bin/env bash
# Sets up (packages, model), builds and runs the whole test suite:
#   1. unit + integration tests (CTest, Release build; the Slow and Qwen ones only when asked, below)
#   2. the same unit tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   3. the fuzzers (GGUF reader, cache specs, calibration JSON, tokenizers) for 60 s in all (libFuzzer, clang)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
scripts/get_model.sh
# OpenMP threads sleep instead of spinning while two test programs share the cores
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
# The Qwen2.5-Coder-1.5B tests (label Qwen) take long: only with H1BKV_QWEN=1 (and the model fetched)
skip=(-LE Qwen)
[ "${H1BKV_QWEN:-0}" = 1 ] && skip=()
# The slow end-to-end SmolLM2 tests (a suite or name containing "Slow": 2-4 minutes of CPU, the
# eval smoke run alone most of it) run before submitting, not in every CI run: only with
# H1BKV_SLOW=1 or H1BKV_QWEN=1 (the Qwen tests are Slow too), or by hand:
# ctest --test-dir build -R Slow -LE Qwen
slow=0
[ "${H1BKV_SLOW:-0}" = 1 ] || [ "${H1BKV_QWEN:-0}" = 1 ] && slow=1
[ $slow = 1 ] || skip+=(-E Slow)
ctest --test-dir build --output-on-failure -j2 "${skip[@]}"
# ... but the stories260K training runs issue 10 asks for (2 s each) stay in every run
[ $slow = 1 ] || ctest --test-dir build --output-on-failure --no-tests=error -R '^TrainFinetuneSlow\.'
scripts/test_sanitize.sh
FUZZ_SECONDS=${FUZZ_SECONDS:-60} scripts/fuzz.sh
