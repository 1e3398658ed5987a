// The q8_0 / q4_0 cache kernels (block_quant.h's score / accumulate), one copy per Highway
// target: AVX2 and AVX3_DL run the 8-lane code below (codes widened to f32, FMA), NEON the same
// in 4 lanes, others the references. The group kernels equal G calls of the one-head kernels on
// the same path.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kv/codecs/block_quant_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#if HWY_ARCH_X86
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstring>

#include "kv/codecs/block_quant.h"
#include "kv/codecs/block_quant_kernels.h"
#include "tensor/simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace h1bkv::detail::HWY_NAMESPACE {

namespace {
[[maybe_unused]] constexpr int kMaxGroupHeads = 8;  // query heads per KV head the group kernels hold in registers
}  // namespace

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3_DL
namespace {

float block_scale(const uint8_t* blk) {
  uint16_t h;
  std::memcpy(&h, blk, 2);
  return half_to_float(h);
}

__m128i load8(const uint8_t* p) { return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)); }

// The 32 codes of a full block as 4 x 8 floats, c[k] = values 8k..8k+7.
void block_codes(BlockQuant t, const uint8_t* blk, __m256 c[4]) {
  const uint8_t* qs = blk + 2;
  if (t == BlockQuant::q8_0) {
    for (int k = 0; k < 4; ++k) c[k] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(load8(qs + 8 * k)));
    return;
  }
  const __m256i m15 = _mm256_set1_epi32(15), m8 = _mm256_set1_epi32(8);
  for (int k = 0; k < 2; ++k) {  // bytes 8k..8k+7: values 8k.. (low) and 16+8k.. (high)
    const __m256i x = _mm256_cvtepu8_epi32(load8(qs + 8 * k));
    c[k] = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(x, m15), m8));
    c[k + 2] = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(x, 4), m8));
  }
}

}  // namespace

void Score(BlockQuant t, const float* q, const uint8_t* keys, int64_t n, int d, float* out) {
  if (d < 32) return block_quant_score_ref(t, q, keys, n, d, out);
  const size_t bb = block_quant_bytes(t, 32), vb = block_quant_bytes(t, d);  // d % 32 == 0 here
  for (int64_t i = 0; i < n; ++i) {
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < d / 32; ++b) {
      const uint8_t* blk = keys + i * vb + b * bb;
      __m256 c[4];
      block_codes(t, blk, c);
      __m256 s = _mm256_mul_ps(_mm256_loadu_ps(q + 32 * b), c[0]);
      for (int k = 1; k < 4; ++k) s = _mm256_fmadd_ps(_mm256_loadu_ps(q + 32 * b + 8 * k), c[k], s);
      acc = _mm256_fmadd_ps(_mm256_set1_ps(block_scale(blk)), s, acc);
    }
    out[i] = hsum_ps(acc);
  }
}

// Block by block: the block's 32 outputs stay in 4 registers over all n vectors.
void Accumulate(BlockQuant t, const float* w, const uint8_t* vals, int64_t n, int d, float* out) {
  if (d < 32) return block_quant_accumulate_ref(t, w, vals, n, d, out);
  const size_t bb = block_quant_bytes(t, 32), vb = block_quant_bytes(t, d);  // d % 32 == 0 here
  for (int b = 0; b < d / 32; ++b) {
    __m256 acc[4];
    for (int k = 0; k < 4; ++k) acc[k] = _mm256_loadu_ps(out + 32 * b + 8 * k);
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* blk = vals + i * vb + b * bb;
      __m256 c[4];
      block_codes(t, blk, c);
      const __m256 a = _mm256_set1_ps(w[i] * block_scale(blk));
      for (int k = 0; k < 4; ++k) acc[k] = _mm256_fmadd_ps(a, c[k], acc[k]);
    }
    for (int k = 0; k < 4; ++k) _mm256_storeu_ps(out + 32 * b + 8 * k, acc[k]);
  }
}

void ScoreGroup(BlockQuant t, const float* const* q, int G, const uint8_t* keys, int64_t n,
                int d, float* const* out) {
  if (d < 32 || G > kMaxGroupHeads) {
    for (int g = 0; g < G; ++g) Score(t, q[g], keys, n, d, out[g]);
    return;
  }
  const size_t bb = block_quant_bytes(t, 32), vb = block_quant_bytes(t, d);  // d % 32 == 0 here
  for (int64_t i = 0; i < n; ++i) {
    __m256 acc[kMaxGroupHeads];
    for (int g = 0; g < G; ++g) acc[g] = _mm256_setzero_ps();
    for (int b = 0; b < d / 32; ++b) {
      const uint8_t* blk = keys + i * vb + b * bb;
      __m256 c[4];
      block_codes(t, blk, c);  // once for the group
      const __m256 scale = _mm256_set1_ps(block_scale(blk));
      for (int g = 0; g < G; ++g) {
        const float* qb = q[g] + 32 * b;
        __m256 s = _mm256_mul_ps(_mm256_loadu_ps(qb), c[0]);
        for (int k = 1; k < 4; ++k) s = _mm256_fmadd_ps(_mm256_loadu_ps(qb + 8 * k), c[k], s);
        acc[g] = _mm256_fmadd_ps(scale, s, acc[g]);
      }
    }
    for (int g = 0; g < G; ++g) out[g][i] = hsum_ps(acc[g]);
  }
}

void AccumulateGroup(BlockQuant t, const float* const* w, int G, const uint8_t* vals,
                     int64_t n, int d, float* const* out) {
  if (d < 32 || G > kMaxGroupHeads) {
    for (int g = 0; g < G; ++g) Accumulate(t, w[g], vals, n, d, out[g]);
    return;
  }
  const size_t bb = block_quant_bytes(t, 32), vb = block_quant_bytes(t, d);  // d % 32 == 0 here
  for (int b = 0; b < d / 32; ++b) {
    for (int g0 = 0; g0 < G; g0 += 2) {  // two heads' 32 outputs (8 registers) at a time
      const int gn = std::min(2, G - g0);
      __m256 acc[2][4];
      for (int g = 0; g < gn; ++g)
        for (int k = 0; k < 4; ++k) acc[g][k] = _mm256_loadu_ps(out[g0 + g] + 32 * b + 8 * k);
      for (int64_t i = 0; i < n; ++i) {
        const uint8_t* blk = vals + i * vb + b * bb;
        __m256 c[4];
        block_codes(t, blk, c);
        const float sc = block_scale(blk);
        for (int g = 0; g < gn; ++g) {
          const __m256 a = _mm256_set1_ps(w[g0 + g][i] * sc);
          for (int k = 0; k < 4; ++k) acc[g][k] = _mm256_fmadd_ps(a, c[k], acc[g][k]);
        }
      }
      for (int g = 0; g < gn; ++g)
        for (int k = 0; k < 4; ++k) _mm256_storeu_ps(out[g0 + g] + 32 * b + 8 * k, acc[g][k]);
    }
  }
}

#elif HWY_TARGET == HWY_NEON
namespace {

float block_scale(const uint8_t* blk) {
  uint16_t h;
  std::memcpy(&h, blk, 2);
  return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
}

inline void widen8(int16x8_t x, float32x4_t* c) {
  c[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(x)));
  c[1] = vcvtq_f32_s32(vmovl_high_s16(x));
}

// The 32 codes of a full block as 8 x 4 floats, c[k] = values 4k..4k+3.
void block_codes(BlockQuant t, const uint8_t* blk, float32x4_t c[8]) {
  const uint8_t* qs = blk + 2;
  if (t == BlockQuant::q8_0) {
    for (int k = 0; k < 2; ++k) {
      const int8x16_t x = vld1q_s8(reinterpret_cast<const int8_t*>(qs) + 16 * k);
      widen8(vmovl_s8(vget_low_s8(x)), c + 4 * k);
      widen8(vmovl_high_s8(x), c + 4 * k + 2);
    }
    return;
  }
  const uint8x16_t x = vld1q_u8(qs);  // values 0-15 in the low nibbles, 16-31 in the high ones
  const int8x16_t m8 = vdupq_n_s8(8);
  const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(x, vdupq_n_u8(15))), m8);
  const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(x, 4)), m8);
  widen8(vmovl_s8(vget_low_s8(lo)), c);
  widen8(vmovl_high_s8(lo), c + 2);
  widen8(vmovl_s8(vget_low_s8(hi)), c + 4);
  widen8(vmovl_high_s8(hi), c + 6);
}

// One head's dot with one vector's block b: sum_k q[4k..] c[k]
inline float32x4_t block_dot(const float* qb, const float32x4_t c[8]) {
  float32x4_t s = vmulq_f32(vld1q_f32(qb), c[0]);
  for (int k = 1; k < 8; ++k) s = vfmaq_f32(s, vld1q_f32(qb + 4 * k), c[k]);
  return s;
}

}  // namespace

void Score(BlockQuant t, const float* q, const uint8_t* keys, int64_t n, int d, float* out) {
  if (d < 32) return block_quant_score_ref(t, q, keys, n, d, out);
  const size_t bb = block_quant_bytes(t, 32), vb = block_quant_bytes(t, d);  // d % 32 == 0 here
  for (int64_t i = 0; i < n; ++i) {
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (int b = 0; b < d / 32; ++b) {
      const uint8_t* blk = keys + i * vb + b * bb;
      float32x4_t c[8];
      block_codes(t, blk, c);
      acc = vfmaq_n_f32(acc, block_dot(q + 32 * b, c), block_scale(blk));
    }
    out[i] = vaddvq_f32(acc);
  }
}

// Block by block: the block's 32 outputs stay in 8 registers over all n vectors.
void Accumulate(BlockQuant t, const float* w, const uint8_t* vals, int64_t n, int d, float* out) {
  if (d < 32) return block_quant_accumulate_ref(t, w, vals, n, d, out);
  const size_t bb = block_quant_bytes(t, 32), vb = block_quant_bytes(t, d);  // d % 32 == 0 here
  for (int b = 0; b < d / 32; ++b) {
    float32x4_t acc[8];
    for (int k = 0; k < 8; ++k) acc[k] = vld1q_f32(out + 32 * b + 4 * k);
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* blk = vals + i * vb + b * bb;
      float32x4_t c[8];
      block_codes(t, blk, c);
      const float a = w[i] * block_scale(blk);
      for (int k = 0; k < 8; ++k) acc[k] = vfmaq_n_f32(acc[k], c[k], a);
    }
    for (int k = 0; k < 8; ++k) vst1q_f32(out + 32 * b + 4 * k, acc[k]);
  }
}

void ScoreGroup(BlockQuant t, const float* const* q, int G, const uint8_t* keys, int64_t n,
                int d, float* const* out) {
  if (d < 32 || G > kMaxGroupHeads) {
    for (int g = 0; g < G; ++g) Score(t, q[g], keys, n, d, out[g]);
    return;
  }
  const size_t bb = block_quant_bytes(t, 32), vb = block_quant_bytes(t, d);  // d % 32 == 0 here
  for (int64_t i = 0; i < n; ++i) {
    float32x4_t acc[kMaxGroupHeads];
    for (int g = 0; g < G; ++g) acc[g] = vdupq_n_f32(0.0f);
    for (int b = 0; b < d / 32; ++b) {
      const uint8_t* blk = keys + i * vb + b * bb;
      float32x4_t c[8];
      block_codes(t, blk, c);  // once for the group
      const float scale = block_scale(blk);
      for (int g = 0; g < G; ++g) acc[g] = vfmaq_n_f32(acc[g], block_dot(q[g] + 32 * b, c), scale);
    }
    for (int g = 0; g < G; ++g) out[g][i] = vaddvq_f32(acc[g]);
  }
}

void AccumulateGroup(BlockQuant t, const float* const* w, int G, const uint8_t* vals,
                     int64_t n, int d, float* const* out) {
  if (d < 32 || G > kMaxGroupHeads) {
    for (int g = 0; g < G; ++g) Accumulate(t, w[g], vals, n, d, out[g]);
    return;
  }
  const size_t bb = block_quant_bytes(t, 32), vb = block_quant_bytes(t, d);  // d % 32 == 0 here
  for (int b = 0; b < d / 32; ++b) {
    for (int g0 = 0; g0 < G; g0 += 2) {  // two heads' 32 outputs (16 registers) at a time
      const int gn = std::min(2, G - g0);
      float32x4_t acc[2][8];
      for (int g = 0; g < gn; ++g)
        for (int k = 0; k < 8; ++k) acc[g][k] = vld1q_f32(out[g0 + g] + 32 * b + 4 * k);
      for (int64_t i = 0; i < n; ++i) {
        const uint8_t* blk = vals + i * vb + b * bb;
        float32x4_t c[8];
        block_codes(t, blk, c);
        const float sc = block_scale(blk);
        for (int g = 0; g < gn; ++g) {
          const float a = w[g0 + g][i] * sc;
          for (int k = 0; k < 8; ++k) acc[g][k] = vfmaq_n_f32(acc[g][k], c[k], a);
        }
      }
      for (int g = 0; g < gn; ++g)
        for (int k = 0; k < 8; ++k) vst1q_f32(out[g0 + g] + 32 * b + 4 * k, acc[g][k]);
    }
  }
}

#else
void Score(BlockQuant t, const float* q, const uint8_t* keys, int64_t n, int d, float* out) {
  block_quant_score_ref(t, q, keys, n, d, out);
}
void Accumulate(BlockQuant t, const float* w, const uint8_t* vals, int64_t n, int d, float* out) {
  block_quant_accumulate_ref(t, w, vals, n, d, out);
}
void ScoreGroup(BlockQuant t, const float* const* q, int G, const uint8_t* keys, int64_t n, int d,
                float* const* out) {
  for (int g = 0; g < G; ++g) block_quant_score_ref(t, q[g], keys, n, d, out[g]);
}
void AccumulateGroup(BlockQuant t, const float* const* w, int G, const uint8_t* vals, int64_t n, int d,
                     float* const* out) {
  for (int g = 0; g < G; ++g) block_quant_accumulate_ref(t, w[g], vals, n, d, out[g]);
}
#endif

}  // namespace h1bkv::detail::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace h1bkv::detail {
HWY_EXPORT(Score);
HWY_EXPORT(Accumulate);
HWY_EXPORT(ScoreGroup);
HWY_EXPORT(AccumulateGroup);

void block_quant_score_simd(BlockQuant t, const float* q, const uint8_t* keys, int64_t n, int d, float* out) {
  HWY_DYNAMIC_DISPATCH(Score)(t, q, keys, n, d, out);
}
void block_quant_accumulate_simd(BlockQuant t, const float* w, const uint8_t* vals, int64_t n, int d,
                                 float* out) {
  HWY_DYNAMIC_DISPATCH(Accumulate)(t, w, vals, n, d, out);
}
void block_quant_score_group_simd(BlockQuant t, const float* const* q, int G, const uint8_t* keys,
                                  int64_t n, int d, float* const* out) {
  HWY_DYNAMIC_DISPATCH(ScoreGroup)(t, q, G, keys, n, d, out);
}
void block_quant_accumulate_group_simd(BlockQuant t, const float* const* w, int G, const uint8_t* vals,
                                       int64_t n, int d, float* const* out) {
  HWY_DYNAMIC_DISPATCH(AccumulateGroup)(t, w, G, vals, n, d, out);
}
}  // namespace h1bkv::detail
#endif  // HWY_ONCE
