// Dot products and weighted accumulation over f32 / f16 head vectors (float_kernels.h), one copy
// per Highway target: AVX2 and AVX3_DL run the 8-lane code below (F16C widening, FMA), NEON the
// 4-lane code (fcvtl widening, fmla), others and the scalar path the references.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kv/codecs/float_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#if HWY_ARCH_X86
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstddef>

#include "kv/codecs/float_kernels.h"
#include "tensor/isa.h"
#include "tensor/simd-inl.h"
#include "util/fp16.h"

HWY_BEFORE_NAMESPACE();
namespace h1bkv::detail::HWY_NAMESPACE {
namespace {

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3_DL
// 8 horizontal sums at once: lane j = sum of a[j], tree ((0+1)+(2+3))+((4+5)+(6+7)).
inline __m256 hsum8(const __m256* a) {
  const __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  // u0 = [a0..a3 lanes 0-3 | a0..a3 lanes 4-7], u1 likewise for a4..a7
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

template <int NG>
void dot_group_avx(const float* const* q, const uint16_t* k, size_t stride, int64_t n, int d,
                          float* const* out) {
  const int nc = d / 8;
  for (int64_t t0 = 0; t0 < n; t0 += 8) {
    const int m = (int)std::min<int64_t>(8, n - t0);
    __m256 acc[NG][8];
    for (int j = 0; j < 8; ++j) {
      const uint16_t* kt = k + (size_t)(t0 + std::min(j, m - 1)) * stride;  // pad: repeat the last
      for (int g = 0; g < NG; ++g) acc[g][j] = _mm256_setzero_ps();
      for (int c = 0; c < nc; ++c) {
        const __m256 kf = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kt + 8 * c)));
        for (int g = 0; g < NG; ++g) acc[g][j] = _mm256_fmadd_ps(_mm256_loadu_ps(q[g] + 8 * c), kf, acc[g][j]);
      }
    }
    for (int g = 0; g < NG; ++g) {
      const __m256 s = hsum8(acc[g]);
      if (m == 8) {
        _mm256_storeu_ps(out[g] + t0, s);
      } else {
        alignas(32) float tmp[8];
        _mm256_store_ps(tmp, s);
        for (int j = 0; j < m; ++j) out[g][t0 + j] = tmp[j];
      }
    }
  }
}

template <int NG, int NC>
void axpy_group_tile(const float* const* w, const uint16_t* v, size_t stride, int64_t n,
                            int c0, float* const* acc) {
  __m256 a[NG][NC];
  for (int g = 0; g < NG; ++g)
    for (int c = 0; c < NC; ++c) a[g][c] = _mm256_loadu_ps(acc[g] + 8 * (c0 + c));
  for (int64_t t = 0; t < n; ++t) {
    const uint16_t* vt = v + (size_t)t * stride + 8 * c0;
    for (int c = 0; c < NC; ++c) {
      const __m256 vf = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(vt + 8 * c)));
      for (int g = 0; g < NG; ++g) a[g][c] = _mm256_fmadd_ps(_mm256_broadcast_ss(w[g] + t), vf, a[g][c]);
    }
  }
  for (int g = 0; g < NG; ++g)
    for (int c = 0; c < NC; ++c) _mm256_storeu_ps(acc[g] + 8 * (c0 + c), a[g][c]);
}

template <int NG>
void axpy_group_avx(const float* const* w, const uint16_t* v, size_t stride, int64_t n, int d,
                           float* const* acc) {
  constexpr int NC = NG <= 3 ? 4 : 2;  // NG * NC <= 12 accumulators (FMA chains)
  const int nc = d / 8;
  for (int c0 = 0; c0 < nc; c0 += NC) {
    switch (std::min(NC, nc - c0)) {
      case 1: axpy_group_tile<NG, 1>(w, v, stride, n, c0, acc); break;
      case 2: axpy_group_tile<NG, 2>(w, v, stride, n, c0, acc); break;
      case 3: axpy_group_tile<NG, 3>(w, v, stride, n, c0, acc); break;
      default: axpy_group_tile<NG, NC>(w, v, stride, n, c0, acc); break;
    }
  }
}

#endif

}  // namespace

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3_DL
float Dot(const float* a, const float* b, int n) {
  __m256 acc = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  float s = hsum_ps(acc);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

float DotF16(const float* a, const uint16_t* b, int n) {
  __m256 acc = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 bf = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i)));
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), bf, acc);
  }
  float s = hsum_ps(acc);
  for (; i < n; ++i) s += a[i] * half_to_float(b[i]);
  return s;
}

void Axpy(float w, const float* x, float* out, int n) {
  const __m256 wv = _mm256_set1_ps(w);
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + i), _mm256_loadu_ps(out + i)));
  for (; i < n; ++i) out[i] += w * x[i];
}

void AxpyF16(float w, const uint16_t* x, float* out, int n) {
  const __m256 wv = _mm256_set1_ps(w);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 xf = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
    _mm256_storeu_ps(out + i, _mm256_fmadd_ps(wv, xf, _mm256_loadu_ps(out + i)));
  }
  for (; i < n; ++i) out[i] += w * half_to_float(x[i]);
}

void DotF16Group(const float* const* q, int G, const uint16_t* k, size_t stride, int64_t n, int d,
                 float* const* out) {
  if (d % 8 != 0) {
    for (int g = 0; g < G; ++g)
      for (int64_t t = 0; t < n; ++t) out[g][t] = DotF16(q[g], k + (size_t)t * stride, d);
    return;
  }
  for (int g0 = 0; g0 < G; g0 += 4) {
    switch (std::min(4, G - g0)) {
      case 1: dot_group_avx<1>(q + g0, k, stride, n, d, out + g0); break;
      case 2: dot_group_avx<2>(q + g0, k, stride, n, d, out + g0); break;
      case 3: dot_group_avx<3>(q + g0, k, stride, n, d, out + g0); break;
      default: dot_group_avx<4>(q + g0, k, stride, n, d, out + g0); break;
    }
  }
}

void AxpyF16Group(const float* const* w, int G, const uint16_t* v, size_t stride, int64_t n, int d,
                  float* const* acc) {
  if (d % 8 != 0) {
    for (int g = 0; g < G; ++g)
      for (int64_t t = 0; t < n; ++t) AxpyF16(w[g][t], v + (size_t)t * stride, acc[g], d);
    return;
  }
  for (int g0 = 0; g0 < G; g0 += 3) {
    switch (std::min(3, G - g0)) {
      case 1: axpy_group_avx<1>(w + g0, v, stride, n, d, acc + g0); break;
      case 2: axpy_group_avx<2>(w + g0, v, stride, n, d, acc + g0); break;
      default: axpy_group_avx<3>(w + g0, v, stride, n, d, acc + g0); break;
    }
  }
}
#elif HWY_TARGET == HWY_NEON
namespace {
inline float32x4_t f16x4(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

// acc[g][4c .. 4c + 3] += sum_t w[g][t] v_t[4c ..] for c in [c0, c0 + NC), accumulators in registers
template <int NC>
void axpy_f16_tile(const float* w, const uint16_t* v, size_t stride, int64_t n, int c0, float* acc) {
  float32x4_t a[NC];
  for (int c = 0; c < NC; ++c) a[c] = vld1q_f32(acc + 4 * (c0 + c));
  for (int64_t t = 0; t < n; ++t) {
    const uint16_t* vt = v + (size_t)t * stride + 4 * c0;
    for (int c = 0; c < NC; ++c) a[c] = vfmaq_n_f32(a[c], f16x4(vt + 4 * c), w[t]);
  }
  for (int c = 0; c < NC; ++c) vst1q_f32(acc + 4 * (c0 + c), a[c]);
}
}  // namespace

float Dot(const float* a, const float* b, int n) {
  float32x4_t acc = vdupq_n_f32(0.0f);
  int i = 0;
  for (; i + 4 <= n; i += 4) acc = vfmaq_f32(acc, vld1q_f32(a + i), vld1q_f32(b + i));
  float s = vaddvq_f32(acc);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

float DotF16(const float* a, const uint16_t* b, int n) {
  float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0;  // two chains
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    acc0 = vfmaq_f32(acc0, vld1q_f32(a + i), f16x4(b + i));
    acc1 = vfmaq_f32(acc1, vld1q_f32(a + i + 4), f16x4(b + i + 4));
  }
  for (; i + 4 <= n; i += 4) acc0 = vfmaq_f32(acc0, vld1q_f32(a + i), f16x4(b + i));
  float s = vaddvq_f32(vaddq_f32(acc0, acc1));
  for (; i < n; ++i) s += a[i] * fp16_to_f32_scalar(b[i]);
  return s;
}

void Axpy(float w, const float* x, float* out, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(out + i, vfmaq_n_f32(vld1q_f32(out + i), vld1q_f32(x + i), w));
  for (; i < n; ++i) out[i] += w * x[i];
}

void AxpyF16(float w, const uint16_t* x, float* out, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(out + i, vfmaq_n_f32(vld1q_f32(out + i), f16x4(x + i), w));
  for (; i < n; ++i) out[i] += w * fp16_to_f32_scalar(x[i]);
}

void DotF16Group(const float* const* q, int G, const uint16_t* k, size_t stride, int64_t n, int d,
                 float* const* out) {
  for (int g = 0; g < G; ++g)
    for (int64_t t = 0; t < n; ++t) out[g][t] = DotF16(q[g], k + (size_t)t * stride, d);
}

void AxpyF16Group(const float* const* w, int G, const uint16_t* v, size_t stride, int64_t n, int d,
                  float* const* acc) {
  if (d % 4 != 0) {
    for (int g = 0; g < G; ++g)
      for (int64_t t = 0; t < n; ++t) AxpyF16(w[g][t], v + (size_t)t * stride, acc[g], d);
    return;
  }
  const int nc = d / 4;
  for (int g = 0; g < G; ++g)
    for (int c0 = 0; c0 < nc;) {  // 8 vectors per tile, then 4, 2, 1
      const int r = nc - c0;
      if (r >= 8) axpy_f16_tile<8>(w[g], v, stride, n, c0, acc[g]), c0 += 8;
      else if (r >= 4) axpy_f16_tile<4>(w[g], v, stride, n, c0, acc[g]), c0 += 4;
      else if (r >= 2) axpy_f16_tile<2>(w[g], v, stride, n, c0, acc[g]), c0 += 2;
      else axpy_f16_tile<1>(w[g], v, stride, n, c0, acc[g]), c0 += 1;
    }
}
#else
float Dot(const float* a, const float* b, int n) { return dot_f32_ref(a, b, n); }
float DotF16(const float* a, const uint16_t* b, int n) { return dot_f32_f16_ref(a, b, n); }
void Axpy(float w, const float* x, float* out, int n) { axpy_f32_ref(w, x, out, n); }
void AxpyF16(float w, const uint16_t* x, float* out, int n) { axpy_f16_ref(w, x, out, n); }
void DotF16Group(const float* const* q, int G, const uint16_t* k, size_t stride, int64_t n, int d,
                 float* const* out) {
  dot_f32_f16_group_ref(q, G, k, stride, n, d, out);
}
void AxpyF16Group(const float* const* w, int G, const uint16_t* v, size_t stride, int64_t n, int d,
                  float* const* acc) {
  axpy_f16_group_ref(w, G, v, stride, n, d, acc);
}
#endif

}  // namespace h1bkv::detail::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace h1bkv {
namespace detail {
HWY_EXPORT(Dot);
HWY_EXPORT(DotF16);
HWY_EXPORT(Axpy);
HWY_EXPORT(AxpyF16);
HWY_EXPORT(DotF16Group);
HWY_EXPORT(AxpyF16Group);
}  // namespace detail

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

void dot_f32_f16_group_ref(const float* const* q, int G, const uint16_t* k, size_t stride, int64_t n,
                           int d, float* const* out) {
  for (int g = 0; g < G; ++g)
    for (int64_t t = 0; t < n; ++t) out[g][t] = dot_f32_f16_ref(q[g], k + (size_t)t * stride, d);
}

void axpy_f16_group_ref(const float* const* w, int G, const uint16_t* v, size_t stride, int64_t n,
                        int d, float* const* acc) {
  for (int g = 0; g < G; ++g)
    for (int64_t t = 0; t < n; ++t) axpy_f16_ref(w[g][t], v + (size_t)t * stride, acc[g], d);
}

// The scalar path takes the references; the others Highway's copy for the CPU (tensor/isa.h).
#define H1BKV_DISPATCH(ref, kernel, ...) \
  (active_isa() == Isa::scalar ? ref(__VA_ARGS__) : HWY_DYNAMIC_DISPATCH(detail::kernel)(__VA_ARGS__))

float dot_f32(const float* a, const float* b, int n) { return H1BKV_DISPATCH(dot_f32_ref, Dot, a, b, n); }
float dot_f32_f16(const float* a, const uint16_t* b, int n) {
  return H1BKV_DISPATCH(dot_f32_f16_ref, DotF16, a, b, n);
}
void axpy_f32(float w, const float* x, float* out, int n) { H1BKV_DISPATCH(axpy_f32_ref, Axpy, w, x, out, n); }
void axpy_f16(float w, const uint16_t* x, float* out, int n) {
  H1BKV_DISPATCH(axpy_f16_ref, AxpyF16, w, x, out, n);
}
void dot_f32_f16_group(const float* const* q, int G, const uint16_t* k, size_t stride, int64_t n,
                       int d, float* const* out) {
  H1BKV_DISPATCH(dot_f32_f16_group_ref, DotF16Group, q, G, k, stride, n, d, out);
}
void axpy_f16_group(const float* const* w, int G, const uint16_t* v, size_t stride, int64_t n,
                    int d, float* const* acc) {
  H1BKV_DISPATCH(axpy_f16_group_ref, AxpyF16Group, w, G, v, stride, n, d, acc);
}

}  // namespace h1bkv
#endif  // HWY_ONCE
