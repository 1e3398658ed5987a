// Register-blocked kernels (kernels.h Tile) for Q4_1 x Q8_1, Q8_0 x Q8_0, Q4_K and Q6_K x Q8_K on
// the avx512 path:
// 16 weight rows x up to 8 tokens per call with the rows in the 16 lanes of a zmm (as llama.cpp's
// repacked AVX-512 gemm), so a block's dot needs no horizontal sum and its scaling is one
// multiply-add per 16 rows and token; 512-bit vpdpbusd (AVX-512 VNNI) with the token's 4
// activation bytes broadcast. Other targets leave the entries null and matmul runs their row
// kernels. Each kernel reads its rows either as stored in the file (each call transposes its 16
// rows' blocks in registers: 16-byte loads + dword unpacks) or packed at load (tensor/pack.h: the
// same bytes already transposed, plain loads). The transposes cost about what one token's integer
// dots cost, so packing matters most at one token: on Zen 4, where 512-bit shuffles are
// double-pumped, the Q6_K kernel on the file's layout was compute-bound at decode (docs/speed.md).
// A row's lane and operation order are the same whatever the token count and layout, so a dot
// does not depend on the tiling (matmul calls the kernel at multiples of 16 rows).
// GCC 12 reports false (maybe-)uninitialized warnings inside avx512fintrin.h's own intrinsics.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "tensor/tile_q8.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#include "io/ggml_type.h"
#include "tensor/blocks.h"
#include "tensor/kernels.h"
#include "tensor/simd-inl.h"

HWY_BEFORE_NAMESPACE();
H1BKV_VNNI_BEGIN
namespace h1bkv::detail::HWY_NAMESPACE {
namespace {

#if HWY_TARGET == HWY_AVX3_DL && H1BKV_HAVE_VNNI
#define H1BKV_TILE_INLINE inline __attribute__((always_inline))

H1BKV_TILE_INLINE __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// 4 bytes at p in every dword (a load-port broadcast, not a shuffle)
H1BKV_TILE_INLINE __m512i bcast4(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

constexpr int kLaneRows = kLanesRows;
constexpr int kLaneTokens = 8;

H1BKV_TILE_INLINE __m128i load16(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }

// The 16 bytes at p of 16 rows rb bytes apart -> b[j] lane r = dword j of row r.
H1BKV_TILE_INLINE void transpose16(const uint8_t* p, size_t rb, __m512i (&b)[4]) {
  __m512i a[4];  // a[k] 128-bit lane L = the 16 bytes of row k + 4L
  for (int k = 0; k < 4; ++k) {
    __m512i v = _mm512_castsi128_si512(load16(p + k * rb));
    v = _mm512_inserti32x4(v, load16(p + (k + 4) * rb), 1);
    v = _mm512_inserti32x4(v, load16(p + (k + 8) * rb), 2);
    a[k] = _mm512_inserti32x4(v, load16(p + (k + 12) * rb), 3);
  }
  const __m512i t0 = _mm512_unpacklo_epi32(a[0], a[1]), t1 = _mm512_unpackhi_epi32(a[0], a[1]);
  const __m512i t2 = _mm512_unpacklo_epi32(a[2], a[3]), t3 = _mm512_unpackhi_epi32(a[2], a[3]);
  b[0] = _mm512_unpacklo_epi64(t0, t2), b[1] = _mm512_unpackhi_epi64(t0, t2);
  b[2] = _mm512_unpacklo_epi64(t1, t3), b[3] = _mm512_unpackhi_epi64(t1, t3);
}

// The 16 rows two groups ahead (one region of 16 * rb bytes) are prefetched into L2 while this
// group runs, a 1/nb share per block: the hardware prefetchers of some CPUs (AMD Zen 4) do not
// follow 16 row streams at once, and at one token a matrix larger than the caches ran at 0.3-0.8x
// the row kernels' speed there (bench_matmul Q4_K 151936 x 1536, 1 thread: 17.3 -> 7.08 ms, rows
// 10.6; docs/speed.md, Zen 4).
// One group ahead into L1 fixed Q4_1 but not Q4_K. Prefetches past the end do not fault.
H1BKV_TILE_INLINE void prefetch_next_rows(const uint8_t* w, size_t rb, int64_t i, int64_t nb) {
  const size_t span = kLaneRows * rb, step = (span / (size_t)nb + 63) & ~size_t{63};  // loop-invariant
  const size_t begin = (size_t)i * step, end = std::min(begin + step, span);
  for (size_t o = begin; o < end; o += 64)
    _mm_prefetch(reinterpret_cast<const char*>(w + 2 * span + o), _MM_HINT_T1);
}

// A packed matrix is one forward stream, yet Zen 4's hardware prefetchers alone kept too few of
// its lines in flight (bench_matmul Q6_K 151936 x 1536, 2 threads: 10-13 ms -> mostly 7-8 ms;
// Qwen decode 1.25x; docs/speed.md): each block prefetches the bytes this far ahead into L2 when the
// caller asks (row_bytes != 0: the first token tile of a group; the later ones find it in cache,
// and prefetching for them cost Qwen's pp512 13 %).
constexpr size_t kPackedAhead = 8192;

// Where a lanes kernel reads its 16 rows' blocks (layout L): the file's rows, rb bytes apart
// (transposed in registers, prefetched ahead), or a packed group (tensor/pack.h).
template <LanesLayout L, bool Packed>
struct Rows {
  const uint8_t* w;
  size_t rb;
  int64_t nb;
  __m512i voff;  // file rows: lane r = r * rb

  H1BKV_TILE_INLINE Rows(const uint8_t* w_, size_t rb_, int64_t nb_) : w(w_), rb(rb_), nb(nb_) {
    if constexpr (Packed) return;  // rb: prefetch ahead or not
    alignas(64) int32_t off[kLaneRows];
    for (int r = 0; r < kLaneRows; ++r) off[r] = (int32_t)(r * rb_);
    voff = _mm512_load_si512(off);
  }
  // block i of the 16 rows; prefetches ahead
  H1BKV_TILE_INLINE const uint8_t* block(int64_t i) const {
    if constexpr (Packed) {
      constexpr size_t gbb = lanes_group_block_bytes(L);
      const uint8_t* p = w + (size_t)i * gbb;
      if (rb != 0)
        for (size_t o = 0; o < gbb; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + kPackedAhead + o), _MM_HINT_T1);
      return p;
    }
    prefetch_next_rows(w, rb, i, nb);
    return w + (size_t)i * L.block_bytes;
  }
  // v[j] lane r = dword j of the 16 bytes at byte `off` (= L.first + 16k) of row r's block
  H1BKV_TILE_INLINE void chunk(const uint8_t* b, int off, __m512i (&v)[4]) const {
    if constexpr (Packed) {
      const uint8_t* p = b + 256 * L.slot[(off - L.first) / 16];
      for (int j = 0; j < 4; ++j) v[j] = _mm512_loadu_si512(p + 64 * j);
    } else {
      transpose16(b + off, rb, v);
    }
  }
  // the 16 rows' fp16 field (L.field_bytes == 2) as floats
  H1BKV_TILE_INLINE __m512 half_field(const uint8_t* b) const {
    static_assert(L.field_bytes == 2);
    if constexpr (Packed) return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 256 * L.chunks)));
    // 4-byte gathers: from the field when a dword fits in the block, else ending at its end
    constexpr bool fits = L.field + 4 <= L.block_bytes;
    const __m512i g = _mm512_i32gather_epi32(voff, b + (fits ? L.field : L.field - 2), 1);
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(fits ? g : _mm512_srli_epi32(g, 16)));
  }
  // the 16 rows' 4-byte field (L.field_bytes == 4) as dwords
  H1BKV_TILE_INLINE __m512i dword_field(const uint8_t* b) const {
    static_assert(L.field_bytes == 4);
    if constexpr (Packed) return _mm512_loadu_si512(b + 256 * L.chunks);
    return _mm512_i32gather_epi32(voff, b + L.field, 1);
  }
};

// Runs a full-16-row kernel on nr rows: fewer than 16 are copied into zero-padded rows first
// (a zero block adds 0 to the lanes that are not stored).
template <class F>
void lanes_call(F f, const uint8_t* w, size_t rb, int nr, const uint8_t* act, size_t st, int nt, int64_t cols,
                float* y, size_t ys) {
  if (nr == kLaneRows) return f(w, rb, act, st, cols, y, ys);
  thread_local std::vector<uint8_t> rows;
  float out[kLaneTokens * kLaneRows];
  rows.assign(kLaneRows * rb, 0);
  std::memcpy(rows.data(), w, (size_t)nr * rb);
  f(rows.data(), rb, act, st, cols, out, kLaneRows);
  for (int t = 0; t < nt; ++t) std::memcpy(y + t * ys, out + t * kLaneRows, (size_t)nr * sizeof(float));
}

// ---- Q4_1 x Q8_1: per block the 16 rows' qs are transposed into 4 zmm of dwords (zmm j lane r =
// qs[4j..4j+3] of row r: low nibbles = elements 4j.., high nibbles = elements 16+4j..).
template <int NT, bool P>
void q4_1_lanes(const uint8_t* w, size_t rb, const uint8_t* act, size_t st, int64_t cols, float* y,
                size_t ys) {
  const int64_t nb = cols / QK;
  const Rows<kLanesQ4_1, P> src(w, rb, nb);
  const __m512i lo4 = _mm512_set1_epi8(0x0F);
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* blk = src.block(i);
    __m512i b[4];  // b[j] lane r = qs[4j..4j+3] of row r
    src.chunk(blk, offsetof(BlockQ4_1, qs), b);
    __m512i lo[4], hi[4];
    for (int j = 0; j < 4; ++j) {
      lo[j] = _mm512_and_si512(b[j], lo4);
      hi[j] = _mm512_and_si512(_mm512_srli_epi16(b[j], 4), lo4);
    }
    // [d, m] fp16 pair of each row's block i
    const __m512i dm = src.dword_field(blk);
    const __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dm));
    const __m512 mw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dm, 16)));
    for (int t = 0; t < NT; ++t) {
      const ActQ8_1* x = reinterpret_cast<const ActQ8_1*>(act + t * st) + i;
      __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo[0], bcast4(x->qs));
      for (int j = 1; j < 4; ++j) p = _mm512_dpbusd_epi32(p, lo[j], bcast4(x->qs + 4 * j));
      for (int j = 0; j < 4; ++j) p = _mm512_dpbusd_epi32(p, hi[j], bcast4(x->qs + 16 + 4 * j));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw, _mm512_set1_ps(x->d)), acc[t]);
      acc[t] = _mm512_fmadd_ps(mw, _mm512_set1_ps(x->s), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) _mm512_storeu_ps(y + t * ys, acc[t]);
}

// ---- Q8_0 x Q8_0 with rows in lanes. vpdpbusd's unsigned operand is the broadcast activation
// offset to q_x + 128 (xor 0x80); 128 sum(q_w) per row and block, computed once per block for
// all tokens, starts each token's integer sum negated. Exact in int32.
template <int NT, bool P>
void q8_0_lanes(const uint8_t* w, size_t rb, const uint8_t* act, size_t st, int64_t cols, float* y,
                size_t ys) {
  const int64_t nb = cols / QK;
  const Rows<kLanesQ8_0, P> src(w, rb, nb);
  const __m512i k80 = _mm512_set1_epi8((char)0x80);
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* blk = src.block(i);
    __m512i q[2][4];  // q[h][j] lane r = qs[16h + 4j ..+3] of row r
    src.chunk(blk, 2, q[0]);
    src.chunk(blk, 18, q[1]);
    __m512i corr = _mm512_setzero_si512();
    for (int j = 0; j < 8; ++j) corr = _mm512_dpbusd_epi32(corr, k80, q[j / 4][j % 4]);
    corr = _mm512_sub_epi32(_mm512_setzero_si512(), corr);
    const __m512 dw = src.half_field(blk);
    for (int t = 0; t < NT; ++t) {
      const ActQ8_0* x = reinterpret_cast<const ActQ8_0*>(act + t * st) + i;
      alignas(32) int32_t yu[8];  // q_x + 128 as bytes
      _mm256_store_si256(reinterpret_cast<__m256i*>(yu),
                         _mm256_xor_si256(load32(x->qs), _mm256_set1_epi8((char)0x80)));
      __m512i p = corr;
      for (int j = 0; j < 8; ++j) p = _mm512_dpbusd_epi32(p, bcast4(yu + j), q[j / 4][j % 4]);
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw, _mm512_set1_ps(x->d)), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) _mm512_storeu_ps(y + t * ys, acc[t]);
}

// ---- Q4_K x Q8_K: per 256-value super-block, one transpose16 of the block's first 16 bytes gives
// [d, dmin] (dword 0) and the 12 scale bytes (dwords 1..3) of the 16 rows in lanes; each 32-byte
// chunk c of qs (values 64c.. in the low nibbles = sub-block 2c, 64c+32.. in the high = 2c+1) is
// two more transposes. Integer sub-block dots are scaled by the 6-bit scales in int32 (as the
// row kernel does), the mins by vpdpwssd against the token's bsums pairs.
template <int NT, bool P>
void q4_k_lanes(const uint8_t* w, size_t rb, const uint8_t* act, size_t st, int64_t cols, float* y, size_t ys) {
  const int64_t nb = cols / QK_K;
  const Rows<kLanesQ4_K, P> src(w, rb, nb);
  const __m512i lo4 = _mm512_set1_epi8(0x0F);
  const __m512i k63 = _mm512_set1_epi32(63), k15 = _mm512_set1_epi32(15), k3 = _mm512_set1_epi32(3);
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* blk = src.block(i);
    __m512i hdr[4];  // [d, dmin], scales[0..3], scales[4..7], scales[8..11] of each row
    src.chunk(blk, 0, hdr);
    const __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(hdr[0]));
    const __m512 dminw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(hdr[0], 16)));
    __m512i sc[8], mn2[8];  // scale j; min j in both 16-bit halves (vpdpwssd with a bsums pair)
    for (int j = 0; j < 4; ++j) {  // unpack_q4k_scales, one byte lane of each dword
      const __m512i s0 = _mm512_srli_epi32(hdr[1], 8 * j), s1 = _mm512_srli_epi32(hdr[2], 8 * j);
      const __m512i s2 = _mm512_srli_epi32(hdr[3], 8 * j);
      sc[j] = _mm512_and_si512(s0, k63);
      const __m512i m = _mm512_and_si512(s1, k63);
      sc[j + 4] = _mm512_or_si512(_mm512_and_si512(s2, k15),
                                  _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(s0, 6), k3), 4));
      const __m512i m4 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(s2, 4), k15),
                                         _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(s1, 6), k3), 4));
      mn2[j] = _mm512_or_si512(m, _mm512_slli_epi32(m, 16));
      mn2[j + 4] = _mm512_or_si512(m4, _mm512_slli_epi32(m4, 16));
    }
    __m512i isum[NT];
    for (int t = 0; t < NT; ++t) isum[t] = _mm512_setzero_si512();
    for (int c = 0; c < 4; ++c) {
      __m512i q[2][4];  // q[h][j] lane r = qs[32c + 16h + 4j ..+3] of row r
      src.chunk(blk, 16 + 32 * c, q[0]);
      src.chunk(blk, 32 + 32 * c, q[1]);
      __m512i lo[2][4], hi[2][4];
      for (int h = 0; h < 2; ++h)
        for (int j = 0; j < 4; ++j) {
          lo[h][j] = _mm512_and_si512(q[h][j], lo4);
          hi[h][j] = _mm512_and_si512(_mm512_srli_epi16(q[h][j], 4), lo4);
        }
      for (int t = 0; t < NT; ++t) {
        const int8_t* x = reinterpret_cast<const ActQ8_K*>(act + t * st)[i].qs + 64 * c;
        __m512i pl = _mm512_setzero_si512(), ph = _mm512_setzero_si512();
        for (int h = 0; h < 2; ++h)
          for (int j = 0; j < 4; ++j) {
            pl = _mm512_dpbusd_epi32(pl, lo[h][j], bcast4(x + 16 * h + 4 * j));
            ph = _mm512_dpbusd_epi32(ph, hi[h][j], bcast4(x + 32 + 16 * h + 4 * j));
          }
        isum[t] = _mm512_add_epi32(isum[t], _mm512_add_epi32(_mm512_mullo_epi32(pl, sc[2 * c]),
                                                             _mm512_mullo_epi32(ph, sc[2 * c + 1])));
      }
    }
    for (int t = 0; t < NT; ++t) {
      const ActQ8_K* x = reinterpret_cast<const ActQ8_K*>(act + t * st) + i;
      __m512i imin = _mm512_setzero_si512();
      for (int j = 0; j < 8; ++j) imin = _mm512_dpwssd_epi32(imin, mn2[j], bcast4(x->bsums + 2 * j));
      const __m512 dx = _mm512_set1_ps(x->d);
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, dx), _mm512_cvtepi32_ps(isum[t]), acc[t]);
      acc[t] = _mm512_fnmadd_ps(_mm512_mul_ps(dminw, dx), _mm512_cvtepi32_ps(imin), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) _mm512_storeu_ps(y + t * ys, acc[t]);
}

// ---- Q6_K x Q8_K: value = (4 bits of ql | 2 bits of qh << 4) - 32 in 16-value sub-blocks with
// int8 scales; per half h (128 values) and 16-value half e of each 32-byte run, the ql / qh bytes
// of 16 rows are transposed and combined into 6-bit values (ggml's order: q[k], k = 0..3, values
// 128h + 32k + l). The -32 is 32 * sum(scale_j * bsum_j), by vpdpwssd against bsums pairs.
template <int NT, bool P>
void q6_k_lanes(const uint8_t* w, size_t rb, const uint8_t* act, size_t st, int64_t cols, float* y, size_t ys) {
  const int64_t nb = cols / QK_K;
  const Rows<kLanesQ6_K, P> src(w, rb, nb);
  const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30), k16 = _mm512_set1_epi32(0xFFFF);
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* blk = src.block(i);
    __m512i sd[4];  // scales[4a..4a+3] of each row
    src.chunk(blk, offsetof(BlockQ6_K, scales), sd);
    // scale j of each row, sign-extended (made where used: 16 of them live would spill)
    const auto sc = [&](int j) { return _mm512_srai_epi32(_mm512_slli_epi32(sd[j / 4], 24 - 8 * (j % 4)), 24); };
    __m512i isum[NT];
    for (int t = 0; t < NT; ++t) isum[t] = _mm512_setzero_si512();
    for (int h = 0; h < 2; ++h)
      for (int e = 0; e < 2; ++e) {
        __m512i l0[4], l1[4], qh[4];  // dword j: bytes 16e + 4j.. of ql[64h..], ql[64h + 32..], qh[32h..]
        src.chunk(blk, 64 * h + 16 * e, l0);
        src.chunk(blk, 64 * h + 32 + 16 * e, l1);
        src.chunk(blk, offsetof(BlockQ6_K, qh) + 32 * h + 16 * e, qh);
        for (int k = 0; k < 4; ++k) {
          __m512i q[4];  // q[j]: values 128h + 32k + 16e + 4j ..+3, 0..63
          for (int j = 0; j < 4; ++j) {
            const __m512i lo = k % 2 ? l1[j] : l0[j];
            const __m512i l4 = k < 2 ? _mm512_and_si512(lo, m4) : _mm512_and_si512(_mm512_srli_epi16(lo, 4), m4);
            const __m512i h2 = k == 0   ? _mm512_slli_epi16(qh[j], 4)
                               : k == 1 ? _mm512_slli_epi16(qh[j], 2)
                               : k == 2 ? qh[j]
                                        : _mm512_srli_epi16(qh[j], 2);
            q[j] = _mm512_or_si512(l4, _mm512_and_si512(h2, m30));
          }
          const __m512i s = sc(8 * h + 2 * k + e);
          for (int t = 0; t < NT; ++t) {
            const int8_t* x = reinterpret_cast<const ActQ8_K*>(act + t * st)[i].qs + 128 * h + 16 * e + 32 * k;
            __m512i p = _mm512_setzero_si512();
            for (int j = 0; j < 4; ++j) p = _mm512_dpbusd_epi32(p, q[j], bcast4(x + 4 * j));
            isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(p, s));
          }
        }
      }
    const __m512 dw = src.half_field(blk);
    __m512i sc2[8];  // scales 2m, 2m+1 of each row as a 16-bit pair
    for (int m = 0; m < 8; ++m) sc2[m] = _mm512_or_si512(_mm512_and_si512(sc(2 * m), k16), _mm512_slli_epi32(sc(2 * m + 1), 16));
    for (int t = 0; t < NT; ++t) {
      const ActQ8_K* x = reinterpret_cast<const ActQ8_K*>(act + t * st) + i;
      __m512i bias = _mm512_setzero_si512();
      for (int m = 0; m < 8; ++m) bias = _mm512_dpwssd_epi32(bias, sc2[m], bcast4(x->bsums + 2 * m));
      const __m512i v = _mm512_sub_epi32(isum[t], _mm512_slli_epi32(bias, 5));
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(x->d)), _mm512_cvtepi32_ps(v), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) _mm512_storeu_ps(y + t * ys, acc[t]);
}

// kernels.h Tile entry: K[nt - 1] for nt in 1..kLaneTokens tokens
using LaneKernel = void (*)(const uint8_t*, size_t, const uint8_t*, size_t, int64_t, float*, size_t);
template <LaneKernel... K>
void lanes_dispatch(const uint8_t* w, size_t rb, int nr, const uint8_t* act, size_t st, int nt, int64_t cols,
                    float* y, size_t ys) {
  static_assert(sizeof...(K) == kLaneTokens);
  static constexpr LaneKernel f[] = {K...};
  lanes_call(f[nt - 1], w, rb, nr, act, st, nt, cols, y, ys);
}
// the same on a packed group (always 16 rows; rb != 0: prefetch ahead)
template <LaneKernel... K>
void lanes_packed_dispatch(const uint8_t* w, size_t rb, int, const uint8_t* act, size_t st, int nt, int64_t cols,
                           float* y, size_t ys) {
  static constexpr LaneKernel f[] = {K...};
  f[nt - 1](w, rb, act, st, cols, y, ys);
}
#define H1BKV_LANES(K)                                                                                         \
  {lanes_dispatch<K<1, false>, K<2, false>, K<3, false>, K<4, false>, K<5, false>, K<6, false>, K<7, false>,   \
                  K<8, false>>,                                                                                \
   lanes_packed_dispatch<K<1, true>, K<2, true>, K<3, true>, K<4, true>, K<5, true>, K<6, true>, K<7, true>,   \
                         K<8, true>>,                                                                          \
   kLaneRows, kLaneTokens}

void FillImpl(TileSet& ts) {
  ts.q4_1 = H1BKV_LANES(q4_1_lanes);
  ts.q8_0 = H1BKV_LANES(q8_0_lanes);
  ts.q4_k = H1BKV_LANES(q4_k_lanes);
  ts.q6_k = H1BKV_LANES(q6_k_lanes);
}
#undef H1BKV_LANES
#undef H1BKV_TILE_INLINE
#else  // no tile kernels on this target: matmul uses the row kernels
void FillImpl(TileSet& ts) { ts = TileSet{}; }
#endif

}  // namespace
void FillTiles(TileSet* ts) { FillImpl(*ts); }
}  // namespace h1bkv::detail::HWY_NAMESPACE
H1BKV_VNNI_END
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace h1bkv::detail {
HWY_EXPORT(FillTiles);

Tile tile_for(uint32_t type, Isa isa) {
  TileSet ts;
  if (isa != Isa::scalar) HWY_DYNAMIC_DISPATCH(FillTiles)(&ts);
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::Q4_1: return ts.q4_1;
    case GgmlType::Q8_0: return ts.q8_0;
    case GgmlType::Q4_K: return ts.q4_k;
    case GgmlType::Q6_K: return ts.q6_k;
    default: return {};
  }
}
}  // namespace h1bkv::detail
#endif  // HWY_ONCE
