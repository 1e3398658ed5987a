#include "kv/caches/kivi.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <vector>

#include "kv/caches/f16_ring.h"
#include "kv/registry.h"
#include "kv/codecs/float_kernels.h"
#include "kv/codecs/kivi_quant.h"
#include "util/error.h"
#include "util/thread_pool.h"
#include "util/fp16.h"

namespace h1bkv {

namespace {

class KiviCache : public LayerCache {
 public:
  KiviCache(const CacheGeometry& g, const KiviOptions& o)
      : LayerCache(g), g_(g), L_(kivi_layout(g.head_dim, o.bits, o.group, o.vgroup, o.vbits)), G_(o.group),
        R_(std::min<int64_t>(o.residual, g.n_ctx)), row_((size_t)g.n_kv_head * g.head_dim),
        group_bytes_(L_.head_bytes() * g.n_kv_head), ring_(row_) {
    check(o.residual >= 0, "cache 'kivi' option 'residual': must be >= 0");
  }

  void do_append(int64_t n, const int32_t* pos, const float* k, const float* v) override {
    ring_.grow(std::min<int64_t>(g_.n_ctx, R_ + G_ - 1 + n), ex_lo_, n_);
    const int64_t n_old = n_;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t t = n_old + i;
      ring_.put(t, k + i * row_, v + i * row_);
      n_ = t + 1;
      if (n_ % G_ == 0) quantize_group(t / G_);
    }
    // the queries of this batch (index >= n_old) and later ones read f16 from keep_from(n_old + 1)
    ex_lo_ = std::max(ex_lo_, keep_from(n_old + 1));
  }

  // One softmax over the quantized tokens [0, q_end) and the f16 ones [q_end, nvis) of each
  // query. Work items: (block of kQ queries, KV head); a block decodes each quantized group once
  // for all its queries and query heads. Each query's arithmetic (scores, softmax, accumulation
  // in token order) does not depend on the block, so batched == token-by-token.
  void do_attend(int64_t n_q, const int32_t* q_pos, const float* q, float scale, float* out) override {
    const std::vector<int32_t>& pos_ = positions();
    std::vector<int64_t> nvis(n_q), qend(n_q);
    for (int64_t i = 0; i < n_q; ++i) {
      nvis[i] = std::upper_bound(pos_.begin(), pos_.end(), q_pos[i]) - pos_.begin();
      qend[i] = q_end(nvis[i]);
      if (qend[i] < nvis[i] && qend[i] < ex_lo_) [[unlikely]]
        throw Error("cache kivi: query at position " + std::to_string(q_pos[i]) +
                    " needs f16 copies of tokens older than the retained residual");
    }
    const int nkv = g_.n_kv_head;
    const int64_t n_items = (n_q + kQ - 1) / kQ * nkv;
    parallel_for(n_items, 1, [&](int64_t b0, int64_t b1) {
      Scratch s;
      for (int64_t it = b0; it < b1; ++it) {
        const int64_t i0 = it / nkv * kQ;
        attend_block(i0, std::min(n_q, i0 + kQ), (int)(it % nkv), nvis, qend, q, scale, out, s);
      }
    });
  }

  // Held: the quantized groups, plus the f16 copies of tokens [ex_lo_, n_).
  size_t bytes() const override { return groups_.size() * group_bytes_ + (size_t)(n_ - ex_lo_) * row_ * 4; }
  size_t capacity_bytes() const override { return groups_.size() * group_bytes_ + ring_.capacity_bytes(); }
  void do_truncate(int64_t n) override {
    if (n > 0) {
      const int64_t lo = std::min(q_end(n + 1), n / G_ * G_);  // f16 needed: [lo, n)
      check(lo >= n || lo >= ex_lo_,
            "cannot rewind to " + std::to_string(n) + " tokens: the f16 copies of older tokens were "
            "dropped (a rewind within the last batch appended always works)");
    }
    groups_.resize(n / G_);
    n_ = n;
    ex_lo_ = std::min(ex_lo_, n);
  }
  // Keeps the f16 copies a query past the newest token reads, and the slots a one-token append
  // needs.
  void do_settle() override {
    if (n_ == 0) return;
    ex_lo_ = std::max(ex_lo_, keep_from(n_ + 1));
    ring_.shrink(std::min<int64_t>(g_.n_ctx, R_ + G_), ex_lo_, n_);
  }

 private:
  static constexpr int64_t kQ = 16;  // queries per work item
  struct Scratch {
    std::vector<float> kbuf, vbuf, qs, sc, sum;  // [G][d], [d], [rows][d], [rows][nmax], [rows]
  };

  // First token read from f16 by a query that sees nvis tokens.
  int64_t q_end(int64_t nvis) const { return std::max<int64_t>(0, nvis - R_) / G_ * G_; }
  // Oldest f16 copy still needed when the first possible query sees nvis tokens: its residual,
  // and the incomplete group (quantized from f16 when it completes).
  int64_t keep_from(int64_t nvis) const { return std::min(q_end(nvis), n_ / G_ * G_); }
  const uint8_t* group(int64_t gi, int hk) const { return groups_[gi].get() + hk * L_.head_bytes(); }

  void quantize_group(int64_t gi) {
    assert((int64_t)groups_.size() == gi && ex_lo_ <= gi * G_ && G_ <= ring_.cap());
    const int d = g_.head_dim;
    std::vector<float> k((size_t)G_ * d), v((size_t)G_ * d);  // [G][d]
    groups_.emplace_back(new uint8_t[group_bytes_]);
    for (int hk = 0; hk < g_.n_kv_head; ++hk) {
      for (int64_t j = 0; j < G_; ++j) {
        const uint16_t *rk = ring_.k(gi * G_ + j) + (size_t)hk * d, *rv = ring_.v(gi * G_ + j) + (size_t)hk * d;
        for (int c = 0; c < d; ++c) {
          k[j * d + c] = fp16_to_f32(rk[c]);
          v[j * d + c] = fp16_to_f32(rv[c]);
        }
      }
      kivi_quantize_group(L_, k.data(), v.data(), groups_[gi].get() + hk * L_.head_bytes());
    }
  }

  // Queries [i0, i1), KV head hk, its query heads hk*hpk ... ; out rows written in full.
  void attend_block(int64_t i0, int64_t i1, int hk, const std::vector<int64_t>& nvis,
                    const std::vector<int64_t>& qend, const float* q, float scale, float* out,
                    Scratch& s) const {
    const int d = g_.head_dim, nh = g_.n_head, hpk = nh / g_.n_kv_head;
    int64_t nmax = 0, qmax = 0;
    for (int64_t i = i0; i < i1; ++i) nmax = std::max(nmax, nvis[i]), qmax = std::max(qmax, qend[i]);
    const int64_t rows = (i1 - i0) * hpk;  // row r: query i0 + r / hpk, head hk*hpk + r % hpk
    s.qs.resize(rows * d), s.sc.resize(rows * std::max<int64_t>(nmax, 1)), s.sum.resize(rows);
    s.vbuf.resize(d);
    if (qmax > 0) s.kbuf.resize((size_t)G_ * d);
    auto off = [&](int64_t r) { return ((i0 + r / hpk) * nh + (int64_t)hk * hpk + r % hpk) * d; };
    auto qrow = [&](int64_t r) { return &s.qs[r * d]; };
    auto srow = [&](int64_t r) { return &s.sc[r * nmax]; };
    auto orow = [&](int64_t r) { return out + off(r); };
    for (int64_t r = 0; r < rows; ++r)
      for (int c = 0; c < d; ++c) qrow(r)[c] = q[off(r) + c] * scale;
    // scores: quantized groups (decoded once per block), then f16
    for (int64_t gi = 0; gi < qmax / G_; ++gi) {
      kivi_decode_keys(L_, group(gi, hk), s.kbuf.data());
      for (int64_t r = 0; r < rows; ++r)
        if (qend[i0 + r / hpk] > gi * G_)
          for (int64_t j = 0; j < G_; ++j) srow(r)[gi * G_ + j] = dot_f32(qrow(r), &s.kbuf[j * d], d);
    }
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = i0 + r / hpk;
      for (int64_t t = qend[i]; t < nvis[i]; ++t)
        srow(r)[t] = dot_f32_f16(qrow(r), ring_.k(t) + (size_t)hk * d, d);
    }
    // softmax: p = exp(score - max) in place
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t nv = nvis[i0 + r / hpk];
      float* x = srow(r);
      float m = -INFINITY, sum = 0;
      for (int64_t t = 0; t < nv; ++t) m = std::max(m, x[t]);
      for (int64_t t = 0; t < nv; ++t) sum += (x[t] = std::exp(x[t] - m));
      s.sum[r] = sum;
      std::memset(orow(r), 0, sizeof(float) * d);
    }
    // values, in token order per query: quantized (decoded once per block), then f16
    for (int64_t gi = 0; gi < qmax / G_; ++gi)
      for (int64_t j = 0; j < G_; ++j) {
        kivi_decode_value(L_, group(gi, hk), (int)j, s.vbuf.data());
        for (int64_t r = 0; r < rows; ++r)
          if (qend[i0 + r / hpk] > gi * G_) axpy_f32(srow(r)[gi * G_ + j], s.vbuf.data(), orow(r), d);
      }
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = i0 + r / hpk;
      float* o = orow(r);
      for (int64_t t = qend[i]; t < nvis[i]; ++t)
        axpy_f16(srow(r)[t], ring_.v(t) + (size_t)hk * d, o, d);
      if (nvis[i] == 0) continue;  // sees no token: zeros
      const float inv = 1.0f / s.sum[r];
      for (int c = 0; c < d; ++c) o[c] *= inv;
    }
  }

  CacheGeometry g_;
  KiviLayout L_;
  int64_t G_, R_;
  size_t row_;          // f16 values per token in the ring: n_kv_head * head_dim
  size_t group_bytes_;  // one quantized group, all KV heads
  int64_t n_ = 0;  // tokens held (n_tokens() once an append completes)
  // [n_ / G] quantized groups, each [n_kv_head][L_.head_bytes()] (kivi_quant.h layout)
  std::vector<std::unique_ptr<uint8_t[]>> groups_;
  F16Ring ring_;  // f16 K and V of tokens [ex_lo_, n_)
  int64_t ex_lo_ = 0;
};

}  // namespace

KiviOptions kivi_options(const CacheSpec& spec) {
  check(spec.type == "kivi", "not a kivi cache spec: " + spec.str());
  KiviOptions o;
  o.bits = (int)spec.get_int("bits");
  o.group = (int)std::clamp<int64_t>(spec.get_int("group"), -1, 1 << 30);
  o.residual = spec.get_int("residual");
  o.vgroup = (int)std::clamp<int64_t>(spec.get_int("vgroup"), -1, 1 << 30);
  o.vbits = (int)spec.get_int("vbits");
  return o;
}

void validate_kivi_spec(const CacheSpec& spec) {
  const KiviOptions o = kivi_options(spec);
  check(o.group >= 1, "cache 'kivi' option 'group': must be >= 1 (got " + spec.get("group") + ")");
  check(o.residual >= 0, "cache 'kivi' option 'residual': must be >= 0 (got " + spec.get("residual") + ")");
  check(o.vgroup >= 1, "cache 'kivi' option 'vgroup': must be >= 1 (got " + spec.get("vgroup") + ")");
  check(o.vbits == 0 || o.bits != 16, "cache 'kivi' option 'vbits': bits=16 stores values in f16 too (vbits=0)");
}

std::unique_ptr<LayerCache> make_kivi_layer_cache(const CacheGeometry& g, const KiviOptions& o) {
  return std::make_unique<KiviCache>(g, o);
}

double kivi_bytes_per_token_head(const KiviOptions& o, int d) {
  if (o.bits == 16) return 4.0 * d;
  const double vg = std::min(o.vgroup, d);
  const int vbits = o.vbits == 0 ? o.bits : o.vbits;
  return (double)d * o.bits / 8 + 4.0 * d / o.group + (double)d * vbits / 8 + 4.0 * d / vg;
}

void add_kivi_cache_types(std::vector<CacheTypeDef>& types) {
  CacheTypeDef t;
  t.name = "kivi";
  t.help = "KIVI: keys per channel over token groups, values per token, asymmetric bits; recent tokens f16";
  t.options = {{"bits", "enum:2|4|8|16", "2", "bits per key and value element (16: f16, no quantization)"},
               {"group", "int", "32", "tokens per key quantization group (G)", 1, 1 << 20},
               {"residual", "int", "128", "most recent tokens kept in f16 (R)", 0, kMaxCount},
               {"vgroup", "int", "32", "channels per value quantization group (clamped to head_dim)", 1, 1 << 20},
               {"vbits", "enum:0|2|4|8", "0", "bits per value element (0 = bits)"}};
  t.color = "#2ca02c";
  t.examples = {"kivi", "kivi:bits=2,group=32,residual=64", "kivi:bits=4,group=16,residual=0,vgroup=16", "kivi:bits=8",
                "kivi:bits=2,group=128,vbits=4,vgroup=64"};
  t.exact_examples = {"kivi:bits=16"};
  t.validate = validate_kivi_spec;
  t.make = [](const CacheSpec& spec, const CacheGeometry& g, const std::string&) {
    validate_kivi_spec(spec);
    const KiviOptions o = kivi_options(spec);
    std::vector<std::unique_ptr<LayerCache>> layers;
    for (int il = 0; il < g.n_layer; ++il) layers.push_back(make_kivi_layer_cache(g, o));
    return std::make_unique<KvCache>(spec.str(), g, cache_bytes_per_token(spec, g), std::move(layers));
  };
  t.bytes_per_token = [](const CacheSpec& spec, const CacheGeometry& g) {
    return kivi_bytes_per_token_head(kivi_options(spec), g.head_dim) * g.n_kv_head * g.n_layer;
  };
  t.fixed_bytes = [](const CacheSpec& spec, const CacheGeometry& g) {  // R + G - 1 f16 tokens
    const KiviOptions o = kivi_options(spec);
    double toks = (double)o.residual + o.group - 1;
    if (g.n_ctx > 0) toks = std::min(toks, (double)g.n_ctx);
    return toks * 4.0 * g.head_dim * g.n_kv_head * g.n_layer;
  };
  types.push_back(t);
}

}  // namespace h1bkv
