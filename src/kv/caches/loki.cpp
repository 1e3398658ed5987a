#include "kv/caches/loki.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "kv/calib/loki_record.h"
#include "kv/registry.h"
#include "kv/codecs/float_kernels.h"
#include "util/error.h"
#include "util/thread_pool.h"
#include "util/fp16.h"

namespace h1bkv {

LokiOptions loki_options(const CacheSpec& spec) {
  check(spec.type == "loki", "not a loki cache spec: " + spec.str());
  return LokiOptions{(int)spec.get_int("r"), spec.get_float("k"), spec.get_int("sink")};
}

void validate_loki_spec(const CacheSpec& spec) {
  const int64_t r = spec.get_int("r");
  check(r >= 1 && r <= 1024,
        "cache 'loki' option 'r': must be in 1..head_dim (got " + spec.get("r") + ")");
  const double k = spec.get_float("k");
  check(std::isfinite(k) && k > 0, "cache 'loki' option 'k': must be > 0 (got " + spec.get("k") + ")");
  check(k <= 1 || k == std::floor(k),
        "cache 'loki' option 'k': a count (> 1) must be an integer (got " + spec.get("k") + ")");
  check(spec.get_int("sink") >= 0, "cache 'loki' option 'sink': must be >= 0 (got " + spec.get("sink") + ")");
}

int64_t loki_select_count(double k, int64_t n_visible) {
  const int64_t c = k <= 1 ? std::max<int64_t>(1, (int64_t)std::ceil(k * (double)n_visible)) : (int64_t)k;
  return std::min(c, n_visible);
}

void loki_top_k(const float* s, int64_t n, int64_t count, std::vector<int32_t>& idx) {
  idx.resize(n);
  std::iota(idx.begin(), idx.end(), 0);
  if (count >= n) return;
  std::nth_element(idx.begin(), idx.begin() + count, idx.end(),
                   [s](int32_t a, int32_t b) { return s[a] > s[b] || (s[a] == s[b] && a < b); });
  idx.resize(count);
  std::sort(idx.begin(), idx.end());
}

namespace {

// Rows of w f16 values in blocks of kBlock rows, allocated as the sequence grows (nothing is copied
// to grow); row t at blocks_[t / kBlock] + (t % kBlock) * w.
class BlockRows {
 public:
  static constexpr int64_t kBlock = 256;
  explicit BlockRows(int w) : w_(w) {}
  uint16_t* push() {  // the next row, uninitialised
    if (n_ % kBlock == 0 && n_ / kBlock == (int64_t)blocks_.size())
      blocks_.push_back(std::make_unique<uint16_t[]>((size_t)kBlock * std::max(w_, 1)));
    return row(n_++);
  }
  uint16_t* row(int64_t t) const { return blocks_[t / kBlock].get() + (t % kBlock) * w_; }
  void truncate(int64_t n) {
    n_ = std::min(n_, n);
    blocks_.resize((n_ + kBlock - 1) / kBlock);
  }
  size_t capacity_bytes() const { return blocks_.size() * kBlock * w_ * sizeof(uint16_t); }

 private:
  int w_;
  int64_t n_ = 0;
  std::vector<std::unique_ptr<uint16_t[]>> blocks_;  // [n_blocks][kBlock][w]
};

class LokiLayerCache : public LayerCache {
 public:
  // basis: [n_kv_head][d][d] rows = principal directions
  LokiLayerCache(const CacheGeometry& g, const LokiOptions& o, const float* basis)
      : LayerCache(g), g_(g), o_(o), basis_(basis, basis + (size_t)g.n_kv_head * g.head_dim * g.head_dim) {
    for (int h = 0; h < g.n_kv_head; ++h) {
      head_.emplace_back(o.r);
      tail_.emplace_back(g.head_dim - o.r);
      val_.emplace_back(g.head_dim);
    }
  }

  void do_append(int64_t n, const int32_t* pos, const float* k, const float* v) override {
    const int d = g_.head_dim, r = o_.r, nkv = g_.n_kv_head;
    std::vector<float> kr(d);
    for (int64_t i = 0; i < n; ++i) {
      for (int h = 0; h < nkv; ++h) {
        const float* kh = k + (i * nkv + h) * d;
        const float* vh = v + (i * nkv + h) * d;
        rotate(h, kh, 1.0f, kr.data());
        uint16_t *hr = head_[h].push(), *tr = tail_[h].push(), *vr = val_[h].push();
        for (int c = 0; c < r; ++c) hr[c] = f32_to_fp16(kr[c]);
        for (int c = r; c < d; ++c) tr[c - r] = f32_to_fp16(kr[c]);
        for (int c = 0; c < d; ++c) vr[c] = f32_to_fp16(vh[c]);
      }
    }
  }

  void do_attend(int64_t n_q, const int32_t* q_pos, const float* q, float scale, float* out) override {
    const std::vector<int32_t>& pos_ = positions();
    const int d = g_.head_dim, r = o_.r, nh = g_.n_head, group = g_.n_head / g_.n_kv_head;
    const int64_t pairs = n_q * nh;
    parallel_for(pairs, 4, [&](int64_t p0, int64_t p1) {
      std::vector<float> qr(d), approx, e, sink_saved;
      std::vector<int32_t> idx;
      for (int64_t pr = p0; pr < p1; ++pr) {
        const int64_t i = pr / nh;
        const int h = (int)(pr % nh), hk = h / group;
        float* o = out + pr * d;
        std::fill(o, o + d, 0.0f);
        const int64_t nv = std::upper_bound(pos_.begin(), pos_.end(), q_pos[i]) - pos_.begin();
        if (nv == 0) continue;
        rotate(hk, q + pr * d, scale, qr.data());  // q' = scale P^T q
        approx.resize(nv);
        const BlockRows& kh = head_[hk];
        for (int64_t t = 0; t < nv; ++t) approx[t] = dot_f32_f16(qr.data(), kh.row(t), r);
        // sinks are selected first: their selection key is +inf, their partial score kept aside
        const int64_t ns = std::min<int64_t>(o_.sink, nv);
        sink_saved.assign(approx.begin(), approx.begin() + ns);
        std::fill(approx.begin(), approx.begin() + ns, INFINITY);
        loki_top_k(approx.data(), nv, loki_select_count(o_.k, nv), idx);
        std::copy(sink_saved.begin(), sink_saved.end(), approx.begin());
        // exact scores of the selected tokens: the first r coordinates plus the other d - r
        const size_t n_sel = idx.size();
        e.resize(n_sel);
        float mx = -INFINITY;
        for (size_t j = 0; j < n_sel; ++j) {
          e[j] = approx[idx[j]];
          if (d > r) e[j] += dot_f32_f16(qr.data() + r, tail_[hk].row(idx[j]), d - r);
          mx = std::max(mx, e[j]);
        }
        float sum = 0;
        for (size_t j = 0; j < n_sel; ++j) {
          const float w = std::exp(e[j] - mx);
          sum += w;
          axpy_f16(w, val_[hk].row(idx[j]), o, d);
        }
        const float inv = 1.0f / sum;
        for (int c = 0; c < d; ++c) o[c] *= inv;
      }
    });
  }

  size_t bytes() const override { return (size_t)n_tokens() * g_.n_kv_head * (size_t)g_.head_dim * 4; }
  size_t capacity_bytes() const override {
    size_t b = 0;
    for (int h = 0; h < g_.n_kv_head; ++h)
      b += head_[h].capacity_bytes() + tail_[h].capacity_bytes() + val_[h].capacity_bytes();
    return b;
  }
  void do_truncate(int64_t n) override {
    for (int h = 0; h < g_.n_kv_head; ++h) {
      head_[h].truncate(n);
      tail_[h].truncate(n);
      val_[h].truncate(n);
    }
  }

 private:
  // y = s P_h^T x: y[j] = s (row j of head h's basis) . x
  void rotate(int h, const float* x, float s, float* y) const {
    const int d = g_.head_dim;
    const float* B = basis_.data() + (size_t)h * d * d;
    for (int j = 0; j < d; ++j) y[j] = s * dot_f32(B + (size_t)j * d, x, d);
  }

  CacheGeometry g_;
  LokiOptions o_;
  std::vector<float> basis_;     // [n_kv_head][d][d]
  std::vector<BlockRows> head_;  // [n_kv_head][n][r] f16 rotated coordinates 0..r-1
  std::vector<BlockRows> tail_;  // [n_kv_head][n][d - r] f16 rotated coordinates r..d-1
  std::vector<BlockRows> val_;   // [n_kv_head][n][d] f16 values
};

double loki_bytes_per_token(const CacheGeometry& g) {  // f16 keys and values
  return (double)g.head_dim * 2 * 2 * g.n_kv_head * g.n_layer;
}

}  // namespace

std::unique_ptr<KvCache> make_loki_cache(const CacheSpec& spec, const CacheGeometry& g,
                                         const LokiBasis& b, const std::string& path) {
  validate_loki_spec(spec);
  const LokiOptions o = loki_options(spec);
  check(o.r <= g.head_dim, "cache 'loki' option 'r': " + std::to_string(o.r) + " exceeds head_dim " +
                               std::to_string(g.head_dim));
  check_loki_basis_fits(b, path, g);
  std::vector<std::unique_ptr<LayerCache>> layers;
  for (int il = 0; il < g.n_layer; ++il)
    layers.push_back(std::make_unique<LokiLayerCache>(g, o, b.rows(il, 0)));
  return std::make_unique<KvCache>(spec.str(), g, loki_bytes_per_token(g), std::move(layers));
}

void add_loki_cache_types(std::vector<CacheTypeDef>& types) {
  CacheTypeDef t;
  t.name = "loki";
  t.help =
      "Loki: attends the top-k tokens by r-dim PCA key scores, exactly (keys f16 in a calibrated "
      "PCA basis, values f16); keeps every token: saves reads, not memory";
  t.options = {{"r", "int", "16", "principal dimensions used to score (1..head_dim)", 1, 1024},
               {"k", "float", "0.125", "tokens attended: <= 1 fraction of the visible ones (1 = all), > 1 count", 0, kMaxCount, true},
               {"sink", "int", "0", "first tokens always selected, within the k (attention sinks; not in Loki)", 0, kMaxCount}};
  t.calib = CalibUse::required;
  t.calibration.make_recorder = [](const CacheSpec&, const CacheGeometry& g, int) {
    return make_loki_recording_cache(g);
  };
  t.calibration.save = [](KvCache& rec, const CacheSpec&, const std::string& model,
                          const std::vector<std::string>& text, const std::string& path) {
    LokiBasis b = loki_basis_from_recording(rec);
    b.model = model;
    b.text = text;
    save_loki_basis(path, b);
    const std::vector<double> ev = b.explained_mean();
    std::string s = "explained variance (mean over layers and KV heads) of the first r directions:";
    char buf[64];
    for (int r = 1; r <= b.head_dim; r *= 2) {
      std::snprintf(buf, sizeof buf, "\n  r=%-4d %.4f", r, ev[r - 1]);
      s += buf;
    }
    return s;
  };
  t.color = "#9467bd";
  t.examples = {"loki", "loki:r=16,k=0.25,sink=2", "loki:r=8,k=40"};
  t.exact_examples = {"loki:k=1"};  // every visible token selected, scored with all d coordinates
  t.validate = validate_loki_spec;
  t.make = [](const CacheSpec& spec, const CacheGeometry& g, const std::string& calib) {
    return make_loki_cache(spec, g, load_loki_basis(calib), calib);
  };
  t.bytes_per_token = [](const CacheSpec&, const CacheGeometry& g) { return loki_bytes_per_token(g); };
  t.fixed_bytes = [](const CacheSpec&, const CacheGeometry& g) {  // the f32 basis
    return (double)g.n_layer * g.n_kv_head * g.head_dim * g.head_dim * 4;
  };
  types.push_back(t);
}

}  // namespace h1bkv
