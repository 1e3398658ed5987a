// The streaming read that decode speed is judged against (bench, bench_bandwidth, docs/speed.md).
#pragma once
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include <cstddef>

namespace h1bkv {

// Sum of n floats (n % 64 == 0, p 32-byte aligned) with 8 independent accumulators, so the adds
// never limit the loads.
inline float stream_sum(const float* p, size_t n) {
#if defined(__AVX2__)
  __m256 a[8];
  for (auto& x : a) x = _mm256_setzero_ps();
  for (size_t i = 0; i < n; i += 64)
    for (int j = 0; j < 8; ++j) a[j] = _mm256_add_ps(a[j], _mm256_load_ps(p + i + 8 * j));
  for (int j = 1; j < 8; ++j) a[0] = _mm256_add_ps(a[0], a[j]);
  alignas(32) float l[8];
  _mm256_store_ps(l, a[0]);
  return l[0] + l[1] + l[2] + l[3] + l[4] + l[5] + l[6] + l[7];
#else
  float s[8] = {};
  for (size_t i = 0; i < n; i += 8)
    for (int j = 0; j < 8; ++j) s[j] += p[i + j];
  return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
#endif
}

// Best of `passes` streaming reads of a fresh `bytes` buffer (every page written first), the
// threads each reading a contiguous slice: 1e9 bytes per second.
double stream_read_gbps(int threads, size_t bytes = size_t(512) << 20, int passes = 3);

}  // namespace h1bkv
