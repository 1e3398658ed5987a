// vexp.h's kernels, one copy per Highway target: AVX3_DL 16 lanes (exp512_ps: exp256_ps's
// operations in 512-bit registers), AVX2 8 lanes (vexp-body.h), NEON 4 lanes (exp128_neon: the
// same operations), others the scalar reference.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "tensor/vexp.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "tensor/isa.h"
#include "tensor/vexp.h"

#if HWY_ARCH_X86
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace h1bkv::detail::HWY_NAMESPACE {
namespace {

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3_DL
#include "tensor/vexp-body.h"

// lanes of the 8-float blocks 0, 2, 4, ... plus those of 1, 3, 5, ..., then the tree of vexp.h
float tree8(__m256 s) {
  alignas(32) float l[8];
  _mm256_store_ps(l, s);
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}
#endif

#if HWY_TARGET == HWY_AVX3_DL
inline __m512 exp512_ps(__m512 x) {
  const __m512 lo = _mm512_set1_ps(-87.3365479f), hi = _mm512_set1_ps(88.8f);
  const __m512 magic = _mm512_set1_ps(12582912.0f);
  const __m512 c1 = _mm512_set1_ps(0.693359375f), c2 = _mm512_set1_ps(-2.12194440e-4f);
  const __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
  const __m512 xc = _mm512_min_ps(hi, _mm512_max_ps(lo, x));
  const __m512 t = _mm512_fmadd_ps(xc, _mm512_set1_ps(1.44269504088896341f), magic);
  const __m512 n = _mm512_sub_ps(t, magic);
  __m512 r = _mm512_fnmadd_ps(n, c1, xc);
  r = _mm512_fnmadd_ps(n, c2, r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 r2 = _mm512_mul_ps(r, r);
  p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __m512i ni = _mm512_sub_epi32(_mm512_castps_si512(t), _mm512_castps_si512(magic));
  const __m512i n1 = _mm512_srai_epi32(ni, 1), n2 = _mm512_sub_epi32(ni, n1);
  const __m512i bias = _mm512_set1_epi32(127);
  const __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n1, bias), 23));
  const __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n2, bias), 23));
  return _mm512_maskz_mul_ps((__mmask16)~under, _mm512_mul_ps(p, s1), s2);
}
#endif

#if HWY_TARGET == HWY_NEON
// vexp_ref's operations, 4 lanes (vfmaq / vfmsq are the same fused operations as std::fma)
inline float32x4_t exp128_neon(float32x4_t x) {
  const float32x4_t magic = vdupq_n_f32(12582912.0f);
  const uint32x4_t under = vcltq_f32(x, vdupq_n_f32(-87.3365479f)), nan = vmvnq_u32(vceqq_f32(x, x));
  const float32x4_t xc = vminq_f32(x, vdupq_n_f32(88.8f));
  const float32x4_t t = vfmaq_f32(magic, xc, vdupq_n_f32(1.44269504088896341f));
  const float32x4_t n = vsubq_f32(t, magic);  // round(x log2 e), ties to even
  float32x4_t r = vfmsq_f32(xc, n, vdupq_n_f32(0.693359375f));
  r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
  float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
  p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
  p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
  p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
  // 2^n = 2^(n >> 1) * 2^(n - (n >> 1)), both factors normal (n in [-126, 128] once clamped)
  const int32x4_t ni = vcvtq_s32_f32(n), n1 = vshrq_n_s32(ni, 1), n2 = vsubq_s32(ni, n1);
  const int32x4_t bias = vdupq_n_s32(127);
  const float32x4_t s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, bias), 23));
  const float32x4_t s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, bias), 23));
  const float32x4_t y = vmulq_f32(vmulq_f32(p, s1), s2);
  return vbslq_f32(nan, x, vbslq_f32(under, vdupq_n_f32(0.0f), y));
}
#endif

}  // namespace

void Vexp(const float* x, float* y, int64_t n) {
  int64_t i = 0;
#if HWY_TARGET == HWY_AVX3_DL
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp512_ps(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, k, exp512_ps(_mm512_maskz_loadu_ps(k, x + i)));
  }
  return;
#elif HWY_TARGET == HWY_AVX2
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp256_ps(_mm256_loadu_ps(x + i)));
  if (i < n) {
    alignas(32) float t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t j = i; j < n; ++j) t[j - i] = x[j];
    _mm256_store_ps(t, exp256_ps(_mm256_load_ps(t)));
    for (int64_t j = i; j < n; ++j) y[j] = t[j - i];
  }
  return;
#elif HWY_TARGET == HWY_NEON
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, exp128_neon(vld1q_f32(x + i)));
#endif
  for (; i < n; ++i) y[i] = vexp_ref(x[i]);
}

float MaxPadded(const float* x, int64_t n) {
#if HWY_TARGET == HWY_AVX3_DL
  __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;  // two chains (vmaxps latency)
  int64_t t = 0;
  for (; t + 32 <= n; t += 32) {
    m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x + t));
    m1 = _mm512_max_ps(m1, _mm512_loadu_ps(x + t + 16));
  }
  for (; t < n; t += 8) m0 = _mm512_mask_max_ps(m0, 0xFF, m0, _mm512_zextps256_ps512(_mm256_loadu_ps(x + t)));
  return _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
#elif HWY_TARGET == HWY_AVX2
  __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0;
  int64_t t = 0;
  for (; t + 16 <= n; t += 16) {
    m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + t));
    m1 = _mm256_max_ps(m1, _mm256_loadu_ps(x + t + 8));
  }
  if (t < n) m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + t));
  alignas(32) float l[8];
  _mm256_store_ps(l, _mm256_max_ps(m0, m1));
  return *std::max_element(l, l + 8);
#elif HWY_TARGET == HWY_NEON
  float32x4_t m0 = vdupq_n_f32(-INFINITY), m1 = m0;
  int64_t t = 0;
  for (; t + 8 <= n; t += 8) {
    m0 = vmaxq_f32(m0, vld1q_f32(x + t));
    m1 = vmaxq_f32(m1, vld1q_f32(x + t + 4));
  }
  float r = vmaxvq_f32(vmaxq_f32(m0, m1));
  for (; t < n; ++t) r = std::max(r, x[t]);
  return r;
#else
  float r = -INFINITY;
  for (int64_t t = 0; t < n; ++t) r = std::max(r, x[t]);
  return r;
#endif
}

float ExpSubSum(float* x, int64_t n, float m) {
#if HWY_TARGET == HWY_AVX3_DL
  const __m512 mv = _mm512_set1_ps(m);
  __m512 s = _mm512_setzero_ps();  // lanes 0-7: even blocks, 8-15: odd blocks
  int64_t t = 0;
  for (; t + 16 <= n; t += 16) {
    const __m512 p = exp512_ps(_mm512_sub_ps(_mm512_loadu_ps(x + t), mv));
    _mm512_storeu_ps(x + t, p);
    s = _mm512_add_ps(s, p);
  }
  __m256 se = _mm512_castps512_ps256(s);
  if (t < n) {  // one more (even) block
    const __m256 p = exp256_ps(_mm256_sub_ps(_mm256_loadu_ps(x + t), _mm256_set1_ps(m)));
    _mm256_storeu_ps(x + t, p);
    se = _mm256_add_ps(se, p);
  }
  return tree8(_mm256_add_ps(se, _mm512_extractf32x8_ps(s, 1)));
#elif HWY_TARGET == HWY_AVX2
  const __m256 mv = _mm256_set1_ps(m);
  __m256 s = _mm256_setzero_ps(), s2 = _mm256_setzero_ps();
  int64_t t = 0;
  for (; t + 16 <= n; t += 16) {  // two independent exps per iteration
    const __m256 p = exp256_ps(_mm256_sub_ps(_mm256_loadu_ps(x + t), mv));
    const __m256 p2 = exp256_ps(_mm256_sub_ps(_mm256_loadu_ps(x + t + 8), mv));
    _mm256_storeu_ps(x + t, p);
    _mm256_storeu_ps(x + t + 8, p2);
    s = _mm256_add_ps(s, p);
    s2 = _mm256_add_ps(s2, p2);
  }
  if (t < n) {
    const __m256 p = exp256_ps(_mm256_sub_ps(_mm256_loadu_ps(x + t), mv));
    _mm256_storeu_ps(x + t, p);
    s = _mm256_add_ps(s, p);
  }
  return tree8(_mm256_add_ps(s, s2));
#elif HWY_TARGET == HWY_NEON
  // as exp_sub_sum_ref: lanes of the even 8-float blocks in e, of the odd ones in o (n % 8 == 0)
  const float32x4_t mv = vdupq_n_f32(m);
  float32x4_t e[2] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)}, o[2] = {e[0], e[1]};
  for (int64_t t = 0; t < n; t += 8) {
    float32x4_t* acc = (t / 8) % 2 ? o : e;
    for (int h = 0; h < 2; ++h) {
      const float32x4_t p = exp128_neon(vsubq_f32(vld1q_f32(x + t + 4 * h), mv));
      vst1q_f32(x + t + 4 * h, p);
      acc[h] = vaddq_f32(acc[h], p);
    }
  }
  float l[8];
  vst1q_f32(l, vaddq_f32(e[0], o[0]));
  vst1q_f32(l + 4, vaddq_f32(e[1], o[1]));
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
#else
  return exp_sub_sum_ref(x, n, m);
#endif
}

}  // namespace h1bkv::detail::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace h1bkv {
namespace detail {
HWY_EXPORT(Vexp);
HWY_EXPORT(MaxPadded);
HWY_EXPORT(ExpSubSum);
}  // namespace detail

float vexp_ref(float x) {
  if (std::isnan(x)) return x;
  if (x < -87.3365479f) return 0.0f;
  const float xc = std::min(x, 88.8f);
  const float t = std::fma(xc, 1.44269504088896341f, 12582912.0f);
  const float n = t - 12582912.0f;  // round(x log2 e), ties to even, as the vector paths
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

float exp_sub_sum_ref(float* x, int64_t n, float m) {
  float l[8] = {0, 0, 0, 0, 0, 0, 0, 0}, l2[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t t = 0; t < n; t += 8)
    for (int j = 0; j < 8; ++j) ((t / 8) % 2 ? l2 : l)[j] += (x[t + j] = vexp_ref(x[t + j] - m));
  for (int j = 0; j < 8; ++j) l[j] += l2[j];
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

void vexp(const float* x, float* y, int64_t n) {
  if (active_isa() == Isa::scalar) {
    for (int64_t i = 0; i < n; ++i) y[i] = vexp_ref(x[i]);
    return;
  }
  HWY_DYNAMIC_DISPATCH(detail::Vexp)(x, y, n);
}

float max_padded(const float* x, int64_t n) {
  if (active_isa() == Isa::scalar) {
    float r = -INFINITY;
    for (int64_t t = 0; t < n; ++t) r = std::max(r, x[t]);
    return r;
  }
  return HWY_DYNAMIC_DISPATCH(detail::MaxPadded)(x, n);
}

float exp_sub_sum(float* x, int64_t n, float m) {
  if (active_isa() == Isa::scalar) return exp_sub_sum_ref(x, n, m);
  return HWY_DYNAMIC_DISPATCH(detail::ExpSubSum)(x, n, m);
}

}  // namespace h1bkv
#endif  // HWY_ONCE
