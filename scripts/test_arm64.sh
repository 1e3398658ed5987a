#!/usr/bin/env bash
# Cross-builds h1bkv for 64-bit ARM Linux (cmake/aarch64-linux-gnu.cmake) and runs the kernel and
# lower-layer tests under qemu-aarch64: the neon path's kernels against the scalar references.
# No ARM machine needed; speed under emulation means nothing, so nothing here is timed.
# Usage: scripts/test_arm64.sh [TEST...]   (default: test_util test_io test_tensor test_tokenize test_kv)
# Env: BUILD (build-arm64), SETUP=0 to skip the package install (needs root otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-arm64}
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(test_util test_io test_tensor test_tokenize test_kv)
if [ "${SETUP:-1}" = 1 ]; then
  dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64 && apt-get update -q; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q g++-aarch64-linux-gnu qemu-user \
    libhwy-dev:arm64 libgtest-dev:arm64 zlib1g-dev:arm64 libbz2-dev:arm64 libcpp-httplib-dev:arm64 \
    libbenchmark-dev:arm64 libgomp1:arm64 libstdc++6:arm64 >/dev/null
fi
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$BUILD" -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake "${launcher[@]}" >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target "${tests[@]}"
for t in "${tests[@]}"; do
  echo "== $t (qemu-aarch64)"
  qemu-aarch64 "$BUILD/$t" --gtest_brief=1
done
