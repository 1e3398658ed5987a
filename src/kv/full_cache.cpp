#include "kv/full_cache.h"

#include <omp.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <vector>

#include "kv/float_kernels.h"
#include "util/error.h"
#include "util/fp16.h"

namespace h1bkv {

namespace {

using Blocks = std::vector<std::unique_ptr<uint8_t[]>>;

class TieredCache : public TieredLayerCache {
 public:
  TieredCache(const CacheGeometry& g, std::unique_ptr<KeyCodec> kc, std::unique_ptr<ValueCodec> vc,
              TierOptions t)
      : g_(g), kc_(std::move(kc)), vc_(std::move(vc)), tiers_(t),
        kbytes_(kc_->bytes_per_vector()), vbytes_(vc_->bytes_per_vector()),
        kblocks_(g.n_kv_head), vblocks_(g.n_kv_head), ex_lo_(t.sink) {
    check(t.sink >= 0 && t.window >= 0, "sink and window must be >= 0");
  }

  KeyCodec& key_codec() override { return *kc_; }
  const ValueCodec& value_codec() const override { return *vc_; }

  void append(int64_t n, const int32_t* pos, const float* k, const float* v) override {
    check(n_ + n <= g_.n_ctx, "context overflow: " + std::to_string(n_ + n) +
                                  " tokens exceed the context size " + std::to_string(g_.n_ctx));
    const int d = g_.head_dim, nkv = g_.n_kv_head;
    const size_t row = (size_t)nkv * d;  // f16 per token in the exact tier: [n_kv_head][d]
    if (tiers_.sink > 0 && sink_cap_ == 0) {
      sink_cap_ = std::min<int64_t>(tiers_.sink, g_.n_ctx);
      sink_k_.assign(sink_cap_ * row, 0);
      sink_v_.assign(sink_cap_ * row, 0);
    }
    if (tiers_.window > 0) {
      max_batch_ = std::max(max_batch_, n);
      grow_ring(keep());
    }
    for (int64_t i = 0; i < n; ++i) {
      assert(pos_.empty() || pos[i] > pos_.back());
      const int64_t t = n_ + i, b = t / kBlockTokens, o = t % kBlockTokens;
      for (int h = 0; h < nkv; ++h) {
        if ((int64_t)kblocks_[h].size() <= b) {  // zeroed: codecs may read a whole block
          kblocks_[h].emplace_back(new uint8_t[kBlockTokens * kbytes_]());
          vblocks_[h].emplace_back(new uint8_t[kBlockTokens * vbytes_]());
        }
        kc_->encode_slot(k + (i * nkv + h) * d, h, kblocks_[h][b].get(), (int)o);
        vc_->encode(v + (i * nkv + h) * d, vblocks_[h][b].get() + o * vbytes_);
      }
      uint16_t *ek = nullptr, *ev = nullptr;
      if (t < tiers_.sink) {
        ek = &sink_k_[t * row], ev = &sink_v_[t * row];
      } else if (tiers_.window > 0) {
        ek = &ring_k_[(t % ring_cap_) * row], ev = &ring_v_[(t % ring_cap_) * row];
      }
      if (ek)
        for (size_t c = 0; c < row; ++c) {
          ek[c] = f32_to_fp16(k[i * row + c]);
          ev[c] = f32_to_fp16(v[i * row + c]);
        }
      pos_.push_back(pos[i]);
    }
    n_ += n;
    // ring slots hold [ex_lo_, n_); never claim tokens older than those still valid
    if (tiers_.window > 0) ex_lo_ = std::max({ex_lo_, tiers_.sink, n_ - keep()});
  }

  void attend(int64_t n_q, const int32_t* q_pos, const float* q, float scale,
              float* out) override {
    const int d = g_.head_dim, nh = g_.n_head, group = g_.n_head / g_.n_kv_head;
    const size_t row = (size_t)g_.n_kv_head * d;
    const int64_t pairs = n_q * nh;
    // per query: [0, s_end) sinks exact, [s_end, w0) compressed, [w0, nvis) window exact
    std::vector<int64_t> nvis(n_q), s_end(n_q), w0(n_q);
    for (int64_t i = 0; i < n_q; ++i) {
      nvis[i] = std::upper_bound(pos_.begin(), pos_.end(), q_pos[i]) - pos_.begin();
      s_end[i] = std::min(tiers_.sink, nvis[i]);
      w0[i] = nvis[i];
      if (tiers_.window > 0) {
        const int64_t thr = (int64_t)q_pos[i] - tiers_.window;  // exact iff pos > thr
        w0[i] = std::upper_bound(pos_.begin(), pos_.begin() + nvis[i], thr) - pos_.begin();
        w0[i] = std::max(w0[i], s_end[i]);
        check(w0[i] == nvis[i] || w0[i] >= ex_lo_,
              "cache window: query at position " + std::to_string(q_pos[i]) +
                  " needs exact copies of tokens older than the retained window");
      }
    }
#pragma omp parallel
    {
      // per-thread scratch: scores [n_tokens], prepared query (codec), scaled query (exact tier)
      std::vector<float> sc(std::max<int64_t>(n_, 1));
      std::vector<float> prep(kc_->query_prep_floats()), qs(d);
#pragma omp for schedule(dynamic, 1)
      for (int64_t p = 0; p < pairs; ++p) {
        const int64_t i = p / nh;
        const int h = (int)(p % nh), hk = h / group;
        const int64_t nv = nvis[i], s1 = s_end[i], c1 = w0[i];
        float* o = out + p * d;
        std::memset(o, 0, sizeof(float) * d);
        if (nv == 0) continue;
        if (s1 > 0 || c1 < nv)
          for (int c = 0; c < d; ++c) qs[c] = q[p * d + c] * scale;
        for (int64_t t = 0; t < s1; ++t) sc[t] = dot_f32_f16(qs.data(), &sink_k_[t * row + hk * d], d);
        if (s1 < c1) {
          kc_->prepare_query(q + p * d, h, scale, prep.data());
          for_blocks(s1, c1, [&](int64_t b, int64_t lo, int64_t cnt) {
            kc_->score_block(prep.data(), kblocks_[hk][b].get(), (int)(lo - b * kBlockTokens),
                             (int)cnt, sc.data() + lo);
          });
        }
        for (int64_t t = c1; t < nv; ++t)
          sc[t] = dot_f32_f16(qs.data(), &ring_k_[(t % ring_cap_) * row + hk * d], d);
        float mx = -INFINITY;
        for (int64_t t = 0; t < nv; ++t) mx = std::max(mx, sc[t]);
        float sum = 0;
        for (int64_t t = 0; t < nv; ++t) {
          sc[t] = std::exp(sc[t] - mx);
          sum += sc[t];
        }
        const float inv = 1.0f / sum;
        for (int64_t t = 0; t < nv; ++t) sc[t] *= inv;
        for (int64_t t = 0; t < s1; ++t) axpy_f16(sc[t], &sink_v_[t * row + hk * d], o, d);
        for_blocks(s1, c1, [&](int64_t b, int64_t lo, int64_t cnt) {
          vc_->accumulate(sc.data() + lo, vblocks_[hk][b].get() + (lo - b * kBlockTokens) * vbytes_,
                          cnt, o);
        });
        for (int64_t t = c1; t < nv; ++t)
          axpy_f16(sc[t], &ring_v_[(t % ring_cap_) * row + hk * d], o, d);
      }
    }
  }

  int64_t n_tokens() const override { return n_; }
  // Held: every token's codes, plus f16 K and V of the held sinks and retained window tokens.
  size_t bytes() const override { return (size_t)n_ * g_.n_kv_head * (kbytes_ + vbytes_) + tier_bytes(); }
  size_t capacity_bytes() const override {
    size_t blocks = 0;
    for (const auto& b : kblocks_) blocks += b.size();
    return blocks * kBlockTokens * (kbytes_ + vbytes_) + tier_capacity_bytes();
  }
  size_t tier_bytes() const override {
    const int64_t ring = tiers_.window > 0 ? std::max<int64_t>(0, n_ - ex_lo_) : 0;
    const int64_t held = std::min(n_, tiers_.sink) + ring;
    return (size_t)held * g_.n_kv_head * g_.head_dim * 4;  // f16 K + f16 V
  }
  size_t tier_capacity_bytes() const override {
    return (size_t)(sink_cap_ + ring_cap_) * g_.n_kv_head * g_.head_dim * 4;
  }
  void clear() override { truncate(0); }
  void truncate(int64_t n) override {
    if (n >= n_) return;
    if (n > 0 && tiers_.window > 0) {
      // the next token (pos > pos_[n-1]) needs exact copies of tokens with pos > pos_[n-1]+1-W
      const int64_t thr = (int64_t)pos_[n - 1] + 1 - tiers_.window;
      const int64_t need = std::max<int64_t>(
          tiers_.sink, std::upper_bound(pos_.begin(), pos_.begin() + n, thr) - pos_.begin());
      check(need >= n || need >= ex_lo_,
            "cannot rewind to " + std::to_string(n) + " tokens: the window's exact copies of "
            "older tokens were dropped (a rewind by at most the last batch appended always works)");
    }
    const size_t keep_blocks = (size_t)((n + kBlockTokens - 1) / kBlockTokens);
    for (int h = 0; h < g_.n_kv_head; ++h) {
      kblocks_[h].resize(std::min(kblocks_[h].size(), keep_blocks));
      vblocks_[h].resize(std::min(vblocks_[h].size(), keep_blocks));
    }
    pos_.resize(n);
    n_ = n;
    ex_lo_ = std::max(tiers_.sink, std::min(ex_lo_, n));
  }

 private:
  // Window tokens the ring must retain: W-1 older ones plus the largest batch.
  int64_t keep() const { return tiers_.window - 1 + max_batch_; }

  void grow_ring(int64_t cap) {
    if (cap <= ring_cap_) return;
    const size_t row = (size_t)g_.n_kv_head * g_.head_dim;
    std::vector<uint16_t> nk(cap * row), nv(cap * row);
    for (int64_t t = ex_lo_; t < n_; ++t) {
      std::memcpy(&nk[(t % cap) * row], &ring_k_[(t % ring_cap_) * row], row * 2);
      std::memcpy(&nv[(t % cap) * row], &ring_v_[(t % ring_cap_) * row], row * 2);
    }
    ring_k_.swap(nk);
    ring_v_.swap(nv);
    ring_cap_ = cap;
  }

  // Calls f(block, first token, count) for the pieces of [t0, t1) in each block.
  template <class F>
  static void for_blocks(int64_t t0, int64_t t1, F&& f) {
    for (int64_t lo = t0; lo < t1;) {
      const int64_t b = lo / kBlockTokens, hi = std::min(t1, (b + 1) * kBlockTokens);
      f(b, lo, hi - lo);
      lo = hi;
    }
  }

  CacheGeometry g_;
  std::unique_ptr<KeyCodec> kc_;
  std::unique_ptr<ValueCodec> vc_;
  TierOptions tiers_;
  size_t kbytes_, vbytes_;
  int64_t n_ = 0;
  std::vector<int32_t> pos_;  // [n_] position of each held token, increasing
  // [n_kv_head][block] -> block of kBlockTokens key codes (codec layout) / value codes
  // ([kBlockTokens][vbytes_])
  std::vector<Blocks> kblocks_, vblocks_;
  // exact tier, f16: sinks [sink_cap_][n_kv_head][d]; ring [ring_cap_][n_kv_head][d] holding
  // tokens [ex_lo_, n_) at slot t % ring_cap_
  std::vector<uint16_t> sink_k_, sink_v_, ring_k_, ring_v_;
  int64_t sink_cap_ = 0, ring_cap_ = 0, ex_lo_ = 0, max_batch_ = 0;
};

}  // namespace

std::unique_ptr<TieredLayerCache> make_tiered_layer_cache(const CacheGeometry& g,
                                                          std::unique_ptr<KeyCodec> kc,
                                                          std::unique_ptr<ValueCodec> vc,
                                                          TierOptions tiers) {
  return std::make_unique<TieredCache>(g, std::move(kc), std::move(vc), tiers);
}

std::unique_ptr<LayerCache> make_full_layer_cache(const CacheGeometry& g,
                                                  std::unique_ptr<KeyCodec> kc,
                                                  std::unique_ptr<ValueCodec> vc) {
  return make_tiered_layer_cache(g, std::move(kc), std::move(vc));
}

}  // namespace h1bkv
