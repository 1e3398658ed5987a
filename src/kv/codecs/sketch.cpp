#include "kv/codecs/sketch.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>

#include <Eigen/Dense>

#include "kv/codecs/float_kernels.h"
#include "kv/codecs/sketch_kernels.h"
#include "tensor/isa.h"
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

void orthogonalize_blocks(int rows, int cols, float* r) {
  for (int i0 = 0; i0 < rows; i0 += cols) {
    const int n = std::min(cols, rows - i0);
    // the block's transpose [cols][n]; its Q has orthonormal columns = the block's new rows
    Eigen::MatrixXd bt(cols, n);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < cols; ++j) bt(j, i) = r[(size_t)(i0 + i) * cols + j];
    Eigen::HouseholderQR<Eigen::MatrixXd> qr(bt);
    const Eigen::MatrixXd q = qr.householderQ() * Eigen::MatrixXd::Identity(cols, n);
    const Eigen::MatrixXd rr = qr.matrixQR().topLeftCorner(n, n).triangularView<Eigen::Upper>();
    const double s = std::sqrt((double)cols);
    for (int i = 0; i < n; ++i) {
      const double sg = rr(i, i) < 0 ? -1.0 : 1.0;
      for (int j = 0; j < cols; ++j) r[(size_t)(i0 + i) * cols + j] = (float)(sg * s * q(j, i));
    }
  }
}

std::vector<float> sketch_projection(const SketchOptions& o, int layer, int kv_head, int d) {
  std::vector<float> r((size_t)o.bits * d);
  gaussian_matrix(o.seed, layer, o.per_head ? kv_head : -1, o.bits, d, r.data());
  if (o.orth) orthogonalize_blocks(o.bits, d, r.data());
  return r;
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
  detail::sketch_group_sums(active_isa(), &tab, nullptr, 1, codes, nbytes, chunk,
                            reinterpret_cast<int32_t(*)[32]>(out));
}

SketchKeyCodec::SketchKeyCodec(const CacheGeometry& g, int layer, SketchOptions o)
    : g_(g), d_(g.head_dim), layer_(layer), group_(g.n_head / g.n_kv_head), o_(o),
      mult_(g.n_head, 1.0f) {
  per_head_ = o.per_head;
  check(o.bits >= 64 && o.bits <= 512 && o.bits % 64 == 0,
        "sketch bits must be a multiple of 64 in [64, 512] (got " + std::to_string(o.bits) + ")");
  check(o.T > 0 && std::isfinite(o.T), "sketch temperature T must be > 0");
  check(d_ <= 512, "sketch keys need head_dim <= 512 (got " + std::to_string(d_) + ")");
  const int nmat = o.per_head ? g.n_kv_head : 1, b = o.bits;
  R_.resize((size_t)nmat * b * d_);
  for (int m = 0; m < nmat; ++m) {  // generated [b][d], stored transposed [d][b]
    const std::vector<float> r = sketch_projection(o, layer, m, d_);
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

void SketchKeyCodec::set_mean(const std::vector<float>& mu) {
  check(mu.empty() || mu.size() == (size_t)g_.n_kv_head * d_,
        "sketch: layer " + std::to_string(layer_) + " needs a key mean of n_kv_head x head_dim values");
  mu_ = mu;
}

// [n_kv_head][b][d] -> [n_kv_head][d][b]
static std::vector<float> transpose_heads(const std::vector<float>& m, int nkv, int b, int d) {
  std::vector<float> t(m.size());
  for (int h = 0; h < nkv; ++h)
    for (int i = 0; i < b; ++i)
      for (int j = 0; j < d; ++j) t[((size_t)h * d + j) * b + i] = m[((size_t)h * b + i) * d + j];
  return t;
}

void SketchKeyCodec::set_projection(const std::vector<float>& R) {
  if (R.empty()) return;
  check(R.size() == (size_t)g_.n_kv_head * o_.bits * d_,
        "sketch: layer " + std::to_string(layer_) + " needs a projection of n_kv_head x bits x head_dim values");
  R_ = transpose_heads(R, g_.n_kv_head, o_.bits, d_);
  per_head_ = true;
}

void SketchKeyCodec::set_decoder(const std::vector<float>& A) {
  check(A.empty() || o_.est == SketchEst::qjl, "sketch: a query decoder needs est=qjl");
  const size_t per = (size_t)o_.bits * d_;
  check(A.empty() || A.size() == g_.n_kv_head * per || A.size() == g_.n_head * per,
        "sketch: layer " + std::to_string(layer_) + " needs a decoder of n_kv_head (or n_head) x bits x head_dim values");
  a_per_query_head_ = A.size() == g_.n_head * per && g_.n_head != g_.n_kv_head;
  At_ = A.empty() ? A : transpose_heads(A, (int)(A.size() / per), o_.bits, d_);
}

void SketchKeyCodec::set_temperature(float T) {
  check(T > 0 && std::isfinite(T), "sketch temperature T must be > 0");
  if (o_.est == SketchEst::hamming) o_.T = T;
  else inv_T_ = 1.0f / T;
}

void SketchKeyCodec::project(const float* x, int kv_head, float* y) const { apply_t(matrix(kv_head), x, y); }

void SketchKeyCodec::apply_t(const float* Rt, const float* x, float* y) const {
  // y = M x as sum_j x_j M[:, j] over the transposed matrix, 64 rows at a time in registers
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
  float kc[512];
  if (!mu_.empty()) {  // sketch (and norm) of k - mu
    const float* mu = &mu_[(size_t)kv_head * d_];
    for (int j = 0; j < d_; ++j) kc[j] = k[j] - mu[j];
    k = kc;
  }
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
// for hamming, prep[b+1] = slope: logit = prep[b] + prep[b+1] * h; prep[b+2] = scale q.mu;
// from prep + b + 4, hamming/angle: the query's b/8 sign bytes (the popcount kernels).
void SketchKeyCodec::prepare_query(const float* q, int head, float scale, float* prep) const {
  const int b = o_.bits, nb = b / 8;
  uint8_t* tab = reinterpret_cast<uint8_t*>(prep);
  const int hk = head / group_;
  const float m = mult_[head] * (o_.est == SketchEst::hamming ? 1.0f : inv_T_);
  float y[512];
  if (o_.est == SketchEst::qjl && !At_.empty()) apply_t(&At_[(size_t)(a_per_query_head_ ? head : hk) * d_ * b], q, y);
  else project(q, hk, y);
  prep[b + 1] = 0;
  // angle, qjl with a key mean: the exact scale q.mu, added to every sketched logit
  prep[b + 2] = o_.est != SketchEst::hamming && !mu_.empty() ? scale * dot_f32(q, &mu_[(size_t)hk * d_], d_) : 0.0f;
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
    const float factor = At_.empty() ? (float)std::sqrt(kPi / 2) / b : 1.0f;
    prep[b] = m * scale * factor * step;
    return;
  }
  static const auto pop = [] {  // pop[qn][c] = popcount(c ^ qn)
    std::array<std::array<uint8_t, 16>, 16> t{};
    for (int a = 0; a < 16; ++a)
      for (int c = 0; c < 16; ++c) t[a][c] = (uint8_t)std::popcount((unsigned)(c ^ a));
    return t;
  }();
  uint8_t* qbytes = reinterpret_cast<uint8_t*>(prep + b + 4);
  for (int g = 0; g < b / 4; ++g) {
    const int qn = (y[4 * g] >= 0) | (y[4 * g + 1] >= 0) << 1 | (y[4 * g + 2] >= 0) << 2 | (y[4 * g + 3] >= 0) << 3;
    std::memcpy(tab + g * 16, pop[qn].data(), 16);
    if (g % 2 == 0) qbytes[g / 2] = (uint8_t)qn;
    else qbytes[g / 2] |= (uint8_t)(qn << 4);
  }
  (void)nb;
  if (o_.est == SketchEst::hamming) {
    prep[b] = m / o_.T;
    prep[b + 1] = -2.0f * m / o_.T / b;
  } else {
    prep[b] = m * scale * std::sqrt(dot_f32(q, q, d_));
  }
}

namespace {

// cos(pi h / b), h = 0..b, as the codec's cos_tab_ (same expression, so the same floats), for
// b = 64, 128, ..., 512.
const float* cos_table(int bits) {
  static const auto tabs = [] {
    std::array<std::vector<float>, 8> t;
    for (int i = 0; i < 8; ++i) {
      const int b = 64 * (i + 1);
      t[i].resize(b + 1);
      for (int h = 0; h <= b; ++h) t[i][h] = (float)std::cos(kPi * h / b);
    }
    return t;
  }();
  return tabs[bits / 64 - 1].data();
}

// Logits from table sums h of n tokens (norms: fp16 ||k - mu|| of each, angle/qjl):
//   hamming f + slope h (one FMA), angle (f |k|) cos(pi h / b) + c, qjl (f |k|) (h - 16 b) + c
// with c = prep[b + 2] (scale q.mu; 0 without a key mean: fma(x, y, 0) rounds as x * y).
// Every token's arithmetic is the same in the vector body and the scalar tail.
void sketch_finish(SketchEst est, int b, const float* prep, const int32_t* h, const uint16_t* norms,
                   int n, float* out) {
  const float f = prep[b], slope = prep[b + 1], c = prep[b + 2];
  int i = 0;
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
  const __m256 fv = _mm256_set1_ps(f), sv = _mm256_set1_ps(slope), cv = _mm256_set1_ps(c);
  const float* ct = est == SketchEst::angle ? cos_table(b) : nullptr;
  for (; i + 8 <= n; i += 8) {
    const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + i));
    __m256 y;
    if (est == SketchEst::hamming) {
      y = _mm256_fmadd_ps(sv, _mm256_cvtepi32_ps(hi), fv);
    } else {
      const __m256 fn = _mm256_mul_ps(fv, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(norms + i))));
      const __m256 x = est == SketchEst::angle
                           ? _mm256_i32gather_ps(ct, hi, 4)
                           : _mm256_cvtepi32_ps(_mm256_sub_epi32(hi, _mm256_set1_epi32(16 * b)));
      y = _mm256_fmadd_ps(fn, x, cv);
    }
    _mm256_storeu_ps(out + i, y);
  }
#endif
  for (; i < n; ++i) {
    switch (est) {
      case SketchEst::hamming: out[i] = std::fma(slope, (float)h[i], f); break;
      case SketchEst::angle: out[i] = std::fma(f * fp16_to_f32(norms[i]), cos_table(b)[h[i]], c); break;
      case SketchEst::qjl: out[i] = std::fma(f * fp16_to_f32(norms[i]), (float)(h[i] - 16 * b), c); break;
    }
  }
}

}  // namespace

void sketch_score_group(const SketchKeyCodec& c, const float* const* preps, int G,
                        const uint8_t* block, int t0, int n, float* const* outs) {
  const SketchOptions& o = c.options();
  const int b = o.bits, nb = b / 8;
  const uint16_t* norms = reinterpret_cast<const uint16_t*>(block + kBlockTokens * nb);
  const int chunk = o.est == SketchEst::qjl ? 1 : 31;  // per byte: qjl <= 254, popcounts <= 8
  const Isa isa = active_isa();
  for (int g0 = 0; g0 < G; g0 += 4) {
    const int ng = std::min(4, G - g0);
    const uint8_t *tabs[4], *qbytes[4];
    for (int g = 0; g < ng; ++g) {
      tabs[g] = reinterpret_cast<const uint8_t*>(preps[g0 + g]);
      qbytes[g] = reinterpret_cast<const uint8_t*>(preps[g0 + g] + b + 4);
    }
    int32_t h[4][32];
    for (int s0 = t0 / 32 * 32; s0 < t0 + n; s0 += 32) {
      const uint8_t* codes = block + (size_t)s0 * nb;
      detail::sketch_group_sums(isa, tabs, o.est == SketchEst::qjl ? nullptr : qbytes, ng, codes, nb, chunk, h);
      const int lo = std::max(t0, s0), hi = std::min(t0 + n, s0 + 32);
      for (int g = 0; g < ng; ++g)
        sketch_finish(o.est, b, preps[g0 + g], h[g] + (lo - s0), norms + lo, hi - lo, outs[g0 + g] + (lo - t0));
    }
  }
}

void SketchKeyCodec::score_block(const float* prep, const uint8_t* block, int t0, int n,
                                 float* out) const {
  sketch_score_group(*this, &prep, 1, block, t0, n, &out);
}

void SketchKeyCodec::score_block_group(const float* const* preps, int G, const uint8_t* block,
                                       int t0, int n, float* const* out) const {
  sketch_score_group(*this, preps, G, block, t0, n, out);
}

// Token-major keys ([b/8 bytes][fp16 norm]): scalar table sums, the block path's logits.
void SketchKeyCodec::score(const float* prep, const uint8_t* keys, int64_t n, float* out) const {
  const int b = o_.bits, nb = b / 8;
  const uint8_t* tab = reinterpret_cast<const uint8_t*>(prep);
  const size_t kb = bytes_per_vector();
  int32_t h[32];
  uint16_t norms[32] = {};
  for (int64_t t0 = 0; t0 < n; t0 += 32) {
    const int m = (int)std::min<int64_t>(32, n - t0);
    for (int i = 0; i < m; ++i) {
      const uint8_t* k = keys + (t0 + i) * kb;
      int32_t s = 0;
      for (int p = 0; p < nb; ++p) s += tab[p * 32 + (k[p] & 15)] + tab[p * 32 + 16 + (k[p] >> 4)];
      h[i] = s;
      if (o_.est != SketchEst::hamming) std::memcpy(&norms[i], k + nb, 2);
    }
    sketch_finish(o_.est, b, prep, h, norms, m, out + t0);
  }
}

float SketchKeyCodec::score_ref(const float* q, int head, float scale, const uint64_t* kw,
                                float norm) const {
  const int b = o_.bits, hk = head / group_;
  const double m = mult_[head] * (o_.est == SketchEst::hamming ? 1.0 : (double)inv_T_);
  double qmu = 0;
  if (!mu_.empty())
    for (int j = 0; j < d_; ++j) qmu += (double)q[j] * mu_[(size_t)hk * d_ + j];
  float y[512];
  if (o_.est == SketchEst::qjl) {
    if (!At_.empty()) apply_t(&At_[(size_t)(a_per_query_head_ ? head : hk) * d_ * b], q, y);
    else project(q, hk, y);
    double dot = 0;
    for (int i = 0; i < b; ++i) dot += (kw[i / 64] >> (i % 64) & 1) ? y[i] : -y[i];
    const double factor = At_.empty() ? std::sqrt(kPi / 2) / b : 1.0;
    return (float)(m * scale * norm * factor * dot + scale * qmu);
  }
  uint64_t qw[8];
  sign_bits(q, hk, qw);
  int h = 0;
  for (int w = 0; w < b / 64; ++w) h += std::popcount(qw[w] ^ kw[w]);
  if (o_.est == SketchEst::hamming) return (float)(m * (1.0f - 2.0f * h / b) / o_.T);
  return (float)(m * scale * std::sqrt((double)dot_f32(q, q, d_)) * norm * std::cos(kPi * h / b) + scale * qmu);
}

}  // namespace h1bkv
