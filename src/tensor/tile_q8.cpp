// Register-blocked tile kernels (kernels.h TileKernel) for Q4_1 x Q8_1 and Q8_0 x Q8_0: nr (1..4)
// weight rows x nt (1..4) tokens per call, all nr*nt accumulators in zmm registers, so a weight
// block pair is unpacked once for nt tokens and an activation block pair loaded once for nr rows.
// AVX3_DL only (512-bit vpdpbusd, AVX-512 VNNI); other targets leave the entries null and matmul
// runs their row kernels. Layout of one step: a zmm holds blocks i (low 256 bits) and i+1 (high);
// an odd last block gets a zero high half. Each (row, token) accumulator sees the same operations
// in the same order whatever nr and nt are, so a dot does not depend on the tiling.
// Weights are used as stored (no repacking at load): with 4 rows per call the row pointers are
// four streams the prefetchers follow, and decode reads each weight byte once either way.
// GCC 12 reports false (maybe-)uninitialized warnings inside avx512fintrin.h's own intrinsics.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "tensor/tile_q8.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cstring>

#include "tensor/blocks.h"
#include "tensor/kernels.h"
#include "tensor/simd-inl.h"

HWY_BEFORE_NAMESPACE();
H1BKV_VNNI_BEGIN
namespace h1bkv::detail::HWY_NAMESPACE {
namespace {

#if HWY_TARGET == HWY_AVX3_DL && H1BKV_HAVE_VNNI
#define H1BKV_TILE_INLINE inline __attribute__((always_inline))

H1BKV_TILE_INLINE __m512i join(__m256i lo, __m256i hi) {
  return _mm512_inserti64x4(_mm512_zextsi256_si512(lo), hi, 1);
}
H1BKV_TILE_INLINE __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// v = [a, b, c, d, ...] -> lanes 0..7 = v[lo], lanes 8..15 = v[hi]
template <int lo, int hi>
H1BKV_TILE_INLINE __m512 spread(__m128 v) {
  const __m512i idx = _mm512_set_epi32(hi, hi, hi, hi, hi, hi, hi, hi, lo, lo, lo, lo, lo, lo, lo, lo);
  return _mm512_permutexvar_ps(idx, _mm512_zextps128_ps512(v));
}

// ---- Q4_1 x Q8_1: dot = sum_i d_w d_x sum(q_w q_x) + m_w s_x. The min term goes into lanes 0 and
// 8 of the same accumulator (m_w in those lanes only), so the final lane sum adds it.
// One step: blocks i and (if Two) i+1 of NR rows x NT tokens.
template <int NR, int NT, bool Two>
H1BKV_TILE_INLINE void q4_1_step(const uint8_t* w, size_t rb, const uint8_t* act, size_t st, int64_t i,
                                 __m512 (&acc)[NR][NT]) {
  __m512i q[NR];
  __m512 dw[NR], mw[NR];
  for (int r = 0; r < NR; ++r) {
    const BlockQ4_1* b = reinterpret_cast<const BlockQ4_1*>(w + r * rb) + i;
    q[r] = join(unpack_nibbles(b[0].qs), Two ? unpack_nibbles(b[1].qs) : _mm256_setzero_si256());
    uint32_t dm0, dm1 = 0;  // [d, m] fp16 pairs of blocks i, i+1
    std::memcpy(&dm0, &b[0].d, 4);
    if (Two) std::memcpy(&dm1, &b[1].d, 4);
    const __m128 dm = _mm_cvtph_ps(_mm_set_epi32(0, 0, (int)dm1, (int)dm0));  // [d0, m0, d1, m1]
    dw[r] = spread<0, 2>(dm);
    mw[r] = _mm512_maskz_mov_ps(0x0101, spread<1, 3>(dm));
  }
  for (int t = 0; t < NT; ++t) {
    const ActQ8_1* a = reinterpret_cast<const ActQ8_1*>(act + t * st) + i;
    const __m512i yv = join(load32(a[0].qs), Two ? load32(a[1].qs) : _mm256_setzero_si256());
    __m128d ds = _mm_load_sd(reinterpret_cast<const double*>(&a[0].d));  // [d0, s0, 0, 0]
    if (Two) ds = _mm_loadh_pd(ds, reinterpret_cast<const double*>(&a[1].d));
    const __m128 dsf = _mm_castpd_ps(ds);
    const __m512 dx = spread<0, 2>(dsf), sx = spread<1, 3>(dsf);
    for (int r = 0; r < NR; ++r) {
      const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q[r], yv);
      acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw[r], dx), acc[r][t]);
      acc[r][t] = _mm512_fmadd_ps(mw[r], sx, acc[r][t]);
    }
  }
}

template <int NR, int NT>
void q4_1_tile(const uint8_t* w, size_t rb, const uint8_t* act, size_t st, int64_t cols, float* y, size_t ys) {
  const int64_t nb = cols / QK;
  __m512 acc[NR][NT];
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) acc[r][t] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 1 < nb; i += 2) q4_1_step<NR, NT, true>(w, rb, act, st, i, acc);
  if (i < nb) q4_1_step<NR, NT, false>(w, rb, act, st, i, acc);
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) y[t * ys + r] = _mm512_reduce_add_ps(acc[r][t]);
}

// ---- Q8_0 x Q8_0: vpdpbusd needs one unsigned operand, so the activations are offset to
// u = q_x + 128 (xor 0x80) and 128 sum(q_w) is subtracted: the accumulator starts at
// -dpbusd(128, q_w), computed once per weight block pair. Exact in int32.
template <int NR, int NT, bool Two>
H1BKV_TILE_INLINE void q8_0_step(const uint8_t* w, size_t rb, const uint8_t* act, size_t st, int64_t i,
                                 __m512 (&acc)[NR][NT]) {
  const __m512i k80 = _mm512_set1_epi8((char)0x80);
  __m512i q[NR], neg128sum[NR];
  __m512 dw[NR];
  for (int r = 0; r < NR; ++r) {
    const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(w + r * rb) + i;
    q[r] = join(load32(b[0].qs), Two ? load32(b[1].qs) : _mm256_setzero_si256());
    neg128sum[r] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), k80, q[r]));
    const uint32_t dd = (uint32_t)b[0].d | (Two ? (uint32_t)b[1].d << 16 : 0u);
    dw[r] = spread<0, 1>(_mm_cvtph_ps(_mm_cvtsi32_si128((int)dd)));
  }
  for (int t = 0; t < NT; ++t) {
    const ActQ8_0* a = reinterpret_cast<const ActQ8_0*>(act + t * st) + i;
    const __m512i u = _mm512_xor_si512(join(load32(a[0].qs), Two ? load32(a[1].qs) : _mm256_setzero_si256()), k80);
    const __m128 d01 = _mm_unpacklo_ps(_mm_load_ss(&a[0].d), Two ? _mm_load_ss(&a[1].d) : _mm_setzero_ps());
    const __m512 dx = spread<0, 1>(d01);
    for (int r = 0; r < NR; ++r) {
      const __m512i p = _mm512_dpbusd_epi32(neg128sum[r], u, q[r]);
      acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw[r], dx), acc[r][t]);
    }
  }
}

template <int NR, int NT>
void q8_0_tile(const uint8_t* w, size_t rb, const uint8_t* act, size_t st, int64_t cols, float* y, size_t ys) {
  const int64_t nb = cols / QK;
  __m512 acc[NR][NT];
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) acc[r][t] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 1 < nb; i += 2) q8_0_step<NR, NT, true>(w, rb, act, st, i, acc);
  if (i < nb) q8_0_step<NR, NT, false>(w, rb, act, st, i, acc);
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) y[t * ys + r] = _mm512_reduce_add_ps(acc[r][t]);
}

using Tile = void (*)(const uint8_t*, size_t, const uint8_t*, size_t, int64_t, float*, size_t);

// [nr-1][nt-1] -> K<nr, nt>
template <template <int, int> class K>
struct Table {
  static constexpr Tile t[4][4] = {{K<1, 1>::f, K<1, 2>::f, K<1, 3>::f, K<1, 4>::f},
                                   {K<2, 1>::f, K<2, 2>::f, K<2, 3>::f, K<2, 4>::f},
                                   {K<3, 1>::f, K<3, 2>::f, K<3, 3>::f, K<3, 4>::f},
                                   {K<4, 1>::f, K<4, 2>::f, K<4, 3>::f, K<4, 4>::f}};
};
template <int R, int T> struct Q41 { static constexpr Tile f = q4_1_tile<R, T>; };
template <int R, int T> struct Q80 { static constexpr Tile f = q8_0_tile<R, T>; };

// nr rows x nt tokens as row groups of kMicroRows (fewer accumulators than registers: a 4 x 4
// block of zmm accumulators plus the operands spilled to the stack).
constexpr int kMicroRows = 2;
template <template <int, int> class K>
void run_rows(const uint8_t* w, size_t rb, int nr, const uint8_t* act, size_t st, int nt, int64_t cols,
              float* y, size_t ys) {
  for (int r = 0; r < nr; r += kMicroRows) {
    const int m = nr - r < kMicroRows ? nr - r : kMicroRows;
    Table<K>::t[m - 1][nt - 1](w + r * rb, rb, act, st, cols, y + r, ys);
  }
}
void q4_1_dispatch(const uint8_t* w, size_t rb, int nr, const uint8_t* act, size_t st, int nt, int64_t cols,
                   float* y, size_t ys) {
  run_rows<Q41>(w, rb, nr, act, st, nt, cols, y, ys);
}
void q8_0_dispatch(const uint8_t* w, size_t rb, int nr, const uint8_t* act, size_t st, int nt, int64_t cols,
                   float* y, size_t ys) {
  run_rows<Q80>(w, rb, nr, act, st, nt, cols, y, ys);
}

void FillImpl(TileSet& ts) { ts.q4_1 = q4_1_dispatch, ts.q8_0 = q8_0_dispatch; }
#undef H1BKV_TILE_INLINE
#else  // no tile kernels on this target: matmul uses the row kernels
void FillImpl(TileSet& ts) { ts.q4_1 = nullptr, ts.q8_0 = nullptr; }
#endif

}  // namespace
void FillTiles(TileSet* ts) { FillImpl(*ts); }
}  // namespace h1bkv::detail::HWY_NAMESPACE
H1BKV_VNNI_END
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace h1bkv::detail {
HWY_EXPORT(FillTiles);

void fill_tile_kernels(Isa isa, TileSet& ts) {
  ts = TileSet{};
  if (isa != Isa::scalar) HWY_DYNAMIC_DISPATCH(FillTiles)(&ts);
}
}  // namespace h1bkv::detail
#endif  // HWY_ONCE
