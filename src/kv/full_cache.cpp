#include "kv/full_cache.h"

#include <omp.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <vector>

#include "util/error.h"

namespace h1bkv {

namespace {

class FullLayerCache : public LayerCache {
 public:
  FullLayerCache(const CacheGeometry& g, std::unique_ptr<KeyCodec> kc,
                 std::unique_ptr<ValueCodec> vc)
      : g_(g), kc_(std::move(kc)), vc_(std::move(vc)),
        kbytes_(kc_->bytes_per_vector()), vbytes_(vc_->bytes_per_vector()),
        kblocks_(g.n_kv_head), vblocks_(g.n_kv_head) {}

  void append(int64_t n, const int32_t* pos, const float* k, const float* v) override {
    check(n_ + n <= g_.n_ctx, "context overflow: " + std::to_string(n_ + n) +
                                  " tokens exceed the context size " + std::to_string(g_.n_ctx));
    const int d = g_.head_dim, nkv = g_.n_kv_head;
    for (int64_t i = 0; i < n; ++i) {
      assert(pos_.empty() || pos[i] > pos_.back());
      const int64_t t = n_ + i, b = t / kBlockTokens, o = t % kBlockTokens;
      for (int h = 0; h < nkv; ++h) {
        if ((int64_t)kblocks_[h].size() <= b) {
          kblocks_[h].emplace_back(new uint8_t[kBlockTokens * kbytes_]);
          vblocks_[h].emplace_back(new uint8_t[kBlockTokens * vbytes_]);
        }
        kc_->encode(k + (i * nkv + h) * d, h, kblocks_[h][b].get() + o * kbytes_);
        vc_->encode(v + (i * nkv + h) * d, vblocks_[h][b].get() + o * vbytes_);
      }
      pos_.push_back(pos[i]);
    }
    n_ += n;
  }

  void attend(int64_t n_q, const int32_t* q_pos, const float* q, float scale,
              float* out) override {
    const int d = g_.head_dim, nh = g_.n_head, group = g_.n_head / g_.n_kv_head;
    const int64_t pairs = n_q * nh;
#pragma omp parallel
    {
      // per-thread scratch: scores [n_tokens], prepared query
      std::vector<float> sc(std::max<int64_t>(n_, 1));
      std::vector<float> prep(kc_->query_prep_floats());
#pragma omp for schedule(dynamic, 1)
      for (int64_t p = 0; p < pairs; ++p) {
        const int64_t i = p / nh;
        const int h = (int)(p % nh), hk = h / group;
        const int64_t nvis = std::upper_bound(pos_.begin(), pos_.end(), q_pos[i]) - pos_.begin();
        float* o = out + p * d;
        std::memset(o, 0, sizeof(float) * d);
        if (nvis == 0) continue;
        kc_->prepare_query(q + p * d, h, scale, prep.data());
        for (int64_t t0 = 0; t0 < nvis; t0 += kBlockTokens) {
          const int64_t cnt = std::min(kBlockTokens, nvis - t0);
          kc_->score(prep.data(), kblocks_[hk][t0 / kBlockTokens].get(), cnt, sc.data() + t0);
        }
        float mx = -INFINITY;
        for (int64_t t = 0; t < nvis; ++t) mx = std::max(mx, sc[t]);
        float sum = 0;
        for (int64_t t = 0; t < nvis; ++t) {
          sc[t] = std::exp(sc[t] - mx);
          sum += sc[t];
        }
        const float inv = 1.0f / sum;
        for (int64_t t = 0; t < nvis; ++t) sc[t] *= inv;
        for (int64_t t0 = 0; t0 < nvis; t0 += kBlockTokens) {
          const int64_t cnt = std::min(kBlockTokens, nvis - t0);
          vc_->accumulate(sc.data() + t0, vblocks_[hk][t0 / kBlockTokens].get(), cnt, o);
        }
      }
    }
  }

  int64_t n_tokens() const override { return n_; }
  size_t bytes() const override { return (size_t)n_ * g_.n_kv_head * (kbytes_ + vbytes_); }
  size_t capacity_bytes() const override {
    size_t blocks = 0;
    for (const auto& b : kblocks_) blocks += b.size();
    return blocks * kBlockTokens * (kbytes_ + vbytes_);
  }
  void clear() override { truncate(0); }
  void truncate(int64_t n) override {
    if (n >= n_) return;
    const size_t keep_blocks = (size_t)((n + kBlockTokens - 1) / kBlockTokens);
    for (int h = 0; h < g_.n_kv_head; ++h) {
      kblocks_[h].resize(std::min(kblocks_[h].size(), keep_blocks));
      vblocks_[h].resize(std::min(vblocks_[h].size(), keep_blocks));
    }
    pos_.resize(n);
    n_ = n;
  }

 private:
  CacheGeometry g_;
  std::unique_ptr<KeyCodec> kc_;
  std::unique_ptr<ValueCodec> vc_;
  size_t kbytes_, vbytes_;
  int64_t n_ = 0;
  std::vector<int32_t> pos_;  // [n_] position of each held token, increasing
  // [n_kv_head][block] -> [kBlockTokens][kbytes_] key codes / [kBlockTokens][vbytes_] value codes
  std::vector<std::vector<std::unique_ptr<uint8_t[]>>> kblocks_, vblocks_;
};

}  // namespace

std::unique_ptr<LayerCache> make_full_layer_cache(const CacheGeometry& g,
                                                  std::unique_ptr<KeyCodec> kc,
                                                  std::unique_ptr<ValueCodec> vc) {
  return std::make_unique<FullLayerCache>(g, std::move(kc), std::move(vc));
}

}  // namespace h1bkv
