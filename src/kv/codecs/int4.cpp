#include "kv/codecs/int4.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kv/codecs/int4_kernels.h"
#include "tensor/isa.h"
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

void int4_accumulate_q16_ref(const float* w, const uint8_t* vals, int64_t n, int d, int group,
                             float* out) {
  constexpr int kPiece = detail::kInt4Piece;
  const int G = group ? group : d, ng = d / G;
  const size_t vb = int4_bytes(d, group);
  std::vector<double> mins(ng, 0.0);
  for (int64_t p0 = 0; p0 < n; p0 += kPiece) {
    const int m = (int)std::min<int64_t>(kPiece, n - p0);
    for (int gr = 0; gr < ng; ++gr) {
      float a[kPiece], amax = 0;
      for (int t = 0; t < m; ++t) {
        const uint8_t* v = vals + (p0 + t) * vb + d / 2 + 4 * gr;
        a[t] = w[p0 + t] * h2f(load_u16(v));
        amax = std::max(amax, std::fabs(a[t]));
        mins[gr] += (double)w[p0 + t] * h2f(load_u16(v + 2));
      }
      const float unit = amax / 32767.0f, inv = amax > 0 ? 32767.0f / amax : 0.0f;
      int32_t q[kPiece];
      for (int t = 0; t < m; ++t) q[t] = (int32_t)std::clamp(std::nearbyint(a[t] * inv), -32768.0f, 32767.0f);
      for (int i = 0; i < G / 2; ++i) {
        int32_t lo = 0, hi = 0;
        for (int t = 0; t < m; ++t) {
          const uint8_t b = vals[(p0 + t) * vb + gr * G / 2 + i];
          lo += q[t] * (b & 15), hi += q[t] * (b >> 4);
        }
        float* o = out + gr * G + i;
        o[0] = std::fma((float)lo, unit, o[0]);
        o[G / 2] = std::fma((float)hi, unit, o[G / 2]);
      }
    }
  }
  for (int gr = 0; gr < ng; ++gr)
    for (int i = 0; i < G; ++i) out[gr * G + i] += (float)mins[gr];
}

bool int4_integer_path(Isa isa, int d, int group) { return detail::int4_integer_sums(isa, d, group); }

// sum_t w_t (m_t + s_t q_t): the kernels of the active path (int4_kernels.cpp).
void int4_accumulate_group(const float* const* w, int NGt, const uint8_t* vals, int64_t n, int d,
                           int group, float* const* out) {
  detail::int4_group_sums(active_isa(), w, NGt, vals, n, d, group, out);
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
