#!/usr/bin/env bash
# Builds the unit tests with AddressSanitizer + UndefinedBehaviorSanitizer (-DH1BKV_SANITIZE=ON,
# -O1 -g1: ASan's recommended level; it compiles ~2.8x faster than -O2 -g under ASan, the largest
# share of CI's time, and keeps file:line in the reports) in build-asan and runs them with CTest. Any ASan/UBSan report fails the test it happens in.
#
# Slow end-to-end tests are skipped: by convention a test whose suite or name contains "Slow"
# (TEST(ModelSlow, ...), TEST(Eval, SlowPerplexity)) is excluded here but runs in the normal build.
#   H1BKV_ASAN_FILTER   ctest -E regex of tests to skip (default "Slow"; "" runs everything)
#   H1BKV_ASAN_TARGETS  test executables to build (default: every test_<layer> target)
#   H1BKV_ASAN_BUILD    build directory (default build-asan)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${H1BKV_ASAN_BUILD:-build-asan}
filter=${H1BKV_ASAN_FILTER-Slow}
jobs=$(nproc)

cmake -S . -B "$build" -DH1BKV_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DH1BKV_TESTS=ON -DH1BKV_BENCH=OFF >/dev/null
if [ -n "${H1BKV_ASAN_TARGETS:-}" ]; then
  read -r -a targets <<< "$H1BKV_ASAN_TARGETS"
else
  mapfile -t targets < <(cmake --build "$build" --target help | sed -n 's/^\.\.\. \(test_[a-z0-9_]*\)$/\1/p')
fi
[ ${#targets[@]} -gt 0 ] || { echo "test_sanitize: no test targets found" >&2; exit 1; }
echo "test_sanitize: building ${targets[*]}"
cmake --build "$build" -j"$jobs" --target "${targets[@]}"

# halt on the first report with a stack trace; leaks count as failures too.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:strict_string_checks=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# With H1BKV_ASAN_TARGETS the other executables are not built; skip their placeholder tests
# (gtest_discover_tests registers <target>_NOT_BUILT for a missing executable).
exclude=$filter
if [ -n "${H1BKV_ASAN_TARGETS:-}" ]; then exclude=${exclude:+$exclude|}_NOT_BUILT; fi
args=(--test-dir "$build" --output-on-failure -j"$jobs" --no-tests=error)
[ -n "$exclude" ] && args+=(-E "$exclude")
ctest "${args[@]}"
