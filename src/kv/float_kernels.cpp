#include "kv/float_kernels.h"

#include <immintrin.h>

#include "util/fp16.h"

namespace h1bkv {

float dot_f32_ref(const float* a, const float* b, int n) {
  float s = 0;
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

float dot_f32_f16_ref(const float* a, const uint16_t* b, int n) {
  float s = 0;
  for (int i = 0; i < n; ++i) s += a[i] * fp16_to_f32_scalar(b[i]);
  return s;
}

void axpy_f32_ref(float w, const float* x, float* out, int n) {
  for (int i = 0; i < n; ++i) out[i] += w * x[i];
}

void axpy_f16_ref(float w, const uint16_t* x, float* out, int n) {
  for (int i = 0; i < n; ++i) out[i] += w * fp16_to_f32_scalar(x[i]);
}

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

static inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

float dot_f32(const float* a, const float* b, int n) {
  __m256 acc = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  float s = hsum(acc);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

float dot_f32_f16(const float* a, const uint16_t* b, int n) {
  __m256 acc = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 bf = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i)));
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), bf, acc);
  }
  float s = hsum(acc);
  for (; i < n; ++i) s += a[i] * fp16_to_f32(b[i]);
  return s;
}

void axpy_f32(float w, const float* x, float* out, int n) {
  const __m256 wv = _mm256_set1_ps(w);
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + i), _mm256_loadu_ps(out + i)));
  for (; i < n; ++i) out[i] += w * x[i];
}

void axpy_f16(float w, const uint16_t* x, float* out, int n) {
  const __m256 wv = _mm256_set1_ps(w);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 xf = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
    _mm256_storeu_ps(out + i, _mm256_fmadd_ps(wv, xf, _mm256_loadu_ps(out + i)));
  }
  for (; i < n; ++i) out[i] += w * fp16_to_f32(x[i]);
}

#else

float dot_f32(const float* a, const float* b, int n) { return dot_f32_ref(a, b, n); }
float dot_f32_f16(const float* a, const uint16_t* b, int n) { return dot_f32_f16_ref(a, b, n); }
void axpy_f32(float w, const float* x, float* out, int n) { axpy_f32_ref(w, x, out, n); }
void axpy_f16(float w, const uint16_t* x, float* out, int n) { axpy_f16_ref(w, x, out, n); }

#endif

}  // namespace h1bkv
