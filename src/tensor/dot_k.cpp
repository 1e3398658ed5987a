// Dot kernels of the K super-block types against Q8_K activations (ggml vec_dot_q4_K_q8_K,
// vec_dot_q6_K_q8_K). Per 256-value block:
//   Q4_K: d*dx * sum_j sc[j]*dot(q4_j, q8_j)  -  dmin*dx * sum_j mn[j]*(bsums[2j]+bsums[2j+1])
//         (j = 8 sub-blocks of 32; q4 in 0..15)
//   Q6_K: d*dx * sum_j sc[j]*(dot(q6u_j, q8_j) - 32*bsums[j])   (j = 16 sub-blocks of 16;
//         q6u = unsigned 6-bit value 0..63, i.e. the stored value before the -32)
// Compiled once per Highway target: AVX2 and AVX3_DL run the AVX2 code (AVX-512's are the lanes
// kernels of tile_q8.cpp), NEON its own, other targets the scalar references.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "tensor/dot_k.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "tensor/blocks.h"
#include "tensor/kernels.h"
#include "tensor/simd-inl.h"
#include "util/fp16.h"

#ifndef H1BKV_DOT_K_ONCE
#define H1BKV_DOT_K_ONCE
namespace h1bkv::detail {
#define ALWAYS_INLINE inline __attribute__((always_inline))
ALWAYS_INLINE const ActQ8_K* act_k(const uint8_t* act, size_t st, int t, int64_t i) {
  return reinterpret_cast<const ActQ8_K*>(act + (size_t)t * st) + i;
}
void dot_q4_k_ref(const uint8_t*, const uint8_t*, size_t, int, int64_t, float*);
void dot_q6_k_ref(const uint8_t*, const uint8_t*, size_t, int, int64_t, float*);
}  // namespace h1bkv::detail
#endif

HWY_BEFORE_NAMESPACE();
namespace h1bkv::detail::HWY_NAMESPACE {
namespace {

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3_DL
ALWAYS_INLINE __m256i load256(const void* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

template <int NT>
void q4_k_tile(const uint8_t* w, const uint8_t* act, size_t st, int64_t cols, float* out) {
  const BlockQ4_K* b = reinterpret_cast<const BlockQ4_K*>(w);
  const int64_t nb = cols / QK_K;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    uint8_t sc[8], mn[8];
    unpack_q4k_scales(b[i].scales, sc, mn);
    // mins duplicated per 16-value half so that they line up with bsums: [m0,m0,m1,m1,...]
    const __m128i mn8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(mn));
    const __m256i mins = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn8, mn8));
    const float d = half_to_float(b[i].d), dmin = half_to_float(b[i].dmin);
    __m256i sumi[NT];
    for (int t = 0; t < NT; ++t) sumi[t] = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {  // 64 values: qs[32c..32c+31] lo nibbles, then hi nibbles
      const __m256i q = load256(b[i].qs + 32 * c);
      const __m256i lo = _mm256_and_si256(q, m4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      const __m256i s0 = _mm256_set1_epi16(sc[2 * c]), s1 = _mm256_set1_epi16(sc[2 * c + 1]);
      for (int t = 0; t < NT; ++t) {
        const ActQ8_K* a = act_k(act, st, t, i);
        const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, load256(a->qs + 64 * c)), s0);
        const __m256i p1 =
            _mm256_madd_epi16(_mm256_maddubs_epi16(hi, load256(a->qs + 64 * c + 32)), s1);
        sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(p0, p1));
      }
    }
    for (int t = 0; t < NT; ++t) {
      const ActQ8_K* a = act_k(act, st, t, i);
      const __m256i pm = _mm256_madd_epi16(mins, load256(a->bsums));
      acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * a->d), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
      acc[t] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * a->d), _mm256_cvtepi32_ps(pm), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) out[t] = hsum_ps(acc[t]);
}

template <int NT>
void q6_k_tile(const uint8_t* w, const uint8_t* act, size_t st, int64_t cols, float* out) {
  const BlockQ6_K* b = reinterpret_cast<const BlockQ6_K*>(w);
  const int64_t nb = cols / QK_K;
  const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const int8_t* sc = b[i].scales;
    const __m256i scales =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc)));
    const float d = half_to_float(b[i].d);
    __m256i sumi[NT];
    for (int t = 0; t < NT; ++t) sumi[t] = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {  // 128 values: ql[64h..64h+63], qh[32h..32h+31]
      const __m256i ql0 = load256(b[i].ql + 64 * h), ql1 = load256(b[i].ql + 64 * h + 32);
      const __m256i qh = load256(b[i].qh + 32 * h);
      __m256i q[4];  // values 128h + 32k + l, l = 0..31
      q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
      q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
      q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m30));
      q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                             _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
      for (int k = 0; k < 4; ++k) {
        const int j = 8 * h + 2 * k;  // sub-blocks j (first 16 values), j+1 (next 16)
        const __m256i s = _mm256_set_m128i(_mm_set1_epi16(sc[j + 1]), _mm_set1_epi16(sc[j]));
        for (int t = 0; t < NT; ++t) {
          const ActQ8_K* a = act_k(act, st, t, i);
          const __m256i p = _mm256_maddubs_epi16(q[k], load256(a->qs + 128 * h + 32 * k));
          sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(p, s));
        }
      }
    }
    for (int t = 0; t < NT; ++t) {
      const ActQ8_K* a = act_k(act, st, t, i);
      const __m256i bias = _mm256_slli_epi32(_mm256_madd_epi16(scales, load256(a->bsums)), 5);
      const __m256i v = _mm256_sub_epi32(sumi[t], bias);
      acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * a->d), _mm256_cvtepi32_ps(v), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) out[t] = hsum_ps(acc[t]);
}

void FillImpl(KernelSet& ks) {
  ks.q4_k = tile_dispatch<q4_k_tile<1>, q4_k_tile<2>, q4_k_tile<3>, q4_k_tile<4>>;
  ks.q6_k = tile_dispatch<q6_k_tile<1>, q6_k_tile<2>, q6_k_tile<3>, q6_k_tile<4>>;
}
#elif HWY_TARGET == HWY_NEON
// ---- 64-bit ARM: the references' integer sub-block dots with 16-byte dot16 steps, their float
// step per block.
ALWAYS_INLINE int dot32(int8x16_t q0, int8x16_t q1, const int8_t* x) {
  return vaddvq_s32(dot16(dot16(vdupq_n_s32(0), q0, vld1q_s8(x)), q1, vld1q_s8(x + 16)));
}

template <int NT>
void q4_k_tile(const uint8_t* w, const uint8_t* act, size_t st, int64_t cols, float* out) {
  const BlockQ4_K* b = reinterpret_cast<const BlockQ4_K*>(w);
  const int64_t nb = cols / QK_K;
  const uint8x16_t m4 = vdupq_n_u8(0x0F);
  float sum[NT] = {};
  for (int64_t i = 0; i < nb; ++i) {
    uint8_t sc[8], mn[8];
    unpack_q4k_scales(b[i].scales, sc, mn);
    int8x16_t lo[4][2], hi[4][2];  // chunk c: sub-block 2c (low nibbles), 2c + 1 (high)
    for (int c = 0; c < 4; ++c)
      for (int h = 0; h < 2; ++h) {
        const uint8x16_t q = vld1q_u8(b[i].qs + 32 * c + 16 * h);
        lo[c][h] = vreinterpretq_s8_u8(vandq_u8(q, m4));
        hi[c][h] = vreinterpretq_s8_u8(vshrq_n_u8(q, 4));
      }
    const float d = fp16_to_f32(b[i].d), dmin = fp16_to_f32(b[i].dmin);
    for (int t = 0; t < NT; ++t) {
      const ActQ8_K* a = act_k(act, st, t, i);
      int sumi = 0, summ = 0;
      for (int c = 0; c < 4; ++c) {
        sumi += sc[2 * c] * dot32(lo[c][0], lo[c][1], a->qs + 64 * c);
        sumi += sc[2 * c + 1] * dot32(hi[c][0], hi[c][1], a->qs + 64 * c + 32);
      }
      for (int j = 0; j < 8; ++j) summ += mn[j] * (a->bsums[2 * j] + a->bsums[2 * j + 1]);
      sum[t] += d * a->d * (float)sumi - dmin * a->d * (float)summ;
    }
  }
  for (int t = 0; t < NT; ++t) out[t] = sum[t];
}

template <int NT>
void q6_k_tile(const uint8_t* w, const uint8_t* act, size_t st, int64_t cols, float* out) {
  const BlockQ6_K* b = reinterpret_cast<const BlockQ6_K*>(w);
  const int64_t nb = cols / QK_K;
  const uint8x16_t m4 = vdupq_n_u8(0x0F), m3 = vdupq_n_u8(3);
  const int8x16_t k32 = vdupq_n_s8(32);
  float sum[NT] = {};
  for (int64_t i = 0; i < nb; ++i) {
    int8x16_t q[16];  // q[2 * (4h + k) + g]: values 128h + 32k + 16g .. + 15, -32..31
    for (int h = 0; h < 2; ++h)
      for (int g = 0; g < 2; ++g) {
        const uint8x16_t l0 = vld1q_u8(b[i].ql + 64 * h + 16 * g), l1 = vld1q_u8(b[i].ql + 64 * h + 32 + 16 * g);
        const uint8x16_t qh = vld1q_u8(b[i].qh + 32 * h + 16 * g);
        const uint8x16_t lo[4] = {vandq_u8(l0, m4), vandq_u8(l1, m4), vshrq_n_u8(l0, 4), vshrq_n_u8(l1, 4)};
        for (int k = 0; k < 4; ++k) {
          const uint8x16_t hi2 = vandq_u8(vshlq_u8(qh, vdupq_n_s8((int8_t)(-2 * k))), m3);
          q[2 * (4 * h + k) + g] = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo[k], vshlq_n_u8(hi2, 4))), k32);
        }
      }
    const float d = fp16_to_f32(b[i].d);
    for (int t = 0; t < NT; ++t) {
      const ActQ8_K* a = act_k(act, st, t, i);
      int sumi = 0;
      for (int s = 0; s < 16; ++s)  // sub-block s = values 16s .. 16s + 15
        sumi += b[i].scales[s] * vaddvq_s32(dot16(vdupq_n_s32(0), q[s], vld1q_s8(a->qs + 16 * s)));
      sum[t] += d * a->d * (float)sumi;
    }
  }
  for (int t = 0; t < NT; ++t) out[t] = sum[t];
}

void FillImpl(KernelSet& ks) {
  ks.q4_k = tile_dispatch<q4_k_tile<1>, q4_k_tile<2>, q4_k_tile<3>, q4_k_tile<4>>;
  ks.q6_k = tile_dispatch<q6_k_tile<1>, q6_k_tile<2>, q6_k_tile<3>, q6_k_tile<4>>;
}
#else
void FillImpl(KernelSet& ks) { ks.q4_k = dot_q4_k_ref, ks.q6_k = dot_q6_k_ref; }
#endif

}  // namespace
void FillK(KernelSet* ks) { FillImpl(*ks); }
}  // namespace h1bkv::detail::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace h1bkv::detail {

HWY_EXPORT(FillK);

void fill_k_kernels(Isa isa, KernelSet& ks) {
  if (isa == Isa::scalar) ks.q4_k = dot_q4_k_ref, ks.q6_k = dot_q6_k_ref;
  else HWY_DYNAMIC_DISPATCH(FillK)(&ks);
}

void dot_q4_k_ref(const uint8_t* w, const uint8_t* act, size_t st, int nt, int64_t cols, float* out) {
  const BlockQ4_K* b = reinterpret_cast<const BlockQ4_K*>(w);
  const int64_t nb = cols / QK_K;
  for (int t = 0; t < nt; ++t) {
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
      const ActQ8_K* a = act_k(act, st, t, i);
      uint8_t sc[8], mn[8];
      unpack_q4k_scales(b[i].scales, sc, mn);
      int sumi = 0, summ = 0;
      for (int j = 0; j < 8; ++j) {  // sub-block j: values 32j..32j+31
        const uint8_t* q = b[i].qs + 32 * (j / 2);
        const int shift = (j % 2) * 4;
        int dot = 0;
        for (int l = 0; l < 32; ++l) dot += ((q[l] >> shift) & 0x0F) * a->qs[32 * j + l];
        sumi += sc[j] * dot;
        summ += mn[j] * (a->bsums[2 * j] + a->bsums[2 * j + 1]);
      }
      sum += fp16_to_f32(b[i].d) * a->d * (float)sumi - fp16_to_f32(b[i].dmin) * a->d * (float)summ;
    }
    out[t] = sum;
  }
}

void dot_q6_k_ref(const uint8_t* w, const uint8_t* act, size_t st, int nt, int64_t cols, float* out) {
  const BlockQ6_K* b = reinterpret_cast<const BlockQ6_K*>(w);
  const int64_t nb = cols / QK_K;
  for (int t = 0; t < nt; ++t) {
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
      const ActQ8_K* a = act_k(act, st, t, i);
      int sumi = 0;
      for (int e = 0; e < QK_K; ++e) {  // element e = 128h + 32k + l
        const int h = e / 128, k = (e % 128) / 32, l = e % 32;
        const uint8_t qlb = b[i].ql[64 * h + 32 * (k & 1) + l];
        const int lo = (k < 2) ? (qlb & 0x0F) : (qlb >> 4);
        const int hi = (b[i].qh[32 * h + l] >> (2 * k)) & 3;
        sumi += b[i].scales[e / 16] * ((lo | (hi << 4)) - 32) * a->qs[e];
      }
      sum += fp16_to_f32(b[i].d) * a->d * (float)sumi;
    }
    out[t] = sum;
  }
}

}  // namespace h1bkv::detail
#endif  // HWY_ONCE
