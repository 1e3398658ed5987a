// The streaming read both benchmarks measure bandwidth with: sum of n floats (n % 64 == 0, p
// 32-byte aligned) with 8 independent AVX2 accumulators, so the adds never limit the loads.
#pragma once
#include <immintrin.h>

#include <cstddef>

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
  float s = 0;
  for (size_t i = 0; i < n; ++i) s += p[i];
  return s;
#endif
}
