// The int4 value accumulation (int4_kernels.h), one copy per Highway target:
//   AVX2     integer: two tokens' 8 codes per step interleaved into 16-bit pairs, vpmaddwd
//            against 16-bit factors (w_t s_t rounded to 15 bits per piece of 64 tokens and value
//            group), up to 12 accumulators per tile
//   AVX3_DL  the same with 16 codes per step (vpermb) into vpdpwssd where the value group's half
//            is a multiple of 16 and the build has VNNI (GCC; not clang, tensor/simd-inl.h),
//            else the AVX2 code
//   NEON     8 codes per step (widened to 2 x 4 lanes), 4-lane FMAs, up to 24 accumulators per tile
//   others   int4_accumulate_ref per head
// The vector paths use sum_t w_t (m_t + s_t q_t) = sum_t (w_t s_t) q_t + sum_t w_t m_t: products
// on the codes (x86: exact integer sums, int4.h's int4_accumulate_q16_ref), then the weighted
// minimum of each group added once. Tokens in pieces; accumulators start at zero per piece and
// are added to acc at its end.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kv/codecs/int4_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "tensor/simd-inl.h"  // H1BKV_HAVE_VNNI, H1BKV_VNNI_BEGIN

#if HWY_ARCH_X86
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "kv/codecs/int4.h"
#include "kv/codecs/int4_kernels.h"

HWY_BEFORE_NAMESPACE();
H1BKV_VNNI_BEGIN
namespace h1bkv::detail::HWY_NAMESPACE {
namespace {

[[maybe_unused]] constexpr int kMaxGroups = 8;  // value groups per head the vector paths take (d / G)

// Calls tile(std::integral_constant<int, nc>{}, j0, gr) over the nb code bytes of a vector in
// tiles of nc <= NC chunks of cb bytes from byte j0, each within value group gr (half bytes per
// group; half % cb == 0, and NC * cb divides half or a group's tail takes a smaller tile).
template <int NC, class F>
[[maybe_unused]] inline void for_code_tiles(int nb, int half, int cb, F&& tile) {
  for (int j0 = 0; j0 < nb;) {
    const int gr = j0 / half, nc = std::min(NC, (std::min(nb, (gr + 1) * half) - j0) / cb);
    switch (nc) {
      case 1: tile(std::integral_constant<int, 1>{}, j0, gr); break;
      case 2: tile(std::integral_constant<int, 2>{}, j0, gr); break;
      case 3: tile(std::integral_constant<int, 3>{}, j0, gr); break;
      default: tile(std::integral_constant<int, NC>{}, j0, gr); break;
    }
    j0 += nc * cb;
  }
}

// Calls f(std::integral_constant<int, NG>{}, g0) for the heads g0 .. g0 + NG - 1, NG <= 3.
template <class F>
[[maybe_unused]] inline void by_three_heads(int ngt, F&& f) {
  for (int g0 = 0; g0 < ngt; g0 += 3) {
    switch (std::min(3, ngt - g0)) {
      case 1: f(std::integral_constant<int, 1>{}, g0); break;
      case 2: f(std::integral_constant<int, 2>{}, g0); break;
      default: f(std::integral_constant<int, 3>{}, g0); break;
    }
  }
}

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3_DL
constexpr int kPiece = kInt4Piece;

// q[t] = a[t] / unit rounded to nearest even for t < m (a multiple of 8; a is 0 past the piece's
// tokens, and so is q), unit = max |a| / 32767 (0 when a is all zero). Returns unit.
inline float quantize_piece(const float* a, int m, int16_t* q) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 mx = _mm256_setzero_ps();
  for (int t = 0; t < m; t += 8) mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, _mm256_load_ps(a + t)));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  const float amax = _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
  const __m256 inv = _mm256_set1_ps(amax > 0 ? 32767.0f / amax : 0.0f);
  for (int t = 0; t < m; t += 8) {
    const __m256i x = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_load_ps(a + t), inv));
    const __m128i p = _mm_packs_epi32(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1));
    _mm_store_si128(reinterpret_cast<__m128i*>(q + t), p);
  }
  return amax / 32767.0f;
}

// One tile of NC chunks (8 code bytes each, all in value group gr) starting at byte j0, over
// token pairs (t, t+1) of n, for NG heads with 16-bit factors q[g][t] (a token past n has factor
// 0 and reads token t's codes again): the pair's bytes interleaved and widened to dwords of two
// 16-bit codes, vpmaddwd gives q_t code_t + q_t+1 code_t+1 in lane k = element e + 8c + k (hi:
// + G/2), exact in int32 (|q| <= 32767, codes <= 15, kPiece tokens); out += sum * unit[g].
// Accumulators stay in registers (the file is compiled with a larger SRA limit, CMakeLists.txt).
template <int NG, int NC>
void int4_tile(const int16_t* const* q, const float* unit, const uint8_t* vals, int64_t n, size_t vb,
               int G, int j0, float* const* out) {
  const int half = G / 2, gr = j0 / half, e = gr * G + (j0 - gr * half);
  __m256i lo[NG][NC], hi[NG][NC];
  for (int g = 0; g < NG; ++g)
    for (int c = 0; c < NC; ++c) lo[g][c] = hi[g][c] = _mm256_setzero_si256();
  const __m256i m15 = _mm256_set1_epi16(15);
  for (int64_t t = 0; t < n; t += 2) {
    const uint8_t* v0 = vals + t * vb + j0;
    const uint8_t* v1 = t + 1 < n ? v0 + vb : v0;
    for (int c = 0; c < NC; ++c) {
      const __m128i x = _mm_unpacklo_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(v0 + 8 * c)),
                                          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(v1 + 8 * c)));
      const __m256i wd = _mm256_cvtepu8_epi16(x);
      const __m256i cl = _mm256_and_si256(wd, m15), ch = _mm256_srli_epi16(wd, 4);
      for (int g = 0; g < NG; ++g) {  // broadcast per chunk (a load): keeps registers for sums
        int32_t pair;
        std::memcpy(&pair, q[g] + t, 4);
        const __m256i qv = _mm256_set1_epi32(pair);
        lo[g][c] = _mm256_add_epi32(lo[g][c], _mm256_madd_epi16(cl, qv));
        hi[g][c] = _mm256_add_epi32(hi[g][c], _mm256_madd_epi16(ch, qv));
      }
    }
  }
  for (int g = 0; g < NG; ++g) {
    const __m256 u = _mm256_set1_ps(unit[g]);
    for (int c = 0; c < NC; ++c) {
      float* o = out[g] + e + 8 * c;
      _mm256_storeu_ps(o, _mm256_fmadd_ps(_mm256_cvtepi32_ps(lo[g][c]), u, _mm256_loadu_ps(o)));
      _mm256_storeu_ps(o + half, _mm256_fmadd_ps(_mm256_cvtepi32_ps(hi[g][c]), u, _mm256_loadu_ps(o + half)));
    }
  }
}

// NG heads, value groups of G elements (G % 16 == 0, d / G <= kMaxGroups): per piece
// a[g][gr][t] = w[g][t] * scale_t rounded to 16-bit factors and the weighted minima (8-lane
// sums), then the tiles.
template <int NG>
void int4_group(const float* const* w, const uint8_t* vals, int64_t n, int d, int G,
                float* const* out) {
  constexpr int NC = NG == 1 ? 4 : NG == 2 ? 3 : 2;  // 2 NG NC <= 12 accumulators
  const int ng = d / G, nb = d / 2, half = G / 2;
  const size_t vb = int4_bytes(d, G);
  alignas(32) float a[kPiece];
  alignas(32) float sv[kMaxGroups][kPiece], mv[kMaxGroups][kPiece];
  alignas(32) int16_t q[NG][kMaxGroups][kPiece];
  float unit[NG][kMaxGroups];
  __m256 cm[NG][kMaxGroups];
  for (int g = 0; g < NG; ++g)
    for (int gr = 0; gr < ng; ++gr) cm[g][gr] = _mm256_setzero_ps();
  for (int64_t p0 = 0; p0 < n; p0 += kPiece) {
    const int m = (int)std::min<int64_t>(kPiece, n - p0), m8 = (m + 7) / 8 * 8;
    const uint8_t* vp = vals + p0 * vb;
    for (int gr = 0; gr < ng; ++gr) {
      for (int t = 0; t < m; ++t) {  // {scale, min} of 2 fp16 at once
        uint32_t sm;
        std::memcpy(&sm, vp + t * vb + nb + 4 * gr, 4);
        const __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)sm));
        sv[gr][t] = _mm_cvtss_f32(f);
        mv[gr][t] = _mm_cvtss_f32(_mm_movehdup_ps(f));
      }
      for (int t = m; t < m8; ++t) sv[gr][t] = mv[gr][t] = 0;
    }
    for (int g = 0; g < NG; ++g) {
      alignas(32) float wl[kPiece];
      for (int t = 0; t < m; ++t) wl[t] = w[g][p0 + t];
      for (int t = m; t < m8; ++t) wl[t] = 0;
      for (int gr = 0; gr < ng; ++gr) {
        for (int t = 0; t < m8; t += 8) {
          const __m256 wv = _mm256_load_ps(wl + t);
          _mm256_store_ps(a + t, _mm256_mul_ps(wv, _mm256_load_ps(&sv[gr][t])));
          cm[g][gr] = _mm256_fmadd_ps(wv, _mm256_load_ps(&mv[gr][t]), cm[g][gr]);
        }
        unit[g][gr] = quantize_piece(a, m8, q[g][gr]);
      }
    }
    // a tile stays within one value group: half % 8 == 0 and NC * 8 divides half or NC = 1
    for_code_tiles<NC>(nb, half, 8, [&](auto nc, int j0, int gr) {
      const int16_t* qp[NG];
      float up[NG];
      for (int g = 0; g < NG; ++g) qp[g] = q[g][gr], up[g] = unit[g][gr];
      int4_tile<NG, decltype(nc)::value>(qp, up, vp, m, vb, G, j0, out);
    });
  }
  for (int g = 0; g < NG; ++g)
    for (int gr = 0; gr < ng; ++gr) {
      alignas(32) float l[8];
      _mm256_store_ps(l, cm[g][gr]);
      const float c = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
      for (int i = 0; i < G; ++i) out[g][gr * G + i] += c;
    }
}

#if HWY_TARGET == HWY_AVX3_DL && H1BKV_HAVE_VNNI
// As int4_tile with 16 code bytes per chunk: vpermb spreads the pair's bytes into dword lanes
// [code_t, code_t+1] of 16-bit words and vpdpwssd adds the products, lane k = element e + 16c + k.
template <int NG, int NC>
void int4_tile_vnni(const int16_t* const* q, const float* unit, const uint8_t* vals, int64_t n,
                    size_t vb, int G, int j0, float* const* out) {
  const int half = G / 2, gr = j0 / half, e = gr * G + (j0 - gr * half);
  __m512i lo[NG][NC], hi[NG][NC];
  for (int g = 0; g < NG; ++g)
    for (int c = 0; c < NC; ++c) lo[g][c] = hi[g][c] = _mm512_setzero_si512();
  // dword k <- bytes {k, 0, 16 + k, 0}: the odd bytes are masked to zero
  alignas(64) static constexpr uint8_t kSpread[64] = {
      0, 0, 16, 0, 1, 0, 17, 0, 2, 0, 18, 0, 3, 0, 19, 0, 4, 0, 20, 0, 5, 0, 21, 0,
      6, 0, 22, 0, 7, 0, 23, 0, 8, 0, 24, 0, 9, 0, 25, 0, 10, 0, 26, 0, 11, 0, 27, 0,
      12, 0, 28, 0, 13, 0, 29, 0, 14, 0, 30, 0, 15, 0, 31, 0};
  const __m512i spread = _mm512_load_si512(kSpread);
  const __m512i m15 = _mm512_set1_epi16(15);
  constexpr __mmask64 kEven = 0x5555555555555555ull;
  for (int64_t t = 0; t < n; t += 2) {
    const uint8_t* v0 = vals + t * vb + j0;
    const uint8_t* v1 = t + 1 < n ? v0 + vb : v0;
    for (int c = 0; c < NC; ++c) {
      const __m256i x = _mm256_inserti128_si256(
          _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v0 + 16 * c))),
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(v1 + 16 * c)), 1);
      const __m512i wd = _mm512_maskz_permutexvar_epi8(kEven, spread, _mm512_castsi256_si512(x));
      const __m512i cl = _mm512_and_si512(wd, m15), ch = _mm512_srli_epi16(wd, 4);
      for (int g = 0; g < NG; ++g) {
        int32_t pair;
        std::memcpy(&pair, q[g] + t, 4);
        const __m512i qv = _mm512_set1_epi32(pair);
        lo[g][c] = _mm512_dpwssd_epi32(lo[g][c], cl, qv);
        hi[g][c] = _mm512_dpwssd_epi32(hi[g][c], ch, qv);
      }
    }
  }
  for (int g = 0; g < NG; ++g) {
    const __m512 u = _mm512_set1_ps(unit[g]);
    for (int c = 0; c < NC; ++c) {
      float* o = out[g] + e + 16 * c;
      _mm512_storeu_ps(o, _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo[g][c]), u, _mm512_loadu_ps(o)));
      _mm512_storeu_ps(o + half, _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi[g][c]), u, _mm512_loadu_ps(o + half)));
    }
  }
}

// As int4_group with 16-lane setup (a piece's {scale, min} pairs converted 16 at a time) and
// VNNI tiles (G % 32 == 0).
template <int NG>
void int4_group512(const float* const* w, const uint8_t* vals, int64_t n, int d, int G,
                   float* const* out) {
  constexpr int NC = NG == 3 ? 2 : 4;  // 2 NG NC <= 16 accumulators
  const int ng = d / G, nb = d / 2, half = G / 2;
  const size_t vb = int4_bytes(d, G);
  alignas(64) float a[NG][kMaxGroups][kPiece];
  alignas(64) int16_t q[NG][kMaxGroups][kPiece];
  float unit[NG][kMaxGroups];
  __m512 cm[NG][kMaxGroups];
  for (int g = 0; g < NG; ++g)
    for (int gr = 0; gr < ng; ++gr) cm[g][gr] = _mm512_setzero_ps();
  alignas(64) uint32_t sm[kMaxGroups][kPiece];  // {scale, min} fp16 pairs of the piece
  for (int64_t p0 = 0; p0 < n; p0 += kPiece) {
    const int m = (int)std::min<int64_t>(kPiece, n - p0);
    const uint8_t* vp = vals + p0 * vb;
    for (int t = 0; t < m; ++t)  // (a gather is slower: microcoded on CPUs with the GDS fix)
      for (int gr = 0; gr < ng; ++gr) std::memcpy(&sm[gr][t], vp + t * vb + nb + 4 * gr, 4);
    for (int t0 = 0; t0 < m; t0 += 16) {
      const __mmask16 k = m - t0 >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (m - t0)) - 1);
      __m512 wv[NG];
      for (int g = 0; g < NG; ++g) wv[g] = _mm512_maskz_loadu_ps(k, w[g] + p0 + t0);
      for (int gr = 0; gr < ng; ++gr) {
        const __m512i x = _mm512_maskz_load_epi32(k, &sm[gr][t0]);  // 0 in lanes past m
        const __m512 s = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(x));
        const __m512 mn = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(x, 16)));
        for (int g = 0; g < NG; ++g) {
          _mm512_store_ps(&a[g][gr][t0], _mm512_mul_ps(wv[g], s));
          cm[g][gr] = _mm512_fmadd_ps(wv[g], mn, cm[g][gr]);
        }
      }
    }
    const int m8 = (m + 7) / 8 * 8;  // a is 0 from m to m rounded up to 16
    for (int g = 0; g < NG; ++g)
      for (int gr = 0; gr < ng; ++gr) unit[g][gr] = quantize_piece(a[g][gr], m8, q[g][gr]);
    // a tile stays within one value group: half % 16 == 0 and NC * 16 divides half or NC < 4
    for_code_tiles<NC>(nb, half, 16, [&](auto nc, int j0, int gr) {
      const int16_t* qp[NG];
      float up[NG];
      for (int g = 0; g < NG; ++g) qp[g] = q[g][gr], up[g] = unit[g][gr];
      int4_tile_vnni<NG, decltype(nc)::value>(qp, up, vp, m, vb, G, j0, out);
    });
  }
  for (int g = 0; g < NG; ++g)
    for (int gr = 0; gr < ng; ++gr) {
      const float c = _mm512_reduce_add_ps(cm[g][gr]);
      for (int i = 0; i < G; ++i) out[g][gr * G + i] += c;
    }
}
#endif  // VNNI
#endif  // AVX2, AVX3_DL

#if HWY_TARGET == HWY_NEON
constexpr int kPieceNeon = 32;

// As int4_tile: NC chunks of 8 code bytes from byte j0, lanes k of lo[g][c][h] = element
// e + 8c + 4h + k, of hi the same + G/2.
template <int NG, int NC>
void int4_tile_neon(const float* const* a, const uint8_t* vals, int64_t n, size_t vb, int G, int j0,
                    float* const* out) {
  const int half = G / 2, gr = j0 / half, e = gr * G + (j0 - gr * half);
  float32x4_t lo[NG][NC][2], hi[NG][NC][2];
  for (int g = 0; g < NG; ++g)
    for (int c = 0; c < NC; ++c) lo[g][c][0] = lo[g][c][1] = hi[g][c][0] = hi[g][c][1] = vdupq_n_f32(0.0f);
  const uint16x8_t m15 = vdupq_n_u16(15);
  for (int64_t t = 0; t < n; ++t) {
    const uint8_t* v = vals + t * vb + j0;
    for (int c = 0; c < NC; ++c) {
      const uint16x8_t x = vmovl_u8(vld1_u8(v + 8 * c));
      const uint16x8_t xl = vandq_u16(x, m15), xh = vshrq_n_u16(x, 4);
      const float32x4_t cl[2] = {vcvtq_f32_u32(vmovl_u16(vget_low_u16(xl))), vcvtq_f32_u32(vmovl_high_u16(xl))};
      const float32x4_t ch[2] = {vcvtq_f32_u32(vmovl_u16(vget_low_u16(xh))), vcvtq_f32_u32(vmovl_high_u16(xh))};
      for (int g = 0; g < NG; ++g) {
        const float av = a[g][t];
        for (int h = 0; h < 2; ++h) {
          lo[g][c][h] = vfmaq_n_f32(lo[g][c][h], cl[h], av);
          hi[g][c][h] = vfmaq_n_f32(hi[g][c][h], ch[h], av);
        }
      }
    }
  }
  for (int g = 0; g < NG; ++g)
    for (int c = 0; c < NC; ++c)
      for (int h = 0; h < 2; ++h) {
        float* o = out[g] + e + 8 * c + 4 * h;
        vst1q_f32(o, vaddq_f32(vld1q_f32(o), lo[g][c][h]));
        vst1q_f32(o + half, vaddq_f32(vld1q_f32(o + half), hi[g][c][h]));
      }
}

// As int4_group with float factors in 4-lane FMAs (G % 16 == 0, d / G <= kMaxGroups).
template <int NG>
void int4_group_neon(const float* const* w, const uint8_t* vals, int64_t n, int d, int G, float* const* out) {
  constexpr int NC = NG == 1 ? 4 : NG == 2 ? 3 : 2;  // 4 NG NC <= 24 accumulators
  const int ng = d / G, nb = d / 2, half = G / 2;
  const size_t vb = int4_bytes(d, G);
  float a[NG][kMaxGroups][kPieceNeon];
  float sv[kMaxGroups][kPieceNeon], mv[kMaxGroups][kPieceNeon];
  float32x4_t cm[NG][kMaxGroups];
  for (int g = 0; g < NG; ++g)
    for (int gr = 0; gr < ng; ++gr) cm[g][gr] = vdupq_n_f32(0.0f);
  for (int64_t p0 = 0; p0 < n; p0 += kPieceNeon) {
    const int m = (int)std::min<int64_t>(kPieceNeon, n - p0), m4 = (m + 3) / 4 * 4;
    const uint8_t* vp = vals + p0 * vb;
    for (int gr = 0; gr < ng; ++gr) {
      for (int t = 0; t < m; ++t) {  // {scale, min} fp16 pair
        uint32_t sm;
        std::memcpy(&sm, vp + t * vb + nb + 4 * gr, 4);
        const float32x4_t f = vcvt_f32_f16(vreinterpret_f16_u32(vdup_n_u32(sm)));
        sv[gr][t] = vgetq_lane_f32(f, 0);
        mv[gr][t] = vgetq_lane_f32(f, 1);
      }
      for (int t = m; t < m4; ++t) sv[gr][t] = mv[gr][t] = 0;
    }
    for (int g = 0; g < NG; ++g) {
      float wl[kPieceNeon];
      for (int t = 0; t < m; ++t) wl[t] = w[g][p0 + t];
      for (int t = m; t < m4; ++t) wl[t] = 0;
      for (int gr = 0; gr < ng; ++gr)
        for (int t = 0; t < m4; t += 4) {
          const float32x4_t wv = vld1q_f32(wl + t);
          vst1q_f32(&a[g][gr][t], vmulq_f32(wv, vld1q_f32(&sv[gr][t])));
          cm[g][gr] = vfmaq_f32(cm[g][gr], wv, vld1q_f32(&mv[gr][t]));
        }
    }
    // a tile stays within one value group: half % 8 == 0 and NC * 8 divides half or NC = 1
    for_code_tiles<NC>(nb, half, 8, [&](auto nc, int j0, int gr) {
      const float* ap[NG];
      for (int g = 0; g < NG; ++g) ap[g] = a[g][gr];
      int4_tile_neon<NG, decltype(nc)::value>(ap, vp, m, vb, G, j0, out);
    });
  }
  for (int g = 0; g < NG; ++g)
    for (int gr = 0; gr < ng; ++gr) {
      const float c = vaddvq_f32(cm[g][gr]);
      for (int i = 0; i < G; ++i) out[g][gr * G + i] += c;
    }
}
#endif

}  // namespace

bool IntegerSums(int d, int group) {
  const int G = group ? group : d;
  (void)G;
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3_DL
  return G % 16 == 0 && d / G <= kMaxGroups;
#else
  return false;
#endif
}

void GroupSums(const float* const* w, int ngt, const uint8_t* vals, int64_t n, int d, int group,
               float* const* out) {
  const int G = group ? group : d, ng = d / G;
#if HWY_TARGET == HWY_NEON
  if (G % 16 == 0 && ng <= kMaxGroups) {
    by_three_heads(ngt, [&](auto ng, int g0) { int4_group_neon<decltype(ng)::value>(w + g0, vals, n, d, G, out + g0); });
    return;
  }
#endif
#if HWY_TARGET == HWY_AVX3_DL && H1BKV_HAVE_VNNI
  if (G % 32 == 0 && ng <= kMaxGroups) {
    by_three_heads(ngt, [&](auto ng, int g0) { int4_group512<decltype(ng)::value>(w + g0, vals, n, d, G, out + g0); });
    return;
  }
#endif
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3_DL
  if (G % 16 == 0 && ng <= kMaxGroups) {
    by_three_heads(ngt, [&](auto ng, int g0) { int4_group<decltype(ng)::value>(w + g0, vals, n, d, G, out + g0); });
    return;
  }
#endif
  (void)ng;
  for (int g = 0; g < ngt; ++g) int4_accumulate_ref(w[g], vals, n, d, group, out[g]);
}

}  // namespace h1bkv::detail::HWY_NAMESPACE
H1BKV_VNNI_END
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace h1bkv::detail {

HWY_EXPORT(GroupSums);
HWY_EXPORT(IntegerSums);

bool int4_integer_sums(Isa isa, int d, int group) {
  return isa != Isa::scalar && HWY_DYNAMIC_DISPATCH(IntegerSums)(d, group);
}

void int4_group_sums(Isa isa, const float* const* w, int ng, const uint8_t* vals, int64_t n, int d,
                     int group, float* const* acc) {
  if (isa == Isa::scalar) {
    for (int g = 0; g < ng; ++g) int4_accumulate_ref(w[g], vals, n, d, group, acc[g]);
    return;
  }
  HWY_DYNAMIC_DISPATCH(GroupSums)(w, ng, vals, n, d, group, acc);
}

}  // namespace h1bkv::detail
#endif  // HWY_ONCE
