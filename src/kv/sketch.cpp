#include "kv/sketch.h"

#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "kv/float_kernels.h"
#include "util/error.h"
#include "util/fp16.h"

namespace h1bkv {

namespace {

uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

constexpr double kPi = 3.14159265358979323846;

}  // namespace

void gaussian_matrix(uint64_t seed, int layer, int kv_head, int rows, int cols, float* out) {
  // stream state: seed mixed with (layer, kv_head) through one SplitMix64 step each
  uint64_t s = seed;
  s ^= splitmix64(s) + (uint64_t)(layer + 1);
  s ^= splitmix64(s) + (uint64_t)(kv_head + 2);
  const size_t n = (size_t)rows * cols;
  for (size_t i = 0; i < n; i += 2) {
    const double u1 = (double)((splitmix64(s) >> 11) + 1) * 0x1.0p-53;  // (0, 1]
    const double u2 = (double)(splitmix64(s) >> 11) * 0x1.0p-53;        // [0, 1)
    const double r = std::sqrt(-2.0 * std::log(u1)), a = 2.0 * kPi * u2;
    out[i] = (float)(r * std::cos(a));
    if (i + 1 < n) out[i + 1] = (float)(r * std::sin(a));
  }
}

SketchEst sketch_est_from_name(const std::string& name) {
  if (name == "hamming") return SketchEst::hamming;
  if (name == "angle") return SketchEst::angle;
  if (name == "qjl") return SketchEst::qjl;
  throw Error("unknown sketch estimator '" + name + "' (valid: hamming, angle, qjl)");
}

const char* sketch_est_name(SketchEst e) {
  return e == SketchEst::hamming ? "hamming" : e == SketchEst::angle ? "angle" : "qjl";
}

size_t sketch_bytes(const SketchOptions& o) {
  return (size_t)o.bits / 8 + (o.est == SketchEst::hamming ? 0 : 2);
}

void lut_scores32_ref(const uint8_t* tab, const uint8_t* codes, int nbytes, int32_t* out) {
  for (int t = 0; t < 32; ++t) {
    int32_t s = 0;
    for (int p = 0; p < nbytes; ++p) {
      const uint8_t c = codes[p * 32 + t];
      s += tab[p * 32 + (c & 15)] + tab[p * 32 + 16 + (c >> 4)];
    }
    out[t] = s;
  }
}

void lut_scores32(const uint8_t* tab, const uint8_t* codes, int nbytes, int chunk, int32_t* out) {
#if defined(__AVX2__)
  const __m256i m4 = _mm256_set1_epi8(15), zero = _mm256_setzero_si256();
  __m256i acc_lo = zero, acc_hi = zero;  // u16: tokens {0-7, 16-23} / {8-15, 24-31}
  for (int p0 = 0; p0 < nbytes; p0 += chunk) {
    const int p1 = std::min(nbytes, p0 + chunk);
    __m256i s8 = zero;
    for (int p = p0; p < p1; ++p) {
      const __m256i tl = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tab + p * 32)));
      const __m256i th = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tab + p * 32 + 16)));
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + p * 32));
      const __m256i lo = _mm256_shuffle_epi8(tl, _mm256_and_si256(x, m4));
      const __m256i hi = _mm256_shuffle_epi8(th, _mm256_and_si256(_mm256_srli_epi16(x, 4), m4));
      s8 = _mm256_add_epi8(s8, _mm256_add_epi8(lo, hi));
    }
    acc_lo = _mm256_add_epi16(acc_lo, _mm256_unpacklo_epi8(s8, zero));
    acc_hi = _mm256_add_epi16(acc_hi, _mm256_unpackhi_epi8(s8, zero));
  }
  alignas(32) uint16_t a[16], b[16];
  _mm256_store_si256(reinterpret_cast<__m256i*>(a), acc_lo);
  _mm256_store_si256(reinterpret_cast<__m256i*>(b), acc_hi);
  for (int i = 0; i < 8; ++i) {
    out[i] = a[i], out[8 + i] = b[i], out[16 + i] = a[8 + i], out[24 + i] = b[8 + i];
  }
#else
  (void)chunk;
  lut_scores32_ref(tab, codes, nbytes, out);
#endif
}

SketchKeyCodec::SketchKeyCodec(const CacheGeometry& g, int layer, SketchOptions o)
    : g_(g), d_(g.head_dim), layer_(layer), group_(g.n_head / g.n_kv_head), o_(o),
      mult_(g.n_head, 1.0f) {
  check(o.bits == 64 || o.bits == 128 || o.bits == 256 || o.bits == 512,
        "sketch bits must be one of 64, 128, 256, 512 (got " + std::to_string(o.bits) + ")");
  check(o.T > 0 && std::isfinite(o.T), "sketch temperature T must be > 0");
  const int nmat = o.per_head ? g.n_kv_head : 1, b = o.bits;
  R_.resize((size_t)nmat * b * d_);
  std::vector<float> r((size_t)b * d_);
  for (int m = 0; m < nmat; ++m) {  // generated [b][d], stored transposed [d][b]
    gaussian_matrix(o.seed, layer, o.per_head ? m : -1, b, d_, r.data());
    for (int i = 0; i < b; ++i)
      for (int j = 0; j < d_; ++j) R_[(size_t)m * b * d_ + (size_t)j * b + i] = r[(size_t)i * d_ + j];
  }
  cos_tab_.resize(o.bits + 1);
  for (int h = 0; h <= o.bits; ++h) cos_tab_[h] = (float)std::cos(kPi * h / o.bits);
}

void SketchKeyCodec::set_multipliers(const std::vector<float>& m) {
  check((int)m.size() == g_.n_head, "sketch calibration: layer " + std::to_string(layer_) + " needs " +
                                        std::to_string(g_.n_head) + " multipliers, got " +
                                        std::to_string(m.size()));
  mult_ = m;
}

void SketchKeyCodec::project(const float* x, int kv_head, float* y) const {
  // y = R x as sum_j x_j R[:, j] over the transposed matrix, 64 rows at a time in registers
  const float* Rt = matrix(kv_head);
  const int b = o_.bits;
  for (int i0 = 0; i0 < b; i0 += 64) {
#if defined(__AVX2__) && defined(__FMA__)
    __m256 acc[8];
    for (int c = 0; c < 8; ++c) acc[c] = _mm256_setzero_ps();
    for (int j = 0; j < d_; ++j) {
      const __m256 xj = _mm256_set1_ps(x[j]);
      const float* r = Rt + (size_t)j * b + i0;
      for (int c = 0; c < 8; ++c) acc[c] = _mm256_fmadd_ps(xj, _mm256_loadu_ps(r + 8 * c), acc[c]);
    }
    for (int c = 0; c < 8; ++c) _mm256_storeu_ps(y + i0 + 8 * c, acc[c]);
#else
    for (int i = i0; i < i0 + 64; ++i) y[i] = 0;
    for (int j = 0; j < d_; ++j)
      for (int i = i0; i < i0 + 64; ++i) y[i] += x[j] * Rt[(size_t)j * b + i];
#endif
  }
}

void SketchKeyCodec::sign_bits(const float* x, int kv_head, uint64_t* words) const {
  float y[512];
  project(x, kv_head, y);
  for (int w = 0; w < o_.bits / 64; ++w) {
    uint64_t bits = 0;
    for (int j = 0; j < 64; ++j) bits |= (uint64_t)(y[w * 64 + j] >= 0) << j;
    words[w] = bits;
  }
}

void SketchKeyCodec::unpack_slot(const uint8_t* block, int bits, int slot, uint64_t* words) {
  const int nb = bits / 8;
  const uint8_t* g = block + (size_t)(slot / 32) * nb * 32;
  for (int w = 0; w < bits / 64; ++w) {
    uint64_t x = 0;
    for (int j = 0; j < 8; ++j) x |= (uint64_t)g[(w * 8 + j) * 32 + slot % 32] << (8 * j);
    words[w] = x;
  }
}

void SketchKeyCodec::encode(const float* k, int kv_head, uint8_t* dst) const {
  uint64_t w[8];
  sign_bits(k, kv_head, w);
  std::memcpy(dst, w, o_.bits / 8);  // little-endian: byte p = bits 8p..8p+7
  if (o_.est != SketchEst::hamming) {
    const uint16_t nh = f32_to_fp16(std::sqrt(dot_f32(k, k, d_)));
    std::memcpy(dst + o_.bits / 8, &nh, 2);
  }
}

void SketchKeyCodec::encode_slot(const float* k, int kv_head, uint8_t* block, int slot) const {
  uint8_t tmp[66];
  encode(k, kv_head, tmp);
  const int nb = o_.bits / 8;
  uint8_t* g = block + (size_t)(slot / 32) * nb * 32;
  for (int p = 0; p < nb; ++p) g[p * 32 + slot % 32] = tmp[p];
  if (o_.est != SketchEst::hamming) std::memcpy(block + kBlockTokens * nb + 2 * slot, tmp + nb, 2);
}

// prep: [b/8][2][16] u8 nibble tables (b floats of room), then prep[b] = logit factor and,
// for hamming, prep[b+1] = slope: logit = prep[b] + prep[b+1] * h.
void SketchKeyCodec::prepare_query(const float* q, int head, float scale, float* prep) const {
  const int b = o_.bits, nb = b / 8;
  uint8_t* tab = reinterpret_cast<uint8_t*>(prep);
  const float m = mult_[head];
  float y[512];
  project(q, head / group_, y);
  prep[b + 1] = 0;
  if (o_.est == SketchEst::qjl) {
    float maxabs = 0;  // largest |table entry| = largest sum of |y| over a nibble's 4 rows
    for (int g = 0; g < b / 4; ++g)
      maxabs = std::max(maxabs, std::fabs(y[4 * g]) + std::fabs(y[4 * g + 1]) +
                                    std::fabs(y[4 * g + 2]) + std::fabs(y[4 * g + 3]));
    const float step = maxabs > 0 ? maxabs / 63 : 1.0f, inv = 1.0f / step;
    for (int g = 0; g < b / 4; ++g)
      for (int c = 0; c < 16; ++c) {
        float e = 0;
        for (int j = 0; j < 4; ++j) e += (c >> j & 1) ? y[4 * g + j] : -y[4 * g + j];
        tab[g * 16 + c] = (uint8_t)(std::clamp((int)std::floor(e * inv + 0.5f), -63, 63) + 64);
      }
    prep[b] = m * scale * (float)std::sqrt(kPi / 2) / b * step;
    return;
  }
  for (int g = 0; g < b / 4; ++g) {
    int qn = 0;
    for (int j = 0; j < 4; ++j) qn |= (y[4 * g + j] >= 0) << j;
    for (int c = 0; c < 16; ++c) tab[g * 16 + c] = (uint8_t)std::popcount((unsigned)(c ^ qn));
  }
  (void)nb;
  if (o_.est == SketchEst::hamming) {
    prep[b] = m / o_.T;
    prep[b + 1] = -2.0f * m / o_.T / b;
  } else {
    prep[b] = m * scale * std::sqrt(dot_f32(q, q, d_));
  }
}

void SketchKeyCodec::score_block(const float* prep, const uint8_t* block, int t0, int n,
                                 float* out) const {
  const int b = o_.bits, nb = b / 8;
  const uint8_t* tab = reinterpret_cast<const uint8_t*>(prep);
  const uint16_t* norms = reinterpret_cast<const uint16_t*>(block + kBlockTokens * nb);
  const int chunk = o_.est == SketchEst::qjl ? 1 : 31;  // per byte: qjl <= 254, popcounts <= 8
  int32_t s[32];
  for (int g0 = t0 / 32 * 32; g0 < t0 + n; g0 += 32) {
    lut_scores32(tab, block + (size_t)g0 * nb, nb, chunk, s);
    const int lo = std::max(t0, g0), hi = std::min(t0 + n, g0 + 32);
    float* o = out - t0;
    const int32_t* h = s - g0;
    const float f = prep[b], slope = prep[b + 1];
    switch (o_.est) {
      case SketchEst::hamming:
        for (int t = lo; t < hi; ++t) o[t] = f + slope * (float)h[t];
        break;
      case SketchEst::angle:
        for (int t = lo; t < hi; ++t) o[t] = f * fp16_to_f32(norms[t]) * cos_tab_[h[t]];
        break;
      case SketchEst::qjl:
        for (int t = lo; t < hi; ++t) o[t] = f * fp16_to_f32(norms[t]) * (float)(h[t] - 16 * b);
        break;
    }
  }
}

// Token-major keys ([b/8 bytes][fp16 norm]): scalar table sums.
void SketchKeyCodec::score(const float* prep, const uint8_t* keys, int64_t n, float* out) const {
  const int b = o_.bits, nb = b / 8;
  const uint8_t* tab = reinterpret_cast<const uint8_t*>(prep);
  const size_t kb = bytes_per_vector();
  for (int64_t t = 0; t < n; ++t) {
    const uint8_t* k = keys + t * kb;
    int32_t h = 0;
    for (int p = 0; p < nb; ++p) h += tab[p * 32 + (k[p] & 15)] + tab[p * 32 + 16 + (k[p] >> 4)];
    uint16_t nh = 0;
    if (o_.est != SketchEst::hamming) std::memcpy(&nh, k + nb, 2);
    switch (o_.est) {
      case SketchEst::hamming: out[t] = prep[b] + prep[b + 1] * (float)h; break;
      case SketchEst::angle: out[t] = prep[b] * fp16_to_f32(nh) * cos_tab_[h]; break;
      case SketchEst::qjl: out[t] = prep[b] * fp16_to_f32(nh) * (float)(h - 16 * b); break;
    }
  }
}

float SketchKeyCodec::score_ref(const float* q, int head, float scale, const uint64_t* kw,
                                float norm) const {
  const int b = o_.bits;
  const float m = mult_[head];
  float y[512];
  project(q, head / group_, y);
  if (o_.est == SketchEst::qjl) {
    double dot = 0;
    for (int i = 0; i < b; ++i) dot += (kw[i / 64] >> (i % 64) & 1) ? y[i] : -y[i];
    return (float)(m * scale * norm * std::sqrt(kPi / 2) / b * dot);
  }
  uint64_t qw[8];
  sign_bits(q, head / group_, qw);
  int h = 0;
  for (int w = 0; w < b / 64; ++w) h += std::popcount(qw[w] ^ kw[w]);
  if (o_.est == SketchEst::hamming) return m * (1.0f - 2.0f * h / b) / o_.T;
  return (float)(m * scale * std::sqrt((double)dot_f32(q, q, d_)) * norm * std::cos(kPi * h / b));
}

}  // namespace h1bkv
