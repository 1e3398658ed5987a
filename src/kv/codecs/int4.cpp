#include "kv/codecs/int4.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "util/error.h"
#include "util/fp16.h"

namespace h1bkv {

namespace {

float h2f(uint16_t h) { return fp16_to_f32(h); }

uint16_t load_u16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return h;
}

// Largest fp16 <= x (x finite, within fp16 range).
uint16_t fp16_round_down(float x) {
  uint16_t h = f32_to_fp16(x);
  if (h2f(h) <= x) return h;
  if (h == 0) return 0x8001;          // +0 > x: smallest negative subnormal
  return (h & 0x8000) ? h + 1 : h - 1;  // one ulp toward -inf
}

}  // namespace

size_t int4_bytes(int d, int group) {
  const int g = group ? group : d;
  return (size_t)d / 2 + 4 * (size_t)(d / g);
}

void int4_encode(const float* v, int d, int group, uint8_t* dst) {
  const int G = group ? group : d, ng = d / G;
  uint8_t* sm = dst + d / 2;  // [ng] {scale, min}
  for (int g = 0; g < ng; ++g) {
    const float* x = v + g * G;
    float mn = x[0], mx = x[0];
    for (int i = 1; i < G; ++i) mn = std::min(mn, x[i]), mx = std::max(mx, x[i]);
    const uint16_t mh = fp16_round_down(mn);
    const float mf = h2f(mh);
    uint16_t sh = 0;
    if (mx > mf) {
      sh = f32_to_fp16((mx - mf) / 15);
      while (mf + 15 * h2f(sh) < mx) ++sh;  // round the scale up until the range covers mx
    }
    const float sf = h2f(sh), inv = sf > 0 ? 1.0f / sf : 0.0f;
    uint8_t* q = dst + g * G / 2;
    for (int i = 0; i < G / 2; ++i) {
      auto code = [&](float y) { return (uint8_t)std::clamp((int)std::floor((y - mf) * inv + 0.5f), 0, 15); };
      q[i] = (uint8_t)(code(x[i]) | code(x[i + G / 2]) << 4);
    }
    std::memcpy(sm + 4 * g, &sh, 2);
    std::memcpy(sm + 4 * g + 2, &mh, 2);
  }
}

void int4_decode(const uint8_t* src, int d, int group, float* out) {
  const int G = group ? group : d, ng = d / G;
  for (int g = 0; g < ng; ++g) {
    const float s = h2f(load_u16(src + d / 2 + 4 * g)), m = h2f(load_u16(src + d / 2 + 4 * g + 2));
    for (int i = 0; i < G / 2; ++i) {
      const uint8_t b = src[g * G / 2 + i];
      out[g * G + i] = m + s * (b & 15);
      out[g * G + i + G / 2] = m + s * (b >> 4);
    }
  }
}

void int4_accumulate_ref(const float* w, const uint8_t* vals, int64_t n, int d, int group,
                         float* out) {
  const size_t vb = int4_bytes(d, group);
  float tmp[1024];
  for (int64_t t = 0; t < n; ++t) {
    int4_decode(vals + t * vb, d, group, tmp);
    for (int e = 0; e < d; ++e) out[e] += w[t] * tmp[e];
  }
}

#if defined(__AVX2__) && defined(__FMA__)
// One tile of NC chunks (8 code bytes each, all in value group gr) starting at byte j0, over n
// tokens, for NG heads with per-token factors a[g][t] = w[g][t] * scale_t. Accumulators stay in
// registers; each chunk is decoded once for all heads.
template <int NG, int NC>
static void int4_tile(const float* const* a, const uint8_t* vals, int64_t n, size_t vb, int G,
                      int j0, float* const* out) {
  const int half = G / 2, gr = j0 / half, e = gr * G + (j0 - gr * half);
  __m256 lo[NG][NC], hi[NG][NC];
  for (int g = 0; g < NG; ++g)
    for (int c = 0; c < NC; ++c) lo[g][c] = hi[g][c] = _mm256_setzero_ps();
  const __m256i m15 = _mm256_set1_epi32(15);
  for (int64_t t = 0; t < n; ++t) {
    const uint8_t* v = vals + t * vb + j0;
    for (int c = 0; c < NC; ++c) {
      const __m256i x = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(v + 8 * c)));
      const __m256 cl = _mm256_cvtepi32_ps(_mm256_and_si256(x, m15));
      const __m256 ch = _mm256_cvtepi32_ps(_mm256_srli_epi32(x, 4));
      for (int g = 0; g < NG; ++g) {  // broadcast per chunk (a load): keeps registers for chains
        const __m256 av = _mm256_broadcast_ss(a[g] + t);
        lo[g][c] = _mm256_fmadd_ps(av, cl, lo[g][c]);
        hi[g][c] = _mm256_fmadd_ps(av, ch, hi[g][c]);
      }
    }
  }
  for (int g = 0; g < NG; ++g)
    for (int c = 0; c < NC; ++c) {
      float* o = out[g] + e + 8 * c;
      _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), lo[g][c]));
      _mm256_storeu_ps(o + half, _mm256_add_ps(_mm256_loadu_ps(o + half), hi[g][c]));
    }
}

// NG heads, value groups of G elements (G % 16 == 0, d / G <= kMaxGroups), tokens in pieces of
// kPiece: per piece a[g][gr][t] = w[g][t] * scale_t and the weighted minima (8-lane sums), then
// the tiles.
constexpr int kMaxGroups = 8, kPiece = 32;
template <int NG>
static void int4_group_avx(const float* const* w, const uint8_t* vals, int64_t n, int d, int G,
                           float* const* out) {
  constexpr int NC = NG == 1 ? 4 : NG == 2 ? 3 : 2;  // 2 NG NC <= 12 accumulators (FMA chains)
  const int ng = d / G, nb = d / 2, half = G / 2;
  const size_t vb = int4_bytes(d, G);
  alignas(32) float a[NG][kMaxGroups][kPiece];
  alignas(32) float sv[kMaxGroups][kPiece], mv[kMaxGroups][kPiece];
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
      for (int gr = 0; gr < ng; ++gr)
        for (int t = 0; t < m8; t += 8) {
          const __m256 wv = _mm256_load_ps(wl + t);
          _mm256_store_ps(&a[g][gr][t], _mm256_mul_ps(wv, _mm256_load_ps(&sv[gr][t])));
          cm[g][gr] = _mm256_fmadd_ps(wv, _mm256_load_ps(&mv[gr][t]), cm[g][gr]);
        }
    }
    for (int j0 = 0; j0 < nb; j0 += 8 * NC) {
      const int gr = j0 / half;
      const float* ap[NG];
      for (int g = 0; g < NG; ++g) ap[g] = a[g][gr];
      // a tile stays within one value group: half % 8 == 0 and NC * 8 divides half or NC = 1
      const int nc = std::min(NC, (std::min(nb, (gr + 1) * half) - j0) / 8);
      switch (nc) {
        case 1: int4_tile<NG, 1>(ap, vp, m, vb, G, j0, out); break;
        case 2: int4_tile<NG, 2>(ap, vp, m, vb, G, j0, out); break;
        case 3: int4_tile<NG, 3>(ap, vp, m, vb, G, j0, out); break;
        default: int4_tile<NG, NC>(ap, vp, m, vb, G, j0, out); break;
      }
      j0 += 8 * (nc - NC);  // advance by what was done
    }
  }
  for (int g = 0; g < NG; ++g)
    for (int gr = 0; gr < ng; ++gr) {
      alignas(32) float l[8];
      _mm256_store_ps(l, cm[g][gr]);
      const float c = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
      for (int i = 0; i < G; ++i) out[g][gr * G + i] += c;
    }
}
#endif

// sum_t w_t (m_t + s_t q_t) = sum_t (w_t s_t) q_t + sum_t w_t m_t: FMA on the codes, then add
// the per-group weighted minimum once.
void int4_accumulate_group(const float* const* w, int NGt, const uint8_t* vals, int64_t n, int d,
                           int group, float* const* out) {
  const int G = group ? group : d, ng = d / G;
#if defined(__AVX2__) && defined(__FMA__)
  if (G % 16 == 0 && ng <= kMaxGroups) {
    for (int g0 = 0; g0 < NGt; g0 += 3) {
      switch (std::min(3, NGt - g0)) {
        case 1: int4_group_avx<1>(w + g0, vals, n, d, G, out + g0); break;
        case 2: int4_group_avx<2>(w + g0, vals, n, d, G, out + g0); break;
        default: int4_group_avx<3>(w + g0, vals, n, d, G, out + g0); break;
      }
    }
    return;
  }
#endif
  (void)ng;
  for (int g = 0; g < NGt; ++g) int4_accumulate_ref(w[g], vals, n, d, group, out[g]);
}

void int4_accumulate(const float* w, const uint8_t* vals, int64_t n, int d, int group, float* out) {
  int4_accumulate_group(&w, 1, vals, n, d, group, &out);
}

namespace {

class Int4Value : public ValueCodec {
 public:
  Int4Value(int d, int group) : d_(d), group_(group) {
    const int G = group ? group : d;
    check(G > 0 && G % 2 == 0 && d % G == 0 && d <= 1024,
          "int4 values: group " + std::to_string(G) + " must be even and divide head_dim " +
              std::to_string(d));
  }
  std::string name() const override { return "int4"; }
  size_t bytes_per_vector() const override { return int4_bytes(d_, group_); }
  void encode(const float* v, uint8_t* dst) const override { int4_encode(v, d_, group_, dst); }
  void accumulate(const float* w, const uint8_t* vals, int64_t n, float* out) const override {
    int4_accumulate(w, vals, n, d_, group_, out);
  }
  void accumulate_group(const float* const* w, int G, const uint8_t* vals, int64_t n,
                        float* const* out) const override {
    int4_accumulate_group(w, G, vals, n, d_, group_, out);
  }
 private:
  int d_, group_;
};

}  // namespace

std::unique_ptr<ValueCodec> make_int4_value(int d, int group) {
  return std::make_unique<Int4Value>(d, group);
}

}  // namespace h1bkv
