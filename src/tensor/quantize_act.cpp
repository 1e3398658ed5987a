// Activation quantizers (ggml quantize_row_q8_0 / q8_1 / q8_K, x86 variants):
//   Q8_0/Q8_1: per 32 values d = amax/127, q = round_half_even(x * (127/amax)); d is stored
//              rounded through fp16 as block_q8_0 does; Q8_1 adds s = fp16(d * sum(q)).
//   Q8_K:      per 256 values iscale = -127/max (max = the value of largest magnitude),
//              q = min(127, round(iscale * x)), d = 1/iscale (f32), bsums[16] = sums of 16 q.
// The AVX2, NEON and scalar versions make the same float operations, so their blocks are identical.
// Compiled once per Highway target: AVX2 and AVX3_DL use the AVX2 block, NEON its own, others the
// scalar one.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "tensor/quantize_act.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cmath>
#include <cstring>

#include "tensor/blocks.h"
#include "tensor/kernels.h"
#include "tensor/simd-inl.h"
#include "util/fp16.h"

#ifndef H1BKV_QUANTIZE_ACT_ONCE
#define H1BKV_QUANTIZE_ACT_ONCE
namespace h1bkv::detail {
namespace {

inline float fp16_round(float v) { return fp16_to_f32(f32_to_fp16(v)); }

// Scalar: one block of 32 -> qs, returns d (unrounded f32) and the sum of qs.
float q8_block_scalar(const float* x, int8_t* qs, int* sum) {
  float amax = 0.0f;
  for (int j = 0; j < QK; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  int s = 0;
  for (int j = 0; j < QK; ++j) {
    const int q = (int)std::nearbyint(x[j] * id);  // default rounding mode: half to even
    qs[j] = (int8_t)q;
    s += q;
  }
  *sum = s;
  return d;
}

// Q8_0 (with_sum false) or Q8_1 blocks of one row, block by block with `Block`.
template <float (*Block)(const float*, int8_t*, int*)>
void quantize_q8_row(const float* x, uint8_t* dst, int64_t nb, bool with_sum) {
  for (int64_t i = 0; i < nb; ++i) {
    int sum;
    int8_t* qs = with_sum ? reinterpret_cast<ActQ8_1*>(dst)[i].qs : reinterpret_cast<ActQ8_0*>(dst)[i].qs;
    const float d = Block(x + QK * i, qs, &sum);
    if (with_sum) {
      reinterpret_cast<ActQ8_1*>(dst)[i].d = fp16_round(d);
      reinterpret_cast<ActQ8_1*>(dst)[i].s = fp16_round(d * (float)sum);
    } else {
      reinterpret_cast<ActQ8_0*>(dst)[i].d = fp16_round(d);
    }
  }
}

}  // namespace
}  // namespace h1bkv::detail
#endif

HWY_BEFORE_NAMESPACE();
namespace h1bkv::detail::HWY_NAMESPACE {
namespace {
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3_DL
float q8_block_avx2(const float* x, int8_t* qs, int* sum) {
  __m256 v[4];
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 mx = _mm256_setzero_ps();
  for (int k = 0; k < 4; ++k) {
    v[k] = _mm256_loadu_ps(x + 8 * k);
    mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v[k]));
  }
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  const float amax = _mm_cvtss_f32(m);
  const float d = amax / 127.0f;
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  const __m256 mul = _mm256_set1_ps(id);
  __m256i q[4];
  for (int k = 0; k < 4; ++k) {
    const __m256 r = _mm256_round_ps(_mm256_mul_ps(v[k], mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q[k] = _mm256_cvtps_epi32(r);
  }
  *sum = hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
  // packs work per 128-bit lane: fix the order with a dword permute
  const __m256i p16a = _mm256_packs_epi32(q[0], q[1]), p16b = _mm256_packs_epi32(q[2], q[3]);
  const __m256i p8 = _mm256_packs_epi16(p16a, p16b);
  const __m256i out = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs), out);
  return d;
}

#endif
#if HWY_TARGET == HWY_NEON
float q8_block_neon(const float* x, int8_t* qs, int* sum) {
  float32x4_t v[8];
  float32x4_t mx = vdupq_n_f32(0.0f);
  for (int k = 0; k < 8; ++k) {
    v[k] = vld1q_f32(x + 4 * k);
    mx = vmaxnmq_f32(mx, vabsq_f32(v[k]));  // maxNum: a NaN is ignored, as std::fmax
  }
  const float amax = vmaxnmvq_f32(mx);
  const float d = amax / 127.0f;
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  int32x4_t q[8], s = vdupq_n_s32(0);
  for (int k = 0; k < 8; ++k) {
    q[k] = vcvtnq_s32_f32(vmulq_n_f32(v[k], id));  // to nearest, ties to even: as nearbyint
    s = vaddq_s32(s, q[k]);
  }
  *sum = vaddvq_s32(s);
  for (int k = 0; k < 8; k += 4) {  // |q| <= 127: the saturating narrows only pack
    const int16x8_t a = vcombine_s16(vqmovn_s32(q[k]), vqmovn_s32(q[k + 1]));
    const int16x8_t b = vcombine_s16(vqmovn_s32(q[k + 2]), vqmovn_s32(q[k + 3]));
    vst1q_s8(qs + 4 * k, vcombine_s8(vqmovn_s16(a), vqmovn_s16(b)));
  }
  return d;
}
#endif
}  // namespace

void QuantizeQ8Row(const float* x, uint8_t* dst, int64_t nb, bool with_sum) {
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3_DL
  quantize_q8_row<q8_block_avx2>(x, dst, nb, with_sum);
#elif HWY_TARGET == HWY_NEON
  quantize_q8_row<q8_block_neon>(x, dst, nb, with_sum);
#else
  quantize_q8_row<q8_block_scalar>(x, dst, nb, with_sum);
#endif
}
}  // namespace h1bkv::detail::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace h1bkv::detail {
namespace {

void quantize_q8_k(const float* x, ActQ8_K* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += QK_K) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK_K; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) { amax = ax; max = x[j]; }
    }
    if (amax == 0.0f) {
      std::memset(&y[i], 0, sizeof(ActQ8_K));
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < QK_K; ++j) {
      const int v = (int)std::nearbyint(iscale * x[j]);
      y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
    }
    for (int j = 0; j < QK_K / 16; ++j) {
      int s = 0;
      for (int l = 0; l < 16; ++l) s += y[i].qs[16 * j + l];
      y[i].bsums[j] = (int16_t)s;
    }
    y[i].d = 1.0f / iscale;
  }
}

}  // namespace

HWY_EXPORT(QuantizeQ8Row);

size_t act_row_bytes(ActKind kind, int64_t cols) {
  switch (kind) {
    case ActKind::Q8_0: return (size_t)(cols / QK) * sizeof(ActQ8_0);
    case ActKind::Q8_1: return (size_t)(cols / QK) * sizeof(ActQ8_1);
    case ActKind::Q8_K: return (size_t)(cols / QK_K) * sizeof(ActQ8_K);
    case ActKind::F32: break;
  }
  return (size_t)cols * sizeof(float);
}

void quantize_act_row(ActKind kind, const float* x, uint8_t* dst, int64_t cols, bool simd) {
  switch (kind) {
    case ActKind::Q8_0:
    case ActKind::Q8_1:
      if (simd) HWY_DYNAMIC_DISPATCH(QuantizeQ8Row)(x, dst, cols / QK, kind == ActKind::Q8_1);
      else quantize_q8_row<q8_block_scalar>(x, dst, cols / QK, kind == ActKind::Q8_1);
      break;
    case ActKind::Q8_K: quantize_q8_k(x, reinterpret_cast<ActQ8_K*>(dst), cols / QK_K); break;
    case ActKind::F32: std::memcpy(dst, x, (size_t)cols * sizeof(float)); break;
  }
}

}  // namespace h1bkv::detail
#endif  // HWY_ONCE
