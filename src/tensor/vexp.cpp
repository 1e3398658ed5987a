#include "tensor/vexp.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace h1bkv {

float vexp_ref(float x) {
  if (std::isnan(x)) return x;
  if (x < -87.3365479f) return 0.0f;
  const float xc = std::min(x, 88.8f);
  const float t = std::fma(xc, 1.44269504088896341f, 12582912.0f);
  const float n = t - 12582912.0f;  // round(x log2 e), ties to even, as the AVX2 path
  float r = std::fma(-n, 0.693359375f, xc);
  r = std::fma(-n, -2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  const float r2 = r * r;
  p = std::fma(p, r2, r + 1.0f);
  const int ni = (int)n, n1 = ni >> 1, n2 = ni - n1;
  const uint32_t b1 = (uint32_t)(n1 + 127) << 23, b2 = (uint32_t)(n2 + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, 4);
  std::memcpy(&s2, &b2, 4);
  return (p * s1) * s2;
}

void vexp(const float* x, float* y, int64_t n) {
#if defined(__AVX2__) && defined(__FMA__)
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp256_ps(_mm256_loadu_ps(x + i)));
  if (i < n) {
    alignas(32) float t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t j = i; j < n; ++j) t[j - i] = x[j];
    _mm256_store_ps(t, exp256_ps(_mm256_load_ps(t)));
    for (int64_t j = i; j < n; ++j) y[j] = t[j - i];
  }
#else
  for (int64_t i = 0; i < n; ++i) y[i] = vexp_ref(x[i]);
#endif
}

}  // namespace h1bkv
