// The h1b table-sum kernels (sketch_kernels.h), one copy per Highway target:
//   AVX2     pshufb nibble lookups, 32 tokens x 1 byte position per step (T-MAC style)
//   AVX3_DL  64 bytes = 2 byte positions x 32 tokens per step: with query bytes, XOR + vpopcntb
//            (AVX-512 BITALG); without, 512-bit pshufb with each position's tables in its lanes
//   NEON     tbl nibble lookups, 32 tokens (two q registers) x 1 byte position per step, as AVX2
//   others   the scalar reference
// Raw intrinsics: Highway 1.0.3 has per-lane table lookups but no u8 accumulate-and-widen of
// this shape, and the AVX2 code is the existing kernel.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kv/codecs/sketch_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>

#include "kv/codecs/sketch.h"
#include "kv/codecs/sketch_kernels.h"

HWY_BEFORE_NAMESPACE();
namespace h1bkv::detail::HWY_NAMESPACE {
namespace {

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3_DL
// h[g][t] for NG heads; the code bytes are loaded and split into nibbles once.
template <int NG>
void lut_sums256(const uint8_t* const* tabs, const uint8_t* codes, int nbytes, int chunk, int32_t (*h)[32]) {
  const __m256i m4 = _mm256_set1_epi8(15), zero = _mm256_setzero_si256();
  __m256i acc_lo[NG], acc_hi[NG];
  for (int g = 0; g < NG; ++g) acc_lo[g] = acc_hi[g] = zero;
  for (int p0 = 0; p0 < nbytes; p0 += chunk) {
    const int p1 = std::min(nbytes, p0 + chunk);
    __m256i s8[NG];
    for (int g = 0; g < NG; ++g) s8[g] = zero;
    for (int p = p0; p < p1; ++p) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + p * 32));
      const __m256i xl = _mm256_and_si256(x, m4), xh = _mm256_and_si256(_mm256_srli_epi16(x, 4), m4);
      for (int g = 0; g < NG; ++g) {
        const __m256i tl = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tabs[g] + p * 32)));
        const __m256i th = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tabs[g] + p * 32 + 16)));
        s8[g] = _mm256_add_epi8(s8[g], _mm256_add_epi8(_mm256_shuffle_epi8(tl, xl), _mm256_shuffle_epi8(th, xh)));
      }
    }
    for (int g = 0; g < NG; ++g) {
      acc_lo[g] = _mm256_add_epi16(acc_lo[g], _mm256_unpacklo_epi8(s8[g], zero));
      acc_hi[g] = _mm256_add_epi16(acc_hi[g], _mm256_unpackhi_epi8(s8[g], zero));
    }
  }
  for (int g = 0; g < NG; ++g) {  // acc_lo: tokens {0-7, 16-23}, acc_hi: {8-15, 24-31}
    int32_t* o = h[g];
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), _mm256_cvtepu16_epi32(_mm256_castsi256_si128(acc_lo[g])));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 8), _mm256_cvtepu16_epi32(_mm256_castsi256_si128(acc_hi[g])));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 16), _mm256_cvtepu16_epi32(_mm256_extracti128_si256(acc_lo[g], 1)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 24), _mm256_cvtepu16_epi32(_mm256_extracti128_si256(acc_hi[g], 1)));
  }
}
#endif

#if HWY_TARGET == HWY_AVX3_DL
// u8 lanes j and 32 + j (positions p and p+1 of token j) widened and added into 32 u16 sums.
inline __m512i widen_pairs(__m512i acc16, __m512i s8) {
  const __m512i a = _mm512_cvtepu8_epi16(_mm512_castsi512_si256(s8));
  const __m512i b = _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(s8, 1));
  return _mm512_add_epi16(acc16, _mm512_add_epi16(a, b));
}
inline void store_sums(__m512i acc16, int32_t* o) {
  _mm512_storeu_si512(o, _mm512_cvtepu16_epi32(_mm512_castsi512_si256(acc16)));
  _mm512_storeu_si512(o + 16, _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(acc16, 1)));
}

// Popcount tables: h = sum_p popcount(code_p ^ q_p). A lane holds one position of one token, so
// chunk pairs of positions keep chunk * 8 <= 255 per u8 lane.
template <int NG>
void pop_sums512(const uint8_t* const* qbytes, const uint8_t* codes, int nbytes, int chunk, int32_t (*h)[32]) {
  const __mmask64 qmask = nbytes >= 64 ? ~0ull : (1ull << nbytes) - 1;
  __m512i q[NG], acc[NG];
  for (int g = 0; g < NG; ++g) q[g] = _mm512_maskz_loadu_epi8(qmask, qbytes[g]), acc[g] = _mm512_setzero_si512();
  // vpermb index of pair k: lanes 0-31 pick query byte 2k, lanes 32-63 byte 2k+1
  const __m512i base = _mm512_mask_blend_epi8(0xFFFFFFFF00000000ull, _mm512_setzero_si512(), _mm512_set1_epi8(1));
  const int npairs = nbytes / 2;
  for (int k0 = 0; k0 < npairs; k0 += chunk) {
    const int k1 = std::min(npairs, k0 + chunk);
    __m512i s8[NG];
    for (int g = 0; g < NG; ++g) s8[g] = _mm512_setzero_si512();
    for (int k = k0; k < k1; ++k) {
      const __m512i x = _mm512_loadu_si512(codes + 64 * k);
      const __m512i idx = _mm512_add_epi8(base, _mm512_set1_epi8((char)(2 * k)));
      for (int g = 0; g < NG; ++g)
        s8[g] = _mm512_add_epi8(s8[g], _mm512_popcnt_epi8(_mm512_xor_si512(x, _mm512_permutexvar_epi8(idx, q[g]))));
    }
    for (int g = 0; g < NG; ++g) acc[g] = widen_pairs(acc[g], s8[g]);
  }
  for (int g = 0; g < NG; ++g) store_sums(acc[g], h[g]);
}

// Any tables: 512-bit pshufb, position p's tables in lanes 0-1, p+1's in lanes 2-3.
template <int NG>
void lut_sums512(const uint8_t* const* tabs, const uint8_t* codes, int nbytes, int chunk, int32_t (*h)[32]) {
  const __m512i m4 = _mm512_set1_epi8(15);
  __m512i acc[NG];
  for (int g = 0; g < NG; ++g) acc[g] = _mm512_setzero_si512();
  const int npairs = nbytes / 2;
  for (int k0 = 0; k0 < npairs; k0 += chunk) {
    const int k1 = std::min(npairs, k0 + chunk);
    __m512i s8[NG];
    for (int g = 0; g < NG; ++g) s8[g] = _mm512_setzero_si512();
    for (int k = k0; k < k1; ++k) {
      const __m512i x = _mm512_loadu_si512(codes + 64 * k);
      const __m512i xl = _mm512_and_si512(x, m4), xh = _mm512_and_si512(_mm512_srli_epi16(x, 4), m4);
      for (int g = 0; g < NG; ++g) {
        const __m512i t = _mm512_loadu_si512(tabs[g] + 64 * k);  // [lo_p hi_p lo_p+1 hi_p+1]
        const __m512i tl = _mm512_shuffle_i64x2(t, t, _MM_SHUFFLE(2, 2, 0, 0));
        const __m512i th = _mm512_shuffle_i64x2(t, t, _MM_SHUFFLE(3, 3, 1, 1));
        s8[g] = _mm512_add_epi8(s8[g], _mm512_add_epi8(_mm512_shuffle_epi8(tl, xl), _mm512_shuffle_epi8(th, xh)));
      }
    }
    for (int g = 0; g < NG; ++g) acc[g] = widen_pairs(acc[g], s8[g]);
  }
  for (int g = 0; g < NG; ++g) store_sums(acc[g], h[g]);
}
#endif

#if HWY_TARGET == HWY_NEON
// As lut_sums256: h[g][t] for NG heads, tokens 0-15 in x[0] and 16-31 in x[1].
template <int NG>
void lut_sums_neon(const uint8_t* const* tabs, const uint8_t* codes, int nbytes, int chunk, int32_t (*h)[32]) {
  const uint8x16_t m4 = vdupq_n_u8(15);
  uint16x8_t acc[NG][4];  // tokens 8j .. 8j + 7
  for (int g = 0; g < NG; ++g)
    for (int j = 0; j < 4; ++j) acc[g][j] = vdupq_n_u16(0);
  for (int p0 = 0; p0 < nbytes; p0 += chunk) {
    const int p1 = std::min(nbytes, p0 + chunk);
    uint8x16_t s8[NG][2];
    for (int g = 0; g < NG; ++g) s8[g][0] = s8[g][1] = vdupq_n_u8(0);
    for (int p = p0; p < p1; ++p) {
      uint8x16_t xl[2], xh[2];
      for (int k = 0; k < 2; ++k) {
        const uint8x16_t x = vld1q_u8(codes + p * 32 + 16 * k);
        xl[k] = vandq_u8(x, m4), xh[k] = vshrq_n_u8(x, 4);
      }
      for (int g = 0; g < NG; ++g) {
        const uint8x16_t tl = vld1q_u8(tabs[g] + p * 32), th = vld1q_u8(tabs[g] + p * 32 + 16);
        for (int k = 0; k < 2; ++k)
          s8[g][k] = vaddq_u8(s8[g][k], vaddq_u8(vqtbl1q_u8(tl, xl[k]), vqtbl1q_u8(th, xh[k])));
      }
    }
    for (int g = 0; g < NG; ++g)
      for (int k = 0; k < 2; ++k) {
        acc[g][2 * k] = vaddw_u8(acc[g][2 * k], vget_low_u8(s8[g][k]));
        acc[g][2 * k + 1] = vaddw_high_u8(acc[g][2 * k + 1], s8[g][k]);
      }
  }
  for (int g = 0; g < NG; ++g)
    for (int j = 0; j < 4; ++j) {
      vst1q_s32(h[g] + 8 * j, vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(acc[g][j]))));
      vst1q_s32(h[g] + 8 * j + 4, vreinterpretq_s32_u32(vmovl_high_u16(acc[g][j])));
    }
}
#endif

}  // namespace

void GroupSums(const uint8_t* const* tabs, const uint8_t* const* qbytes, int ng, const uint8_t* codes,
               int nbytes, int chunk, int32_t (*h)[32]) {
#if HWY_TARGET == HWY_AVX3_DL
  if (nbytes % 2 == 0) {
    if (qbytes) {
      switch (ng) {
        case 1: return pop_sums512<1>(qbytes, codes, nbytes, chunk, h);
        case 2: return pop_sums512<2>(qbytes, codes, nbytes, chunk, h);
        case 3: return pop_sums512<3>(qbytes, codes, nbytes, chunk, h);
        default: return pop_sums512<4>(qbytes, codes, nbytes, chunk, h);
      }
    }
    switch (ng) {
      case 1: return lut_sums512<1>(tabs, codes, nbytes, chunk, h);
      case 2: return lut_sums512<2>(tabs, codes, nbytes, chunk, h);
      case 3: return lut_sums512<3>(tabs, codes, nbytes, chunk, h);
      default: return lut_sums512<4>(tabs, codes, nbytes, chunk, h);
    }
  }
#endif
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3_DL
  (void)qbytes;
  switch (ng) {
    case 1: return lut_sums256<1>(tabs, codes, nbytes, chunk, h);
    case 2: return lut_sums256<2>(tabs, codes, nbytes, chunk, h);
    case 3: return lut_sums256<3>(tabs, codes, nbytes, chunk, h);
    default: return lut_sums256<4>(tabs, codes, nbytes, chunk, h);
  }
#elif HWY_TARGET == HWY_NEON
  (void)qbytes;
  switch (ng) {
    case 1: return lut_sums_neon<1>(tabs, codes, nbytes, chunk, h);
    case 2: return lut_sums_neon<2>(tabs, codes, nbytes, chunk, h);
    case 3: return lut_sums_neon<3>(tabs, codes, nbytes, chunk, h);
    default: return lut_sums_neon<4>(tabs, codes, nbytes, chunk, h);
  }
#else
  (void)qbytes, (void)chunk;
  for (int g = 0; g < ng; ++g) lut_scores32_ref(tabs[g], codes, nbytes, h[g]);
#endif
}

}  // namespace h1bkv::detail::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace h1bkv::detail {

HWY_EXPORT(GroupSums);

void sketch_group_sums(Isa isa, const uint8_t* const* tabs, const uint8_t* const* qbytes, int ng,
                       const uint8_t* codes, int nbytes, int chunk, int32_t (*h)[32]) {
  if (isa == Isa::scalar) {
    for (int g = 0; g < ng; ++g) lut_scores32_ref(tabs[g], codes, nbytes, h[g]);
    return;
  }
  HWY_DYNAMIC_DISPATCH(GroupSums)(tabs, qbytes, ng, codes, nbytes, chunk, h);
}

}  // namespace h1bkv::detail
#endif  // HWY_ONCE
