// Dot kernels of the 32-wide block types against 8-bit activation blocks (ggml vec_dot_q*_q8_*):
// Q4_0, Q5_0, Q8_0 x Q8_0 and Q4_1, Q5_1 x Q8_1. Per block an integer dot of 32 products,
// scaled by d_w * d_x; the _1 types add m_w * s_x (s_x = d_x * sum(q_x)).
// Compiled once per Highway target (foreach_target): AVX2 = maddubs + madd on one block per
// 256-bit step; AVX3_DL = the same code with vpdpbusd (AVX-512 VNNI, 256-bit form; Highway 1.0.3
// has no op for it) in place of maddubs + madd (tensor/simd-inl.h dot_u8s8); NEON (64-bit ARM)
// = every type here with 16-byte integer dots; other targets = the scalar references. A 512-bit
// version taking two blocks per step was slower at decode on the Xeon we measured
// (docs/speed.md) and was dropped. The weight block is unpacked once and used for every token of
// the tile.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "tensor/dot_q8.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cstring>

#include "tensor/blocks.h"
#include "tensor/kernels.h"
#include "tensor/simd-inl.h"
#include "util/fp16.h"

#ifndef H1BKV_DOT_Q8_ONCE
#define H1BKV_DOT_Q8_ONCE
namespace h1bkv::detail {
#define ALWAYS_INLINE inline __attribute__((always_inline))
template <class A>
ALWAYS_INLINE const A* act_block(const uint8_t* act, size_t stride, int t, int64_t i) {
  return reinterpret_cast<const A*>(act + (size_t)t * stride) + i;
}
// ref_rows and the block dots (defined below, once)
void dot_q4_0_ref(const uint8_t*, const uint8_t*, size_t, int, int64_t, float*);
void dot_q4_1_ref(const uint8_t*, const uint8_t*, size_t, int, int64_t, float*);
void dot_q5_0_ref(const uint8_t*, const uint8_t*, size_t, int, int64_t, float*);
void dot_q5_1_ref(const uint8_t*, const uint8_t*, size_t, int, int64_t, float*);
void dot_q8_0_ref(const uint8_t*, const uint8_t*, size_t, int, int64_t, float*);
}  // namespace h1bkv::detail
#endif

HWY_BEFORE_NAMESPACE();
H1BKV_VNNI_BEGIN
namespace h1bkv::detail::HWY_NAMESPACE {
namespace {

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3_DL
// ---- signed weights (Q4_0, Q5_0, Q8_0) x Q8_0: |q| * sign(y, q) with maddubs, as ggml does.
template <int NT>
ALWAYS_INLINE void signed_block(__m256i q, float d, const uint8_t* act, size_t st, int64_t i,
                                __m256 (&acc)[NT]) {
  const __m256i aq = _mm256_sign_epi8(q, q);
  for (int t = 0; t < NT; ++t) {
    const ActQ8_0* a = act_block<ActQ8_0>(act, st, t, i);
    const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->qs));
    const __m256i p = dot_u8s8(aq, _mm256_sign_epi8(y, q));
    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d * a->d), acc[t]);
  }
}

ALWAYS_INLINE __m256i q4_0_values(const BlockQ4_0& b) {  // -8..7
  return _mm256_sub_epi8(unpack_nibbles(b.qs), _mm256_set1_epi8(8));
}
ALWAYS_INLINE __m256i q5_0_values(const BlockQ5_0& b) {  // -16..15: high nibble F0 where bit 4 = 0
  const __m256i hi = _mm256_andnot_si256(bits_to_bytes(b.qh), _mm256_set1_epi8((char)0xF0));
  return _mm256_or_si256(unpack_nibbles(b.qs), hi);
}
ALWAYS_INLINE __m256i q8_0_values(const BlockQ8_0& b) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
}

// Generic driver for signed types: blocks alternate between two accumulator sets (ILP).
template <class B, __m256i (*Values)(const B&), int NT>
void signed_tile(const uint8_t* w, const uint8_t* act, size_t st, int64_t cols, float* out) {
  const B* b = reinterpret_cast<const B*>(w);
  const int64_t nb = cols / QK;
  __m256 acc0[NT], acc1[NT];
  for (int t = 0; t < NT; ++t) acc0[t] = acc1[t] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 1 < nb; i += 2) {
    signed_block<NT>(Values(b[i]), half_to_float(b[i].d), act, st, i, acc0);
    signed_block<NT>(Values(b[i + 1]), half_to_float(b[i + 1].d), act, st, i + 1, acc1);
  }
  if (i < nb) signed_block<NT>(Values(b[i]), half_to_float(b[i].d), act, st, i, acc0);
  for (int t = 0; t < NT; ++t) out[t] = hsum_ps(_mm256_add_ps(acc0[t], acc1[t]));
}

// ---- unsigned weights with a min (Q4_1, Q5_1) x Q8_1.
// [d_w, m_w] (two adjacent fp16) * [d_x, s_x] (two adjacent floats) -> lane 0 scales the
// integer dot, lane 1 (m_w * s_x) is summed in accm.
template <int NT>
ALWAYS_INLINE void min_block(__m256i q, const uint16_t* dm_ptr, const uint8_t* act, size_t st,
                             int64_t i, __m256 (&acc)[NT], __m128 (&accm)[NT]) {
  uint32_t dm_bits;
  std::memcpy(&dm_bits, dm_ptr, 4);
  const __m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128((int)dm_bits));
  for (int t = 0; t < NT; ++t) {
    const ActQ8_1* a = act_block<ActQ8_1>(act, st, t, i);
    const __m128 ds = _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(&a->d)));
    const __m128 prod = _mm_mul_ps(dm, ds);
    const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->qs));
    const __m256i p = dot_u8s8(q, y);
    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_broadcastss_ps(prod), acc[t]);
    accm[t] = _mm_add_ps(accm[t], prod);
  }
}

ALWAYS_INLINE __m256i q4_1_values(const BlockQ4_1& b) { return unpack_nibbles(b.qs); }
ALWAYS_INLINE __m256i q5_1_values(const BlockQ5_1& b) {  // 0..31
  const __m256i hi = _mm256_and_si256(bits_to_bytes(b.qh), _mm256_set1_epi8(0x10));
  return _mm256_or_si256(unpack_nibbles(b.qs), hi);
}

template <class B, __m256i (*Values)(const B&), int NT>
void min_tile(const uint8_t* w, const uint8_t* act, size_t st, int64_t cols, float* out) {
  const B* b = reinterpret_cast<const B*>(w);
  const int64_t nb = cols / QK;
  __m256 acc0[NT], acc1[NT];
  __m128 accm[NT];
  for (int t = 0; t < NT; ++t) {
    acc0[t] = acc1[t] = _mm256_setzero_ps();
    accm[t] = _mm_setzero_ps();
  }
  int64_t i = 0;
  for (; i + 1 < nb; i += 2) {
    min_block<NT>(Values(b[i]), &b[i].d, act, st, i, acc0, accm);
    min_block<NT>(Values(b[i + 1]), &b[i + 1].d, act, st, i + 1, acc1, accm);
  }
  if (i < nb) min_block<NT>(Values(b[i]), &b[i].d, act, st, i, acc0, accm);
  for (int t = 0; t < NT; ++t) {
    const float m = _mm_cvtss_f32(_mm_movehdup_ps(accm[t]));  // lane 1
    out[t] = hsum_ps(_mm256_add_ps(acc0[t], acc1[t])) + m;
  }
}

#define TILE(T, B, V) tile_dispatch<T<B, V, 1>, T<B, V, 2>, T<B, V, 3>, T<B, V, 4>>
void FillImpl(KernelSet& ks) {
  ks.q4_0 = TILE(signed_tile, BlockQ4_0, q4_0_values);
  ks.q5_0 = TILE(signed_tile, BlockQ5_0, q5_0_values);
  ks.q8_0 = TILE(signed_tile, BlockQ8_0, q8_0_values);
  ks.q4_1 = TILE(min_tile, BlockQ4_1, q4_1_values);
  ks.q5_1 = TILE(min_tile, BlockQ5_1, q5_1_values);
}
#elif HWY_TARGET == HWY_NEON
// ---- 64-bit ARM: per block one integer dot of 32 int8 products in 16-byte halves
// (tensor/simd-inl.h dot16), then the references' float step (sum += sumi * (d_w * d_x),
// + m_w * s_x).
struct Values32 {
  int8x16_t lo, hi;  // elements 0..15, 16..31
};
ALWAYS_INLINE Values32 nibbles(const uint8_t* qs, int8_t offset) {
  const uint8x16_t q = vld1q_u8(qs);
  const int8x16_t o = vdupq_n_s8(offset);
  return {vaddq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F))), o), vaddq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), o)};
}
ALWAYS_INLINE Values32 q4_0_v(const BlockQ4_0& b) { return nibbles(b.qs, -8); }
ALWAYS_INLINE Values32 q4_1_v(const BlockQ4_1& b) { return nibbles(b.qs, 0); }
ALWAYS_INLINE Values32 q8_0_v(const BlockQ8_0& b) { return {vld1q_s8(b.qs), vld1q_s8(b.qs + 16)}; }
// 0x10 in byte j where bit j of the 16 bits at p is set (the 5th bit of Q5 elements)
ALWAYS_INLINE uint8x16_t bit4_of(const uint8_t* p) {
  static constexpr uint8_t kBit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  const uint8x16_t v = vcombine_u8(vdup_n_u8(p[0]), vdup_n_u8(p[1]));
  return vandq_u8(vtstq_u8(v, vld1q_u8(kBit)), vdupq_n_u8(0x10));
}
template <class B>
ALWAYS_INLINE Values32 q5_values(const B& b, int8_t offset) {
  const uint8x16_t q = vld1q_u8(b.qs);
  const uint8x16_t lo = vorrq_u8(vandq_u8(q, vdupq_n_u8(0x0F)), bit4_of(b.qh));
  const uint8x16_t hi = vorrq_u8(vshrq_n_u8(q, 4), bit4_of(b.qh + 2));
  const int8x16_t o = vdupq_n_s8(offset);
  return {vaddq_s8(vreinterpretq_s8_u8(lo), o), vaddq_s8(vreinterpretq_s8_u8(hi), o)};
}
ALWAYS_INLINE Values32 q5_0_v(const BlockQ5_0& b) { return q5_values(b, -16); }
ALWAYS_INLINE Values32 q5_1_v(const BlockQ5_1& b) { return q5_values(b, 0); }

template <class B, class A, Values32 (*V)(const B&), int NT>
void neon_tile(const uint8_t* w, const uint8_t* act, size_t st, int64_t cols, float* out) {
  const B* b = reinterpret_cast<const B*>(w);
  const int64_t nb = cols / QK;
  float sum[NT] = {};
  for (int64_t i = 0; i < nb; ++i) {
    const Values32 q = V(b[i]);
    const float d = fp16_to_f32(b[i].d);
    for (int t = 0; t < NT; ++t) {
      const A* a = act_block<A>(act, st, t, i);
      const int32x4_t p = dot16(dot16(vdupq_n_s32(0), q.lo, vld1q_s8(a->qs)), q.hi, vld1q_s8(a->qs + 16));
      sum[t] += (float)vaddvq_s32(p) * (d * a->d);
      if constexpr (requires(const A& x, const B& y) { x.s; y.m; }) sum[t] += fp16_to_f32(b[i].m) * a->s;
    }
  }
  for (int t = 0; t < NT; ++t) out[t] = sum[t];
}

#define TILE(B, A, V) tile_dispatch<neon_tile<B, A, V, 1>, neon_tile<B, A, V, 2>, neon_tile<B, A, V, 3>, neon_tile<B, A, V, 4>>
void FillImpl(KernelSet& ks) {
  ks.q4_0 = TILE(BlockQ4_0, ActQ8_0, q4_0_v);
  ks.q8_0 = TILE(BlockQ8_0, ActQ8_0, q8_0_v);
  ks.q4_1 = TILE(BlockQ4_1, ActQ8_1, q4_1_v);
  ks.q5_0 = TILE(BlockQ5_0, ActQ8_0, q5_0_v);
  ks.q5_1 = TILE(BlockQ5_1, ActQ8_1, q5_1_v);
}
#else  // no vector path for this target: the references
void FillImpl(KernelSet& ks) {
  ks.q4_0 = dot_q4_0_ref, ks.q5_0 = dot_q5_0_ref, ks.q8_0 = dot_q8_0_ref;
  ks.q4_1 = dot_q4_1_ref, ks.q5_1 = dot_q5_1_ref;
}
#endif
#undef TILE

}  // namespace
void FillQ8(KernelSet* ks) { FillImpl(*ks); }
}  // namespace h1bkv::detail::HWY_NAMESPACE
H1BKV_VNNI_END
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace h1bkv::detail {
namespace {

// ---- scalar references: same integer block dots, float accumulation in block order.
template <class B, class A, int (*BlockDot)(const B&, const int8_t*)>
void ref_rows(const uint8_t* w, const uint8_t* act, size_t st, int nt, int64_t cols, float* out) {
  const B* b = reinterpret_cast<const B*>(w);
  const int64_t nb = cols / QK;
  for (int t = 0; t < nt; ++t) {
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
      const A* a = act_block<A>(act, st, t, i);
      const int sumi = BlockDot(b[i], a->qs);
      sum += (float)sumi * (fp16_to_f32(b[i].d) * a->d);
      if constexpr (requires(const A& x, const B& y) { x.s; y.m; }) sum += fp16_to_f32(b[i].m) * a->s;
    }
    out[t] = sum;
  }
}

int dot_block_q4_0(const BlockQ4_0& b, const int8_t* y) {
  int s = 0;
  for (int j = 0; j < 16; ++j) s += ((b.qs[j] & 0x0F) - 8) * y[j] + ((b.qs[j] >> 4) - 8) * y[j + 16];
  return s;
}
int dot_block_q4_1(const BlockQ4_1& b, const int8_t* y) {
  int s = 0;
  for (int j = 0; j < 16; ++j) s += (b.qs[j] & 0x0F) * y[j] + (b.qs[j] >> 4) * y[j + 16];
  return s;
}
template <class B>
int q5_value(const B& b, int j) {  // 5-bit value of element j (0..31)
  uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  const int lo = j < 16 ? (b.qs[j] & 0x0F) : (b.qs[j - 16] >> 4);
  return lo | (int)(((qh >> j) & 1) << 4);
}
int dot_block_q5_0(const BlockQ5_0& b, const int8_t* y) {
  int s = 0;
  for (int j = 0; j < 32; ++j) s += (q5_value(b, j) - 16) * y[j];
  return s;
}
int dot_block_q5_1(const BlockQ5_1& b, const int8_t* y) {
  int s = 0;
  for (int j = 0; j < 32; ++j) s += q5_value(b, j) * y[j];
  return s;
}
int dot_block_q8_0(const BlockQ8_0& b, const int8_t* y) {
  int s = 0;
  for (int j = 0; j < 32; ++j) s += b.qs[j] * y[j];
  return s;
}

}  // namespace

HWY_EXPORT(FillQ8);

void fill_q8_kernels(Isa isa, KernelSet& ks) {
  if (isa == Isa::scalar) {
    ks.q4_0 = dot_q4_0_ref, ks.q5_0 = dot_q5_0_ref, ks.q8_0 = dot_q8_0_ref;
    ks.q4_1 = dot_q4_1_ref, ks.q5_1 = dot_q5_1_ref;
  } else {
    HWY_DYNAMIC_DISPATCH(FillQ8)(&ks);
  }
}

void dot_q4_0_ref(const uint8_t* w, const uint8_t* a, size_t st, int nt, int64_t c, float* o) {
  ref_rows<BlockQ4_0, ActQ8_0, dot_block_q4_0>(w, a, st, nt, c, o);
}
void dot_q4_1_ref(const uint8_t* w, const uint8_t* a, size_t st, int nt, int64_t c, float* o) {
  ref_rows<BlockQ4_1, ActQ8_1, dot_block_q4_1>(w, a, st, nt, c, o);
}
void dot_q5_0_ref(const uint8_t* w, const uint8_t* a, size_t st, int nt, int64_t c, float* o) {
  ref_rows<BlockQ5_0, ActQ8_0, dot_block_q5_0>(w, a, st, nt, c, o);
}
void dot_q5_1_ref(const uint8_t* w, const uint8_t* a, size_t st, int nt, int64_t c, float* o) {
  ref_rows<BlockQ5_1, ActQ8_1, dot_block_q5_1>(w, a, st, nt, c, o);
}
void dot_q8_0_ref(const uint8_t* w, const uint8_t* a, size_t st, int nt, int64_t c, float* o) {
  ref_rows<BlockQ8_0, ActQ8_0, dot_block_q8_0>(w, a, st, nt, c, o);
}

}  // namespace h1bkv::detail
#endif  // HWY_ONCE
