#include "kv/calib/h1b_record.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "kv/codecs/float.h"
#include "kv/codecs/float_kernels.h"
#include "kv/caches/tiered.h"
#include "kv/caches/h1b.h"
#include "kv/codecs/sketch.h"
#include "tensor/simd.h"
#include "tensor/vexp.h"
#include "util/error.h"
#include "util/fp16.h"

namespace h1bkv {

double calib_grid_m(int j) { return std::exp2(-6.0 + 12.0 * j / (kCalibGrid - 1)); }

void KlCurve::add(const KlCurve& o) {
  n += o.n;
  for (int j = 0; j < kCalibGrid; ++j) kl[j] += o.kl[j], grad[j] += o.grad[j];
}

double kl_at(const KlCurve& c, double m) {
  if (c.n <= 0) return 0;
  const double u = std::clamp((std::log2(m) + 6.0) / 12.0 * (kCalibGrid - 1), 0.0, kCalibGrid - 1.0);
  const int j = std::min((int)u, kCalibGrid - 2);
  const double m0 = calib_grid_m(j), m1 = calib_grid_m(j + 1), h = m1 - m0;
  const double t = std::clamp((m - m0) / h, 0.0, 1.0), t2 = t * t, t3 = t2 * t;
  return ((2 * t3 - 3 * t2 + 1) * c.kl[j] + (t3 - 2 * t2 + t) * h * c.grad[j] +
          (-2 * t3 + 3 * t2) * c.kl[j + 1] + (t3 - t2) * h * c.grad[j + 1]) / c.n;
}

KlFit fit_kl_curve(const KlCurve& c) {
  KlFit f;
  if (c.n <= 0) return f;
  f.kl_before = c.kl[(kCalibGrid - 1) / 2] / c.n;
  int best = 0;
  for (int i = 1; i < kCalibGrid; ++i)
    if (c.kl[i] < c.kl[best]) best = i;
  f.m = calib_grid_m(best);
  f.kl_after = c.kl[best] / c.n;
  int j = 0;
  while (j < kCalibGrid && c.grad[j] <= 0) ++j;  // first grid point past the minimum
  if (j == 0 || j == kCalibGrid) return f;       // minimum at the grid's edge
  // secant on the derivative in [m_{j-1}, m_j]
  const double m0 = calib_grid_m(j - 1), m1 = calib_grid_m(j), g0 = c.grad[j - 1], g1 = c.grad[j];
  const double m = m0 - g0 * (m1 - m0) / (g1 - g0), kl = kl_at(c, m);
  if (kl <= f.kl_after) f.m = m, f.kl_after = kl;
  return f;
}

namespace {

// sum_t exp(m s_t - mx) and sum_t exp(m s_t - mx) s_t over n scores
void exp_sums(const float* s, int64_t n, float m, float mx, float& S, float& Sb) {
  int64_t t = 0;
#if defined(__AVX2__) && defined(__FMA__)
  __m256 acc = _mm256_setzero_ps(), accb = _mm256_setzero_ps();
  const __m256 vm = _mm256_set1_ps(m), vmx = _mm256_set1_ps(mx);
  for (; t + 8 <= n; t += 8) {
    const __m256 x = _mm256_loadu_ps(s + t);
    const __m256 w = exp256_ps(_mm256_fmsub_ps(vm, x, vmx));
    acc = _mm256_add_ps(acc, w);
    accb = _mm256_fmadd_ps(w, x, accb);
  }
  S = detail::hsum_ps(acc), Sb = detail::hsum_ps(accb);
#else  // a baseline without AVX2 (x86-64-v2, other architectures): the loop below takes all
  S = 0, Sb = 0;
#endif
  for (; t < n; ++t) {
    const float w = std::exp(m * s[t] - mx);
    S += w, Sb += w * s[t];
  }
}

}  // namespace

void add_kl_sample(KlCurve& c, const float* e, const float* s, const uint8_t* exact, int64_t n) {
  thread_local std::vector<float> cs;  // scores of the compressed tokens
  cs.clear();
  float emax = -INFINITY;
  for (int64_t t = 0; t < n; ++t) emax = std::max(emax, e[t]);
  double Z = 0;
  for (int64_t t = 0; t < n; ++t) Z += std::exp((double)(e[t] - emax));
  const double logZ = std::log(Z);
  // c0 = sum p log p - sum_exact p e; Pb = sum_comp p s; A = max exact e; SA = sum_exact exp(e - A)
  double c0 = 0, Pb = 0;
  float A = -INFINITY, B = -INFINITY;
  for (int64_t t = 0; t < n; ++t) {
    const double lp = (double)(e[t] - emax) - logZ, p = std::exp(lp);
    c0 += p * lp;
    if (exact[t]) {
      c0 -= p * e[t];
      A = std::max(A, e[t]);
    } else {
      Pb += p * s[t];
      B = std::max(B, s[t]);
      cs.push_back(s[t]);
    }
  }
  c.n += 1;
  if (cs.empty()) return;  // every token exact: KL = 0 for all m
  double SA = 0;
  for (int64_t t = 0; t < n; ++t)
    if (exact[t]) SA += std::exp((double)(e[t] - A));
  for (int j = 0; j < kCalibGrid; ++j) {
    const double m = calib_grid_m(j);
    const float mx = std::max(A, (float)m * B);
    float S, Sb;
    exp_sums(cs.data(), (int64_t)cs.size(), (float)m, mx, S, Sb);
    const double St = S + (SA > 0 ? SA * std::exp((double)A - mx) : 0.0);
    c.kl[j] += std::max(0.0, c0 - m * Pb + mx + std::log(St));
    c.grad[j] += Sb / St - Pb;
  }
}

namespace {

class RecordingLayer : public LayerCache {
 public:
  RecordingLayer(const CacheGeometry& g, int layer, const H1bOptions& o, int stride)
      : LayerCache(g), g_(g), o_(o), stride_(stride), codec_(g, layer, o.sketch), kb_(codec_.bytes_per_vector()),
        codes_(g.n_kv_head), curves_(g.n_head), collect_(h1b_needs_adapter(o)), fit_keys_(g.n_kv_head),
        inner_(make_full_layer_cache(g, make_f16_key(g.head_dim), make_f16_value(g.head_dim))) {}

  void do_append(int64_t n, const int32_t* pos, const float* k, const float* v) override {
    const int d = g_.head_dim, nkv = g_.n_kv_head;
    if (collect_) {  // keys past the sinks, for the adapter fit; no KL samples
      const int64_t first = std::max<int64_t>(1, o_.sink), t0 = n_tokens();
      for (int64_t i = std::max<int64_t>(0, first - t0); i < n; ++i)
        for (int h = 0; h < nkv; ++h)
          if ((int64_t)fit_keys_[h].size() < kMaxFitKeys * d)
            fit_keys_[h].insert(fit_keys_[h].end(), k + (i * nkv + h) * d, k + (i * nkv + h + 1) * d);
      if (o_.kl > 0) capture_keys(n, pos, k, t0);
      inner_->append(n, pos, k, v);
      return;
    }
    inner_->append(n, pos, k, v);
    for (int64_t i = 0; i < n; ++i) {
      for (int h = 0; h < nkv; ++h) {
        const float* kh = k + (i * nkv + h) * d;
        for (int c = 0; c < d; ++c) keys_.push_back(f32_to_fp16(kh[c]));
        codes_[h].resize(codes_[h].size() + kb_);
        codec_.encode(kh, h, codes_[h].data() + codes_[h].size() - kb_);
      }
    }
  }

  void do_attend(int64_t n_q, const int32_t* q_pos, const float* q, float scale, float* out) override {
    inner_->attend(n_q, q_pos, q, scale, out);
    if (collect_) {
      if (o_.kl > 0) capture_queries(n_q, q_pos, q, scale);
      return;
    }
    const std::vector<int32_t>& pos_ = positions();
    std::vector<int64_t> qs;
    for (int64_t i = 0; i < n_q; ++i)
      if ((q_pos[i] + 1) % stride_ == 0) qs.push_back(i);
    const int d = g_.head_dim, nh = g_.n_head, group = g_.n_head / g_.n_kv_head;
    const size_t row = (size_t)g_.n_kv_head * d;
    const int64_t pairs = (int64_t)qs.size() * nh;
#pragma omp parallel
    {
      std::vector<KlCurve> local(nh);
      std::vector<float> e(pos_.size()), s(pos_.size()), prep(codec_.query_prep_floats()), qsc(d);
      std::vector<uint8_t> ex(pos_.size());
#pragma omp for schedule(dynamic, 1)
      for (int64_t pr = 0; pr < pairs; ++pr) {
        const int64_t i = qs[pr / nh];
        const int h = (int)(pr % nh), hk = h / group;
        const int64_t nv = std::upper_bound(pos_.begin(), pos_.end(), q_pos[i]) - pos_.begin();
        if (nv < 2) continue;
        const float* qh = q + (i * nh + h) * d;
        for (int c = 0; c < d; ++c) qsc[c] = qh[c] * scale;
        for (int64_t t = 0; t < nv; ++t) {
          e[t] = dot_f32_f16(qsc.data(), &keys_[t * row + hk * d], d);
          ex[t] = t < o_.sink || (o_.window > 0 && pos_[t] > (int64_t)q_pos[i] - o_.window);
        }
        codec_.prepare_query(qh, h, scale, prep.data());
        codec_.score(prep.data(), codes_[hk].data(), nv, s.data());
        add_kl_sample(local[h], e.data(), s.data(), ex.data(), nv);
      }
#pragma omp critical
      for (int h = 0; h < nh; ++h) curves_[h].add(local[h]);
    }
  }

  size_t bytes() const override { return inner_->bytes(); }
  size_t capacity_bytes() const override { return inner_->capacity_bytes(); }
  void do_truncate(int64_t n) override {
    inner_->truncate(n);
    keys_.resize((size_t)n * g_.n_kv_head * g_.head_dim);
    for (auto& c : codes_) c.resize((size_t)n * kb_);
  }

  std::vector<KlCurve>& curves() { return curves_; }
  const std::vector<std::vector<float>>& fit_keys() const { return fit_keys_; }
  const std::vector<KlCapture>& sequences() const { return seqs_; }

 private:
  // A sequence starts when the cache is empty (t0 = 0); it is kept while the layer's total stays
  // within kMaxKlTokens.
  void capture_keys(int64_t n, const int32_t* pos, const float* k, int64_t t0) {
    const size_t row = (size_t)g_.n_kv_head * g_.head_dim;
    if (t0 == 0) {
      capturing_ = kl_tokens_ + n <= kMaxKlTokens;
      if (capturing_) seqs_.emplace_back();
    }
    if (!capturing_ || seqs_.empty() || seqs_.back().n() != t0) return capturing_ = false, void();
    if (kl_tokens_ + n > kMaxKlTokens) {  // the sequence outgrew the budget: drop it
      kl_tokens_ -= seqs_.back().n();
      seqs_.pop_back();
      capturing_ = false;
      return;
    }
    KlCapture& c = seqs_.back();
    c.k.insert(c.k.end(), k, k + n * row);
    c.pos.insert(c.pos.end(), pos, pos + n);
    kl_tokens_ += n;
  }

  void capture_queries(int64_t n_q, const int32_t* q_pos, const float* q, float scale) {
    if (!capturing_ || seqs_.empty()) return;
    KlCapture& c = seqs_.back();
    c.scale = scale;
    const size_t row = (size_t)g_.n_head * g_.head_dim;
    for (int64_t i = 0; i < n_q; ++i) {
      if ((q_pos[i] + 1) % stride_ != 0) continue;
      const int64_t ti = std::upper_bound(c.pos.begin(), c.pos.end(), q_pos[i]) - c.pos.begin() - 1;
      // a compressed token exists: the first one past the sinks is outside the window
      if (ti < o_.sink || (o_.window > 0 && c.pos[o_.sink] > (int64_t)q_pos[i] - o_.window)) continue;
      c.rows.push_back(ti);
      c.q.insert(c.q.end(), q + i * row, q + (i + 1) * row);
    }
  }

  CacheGeometry g_;
  H1bOptions o_;
  int stride_;
  SketchKeyCodec codec_;  // multipliers 1
  size_t kb_;
  std::vector<uint16_t> keys_;              // [n][n_kv_head][d] f16
  std::vector<std::vector<uint8_t>> codes_;  // [n_kv_head][n][kb_] token-major sketch codes
  std::vector<KlCurve> curves_;             // [n_head]
  bool collect_;
  std::vector<std::vector<float>> fit_keys_;  // [n_kv_head][n][d] f32, past the sinks
  std::unique_ptr<LayerCache> inner_;
  std::vector<KlCapture> seqs_;  // kl > 0: whole sequences
  int64_t kl_tokens_ = 0;
  bool capturing_ = false;
};

RecordingLayer& recorder_of(KvCache& cache, int il) {
  auto* r = dynamic_cast<RecordingLayer*>(&cache.layer(il));
  check(r != nullptr, "cache '" + cache.spec() + "' is not a calibration recording cache");
  return *r;
}

}  // namespace

std::unique_ptr<KvCache> make_recording_cache(const CacheSpec& spec, const CacheGeometry& g, int stride) {
  check(stride >= 1, "calibration query stride must be >= 1");
  const H1bOptions o = h1b_options(spec);  // an Error for another type
  std::vector<std::unique_ptr<LayerCache>> layers;
  for (int il = 0; il < g.n_layer; ++il) layers.push_back(std::make_unique<RecordingLayer>(g, il, o, stride));
  return std::make_unique<KvCache>(spec.str(), g, cache_bytes_per_token(parse_cache_spec("f16"), g),
                                   std::move(layers));
}

std::vector<std::vector<KlCurve>> recorded_curves(KvCache& cache) {
  std::vector<std::vector<KlCurve>> c;
  for (int il = 0; il < cache.geometry().n_layer; ++il) c.push_back(recorder_of(cache, il).curves());
  return c;
}

std::vector<const std::vector<std::vector<float>>*> recorded_keys(KvCache& cache) {
  std::vector<const std::vector<std::vector<float>>*> k;
  for (int il = 0; il < cache.geometry().n_layer; ++il) k.push_back(&recorder_of(cache, il).fit_keys());
  return k;
}

std::vector<const std::vector<KlCapture>*> recorded_sequences(KvCache& cache) {
  std::vector<const std::vector<KlCapture>*> s;
  for (int il = 0; il < cache.geometry().n_layer; ++il) s.push_back(&recorder_of(cache, il).sequences());
  return s;
}

void reset_recorded_curves(KvCache& cache) {
  for (int il = 0; il < cache.geometry().n_layer; ++il)
    for (auto& c : recorder_of(cache, il).curves()) c = KlCurve{};
}

}  // namespace h1bkv
