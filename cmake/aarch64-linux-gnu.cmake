# Cross build for 64-bit ARM Linux on a Debian x86-64 machine (scripts/test_arm64.sh):
#   dpkg --add-architecture arm64 && apt-get update
#   apt-get install g++-aarch64-linux-gnu qemu-user libhwy-dev:arm64 libgtest-dev:arm64 \
#     zlib1g-dev:arm64 libbz2-dev:arm64 libcpp-httplib-dev:arm64 libbenchmark-dev:arm64
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
# The header-only dependencies (CLI11, nlohmann-json, Eigen) are the host's. Tests run under
# qemu-aarch64 (CMAKE_CROSSCOMPILING_EMULATOR), which ctest and gtest_discover_tests use.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# the arm64 libraries of the multiarch install (libc6:arm64 comes with the packages above); with
# -L /usr/aarch64-linux-gnu (the cross toolchain's libc) qemu 7.2 hangs creating a thread
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
