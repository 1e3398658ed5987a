#include "kv/caches/tiered.h"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cmath>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

#include "kv/caches/f16_ring.h"
#include "kv/codecs/float_kernels.h"
#include "tensor/vexp.h"
#include "util/error.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

namespace h1bkv {

namespace {

using Blocks = std::vector<std::unique_ptr<uint8_t[]>>;

// 32-byte aligned scratch
template <class T>
struct AlignedAllocT {
  using value_type = T;
  AlignedAllocT() = default;
  template <class U>
  AlignedAllocT(const AlignedAllocT<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(32))); }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(32)); }
  bool operator==(const AlignedAllocT&) const { return true; }
};
using AlignedAlloc = AlignedAllocT<float>;

class TieredCache : public TieredLayerCache {
 public:
  TieredCache(const CacheGeometry& g, std::unique_ptr<KeyCodec> kc, std::unique_ptr<ValueCodec> vc,
              TierOptions t)
      : TieredLayerCache(g), g_(g), kc_(std::move(kc)), vc_(std::move(vc)), tiers_(t),
        kbytes_(kc_->bytes_per_vector()), vbytes_(vc_->bytes_per_vector()),
        kblocks_(g.n_kv_head), vblocks_(g.n_kv_head), ring_((size_t)g.n_kv_head * g.head_dim),
        ex_lo_(t.sink) {
    check(t.sink >= 0 && t.window >= 0, "sink and window must be >= 0");
    check(g.n_head / g.n_kv_head <= kMaxGroup,
          "cache: at most " + std::to_string(kMaxGroup) + " query heads per KV head");
  }

  KeyCodec& key_codec() override { return *kc_; }
  const ValueCodec& value_codec() const override { return *vc_; }

  void do_append(int64_t n, const int32_t* pos, const float* k, const float* v) override {
    const int d = g_.head_dim, nkv = g_.n_kv_head;
    const size_t row = (size_t)nkv * d;  // f16 per token in the exact tier: [n_kv_head][d]
    if (tiers_.sink > 0 && sink_cap_ == 0) {
      sink_cap_ = std::min<int64_t>(tiers_.sink, g_.n_ctx);
      sink_k_.assign(sink_cap_ * row, 0);
      sink_v_.assign(sink_cap_ * row, 0);
    }
    if (tiers_.window > 0) {
      max_batch_ = std::max(max_batch_, n);
      ring_.grow(std::min(keep(), g_.n_ctx), ex_lo_, n_);  // a window past the context: n_ctx slots
    }
    for (int64_t i = 0; i < n; ++i) {
      const int64_t t = n_ + i, b = t / kBlockTokens, o = t % kBlockTokens;
      for (int h = 0; h < nkv; ++h) {
        if ((int64_t)kblocks_[h].size() <= b) {  // zeroed: codecs may read a whole block
          kblocks_[h].emplace_back(new uint8_t[kBlockTokens * kbytes_]());
          vblocks_[h].emplace_back(new uint8_t[kBlockTokens * vbytes_]());
        }
        kc_->encode_slot(k + (i * nkv + h) * d, h, kblocks_[h][b].get(), (int)o);
        vc_->encode(v + (i * nkv + h) * d, vblocks_[h][b].get() + o * vbytes_);
      }
      if (t < tiers_.sink) {
        for (size_t c = 0; c < row; ++c) {
          sink_k_[t * row + c] = f32_to_fp16(k[i * row + c]);
          sink_v_[t * row + c] = f32_to_fp16(v[i * row + c]);
        }
      } else if (tiers_.window > 0) {
        ring_.put(t, k + i * row, v + i * row);
      }
    }
    n_ += n;
    // ring slots hold [ex_lo_, n_); never claim tokens older than those still valid
    if (tiers_.window > 0) ex_lo_ = std::max({ex_lo_, tiers_.sink, n_ - keep()});
  }

  // Attention, one work item per (chunk of kChunk tokens, KV head, query): the group of query
  // heads sharing the KV head is scored and accumulated together (codes read and decoded once),
  // giving per head a partial softmax state (max m, sum s of exp(score - m), unnormalised
  // output o). A query's chunks are merged in chunk order by one fixed formula, whoever computes
  // them, so results depend only on the query's position and the held tokens: batched equals
  // token-by-token, for any number of threads.
  void do_attend(int64_t n_q, const int32_t* q_pos, const float* q, float scale,
                 float* out) override {
    const int d = g_.head_dim, nkv = g_.n_kv_head, G = g_.n_head / nkv;
    const std::vector<int32_t>& pos_ = positions();
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
        if (w0[i] < nvis[i] && w0[i] < ex_lo_) [[unlikely]]
          throw Error("cache window: query at position " + std::to_string(q_pos[i]) +
                      " needs exact copies of tokens older than the retained window");
      }
    }
    const size_t pf = kc_->query_prep_floats();
    const size_t part = (size_t)G * (d + 2);  // per item: G x {o[d], m, s}
    // Batches of queries bound the scratch (partial states and prepared queries).
    int64_t i0 = 0;
    while (i0 < n_q) {
      int64_t i1 = i0, items = 0;
      while (i1 < n_q && (i1 == i0 || ((i1 - i0) < kMaxBatchQueries &&
                                       items + n_chunks(nvis[i1]) * nkv <= kMaxBatchItems)))
        items += n_chunks(nvis[i1++]) * nkv;
      attend_batch(i0, i1, nvis, s_end, w0, q, scale, out, pf, part, items);
      i0 = i1;
    }
    if (!vscale_.empty()) {
      const size_t hd = (size_t)g_.n_head * d;
      for (int64_t i = 0; i < n_q; ++i)
        for (size_t e = 0; e < hd; ++e) out[i * hd + e] = std::fma(vscale_[e], out[i * hd + e], vbias_[e]);
    }
  }

  void set_output_affine(const std::vector<float>& scale, const std::vector<float>& bias) override {
    const size_t hd = (size_t)g_.n_head * g_.head_dim;
    check((scale.empty() || scale.size() == hd) && (bias.empty() || bias.size() == hd),
          "output affine: needs n_head x head_dim values");
    if (scale.empty() && bias.empty()) {
      vscale_.clear(), vbias_.clear();
      return;
    }
    vscale_ = scale.empty() ? std::vector<float>(hd, 1.0f) : scale;
    vbias_ = bias.empty() ? std::vector<float>(hd, 0.0f) : bias;
  }

 private:
  static constexpr int64_t kChunk = 256;  // tokens per work item (absolute, block aligned)
  static constexpr int64_t kMaxBatchQueries = 512, kMaxBatchItems = 16384;
  static int64_t n_chunks(int64_t nv) { return (nv + kChunk - 1) / kChunk; }

  void attend_batch(int64_t i0, int64_t i1, const std::vector<int64_t>& nvis,
                    const std::vector<int64_t>& s_end, const std::vector<int64_t>& w0,
                    const float* q, float scale, float* out, size_t pf, size_t part,
                    int64_t n_items) {
    const int d = g_.head_dim, nh = g_.n_head, nkv = g_.n_kv_head, G = nh / nkv;
    const int64_t nq = i1 - i0, npairs = nq * nkv;
    // items in chunk-major order (chunk, KV head, query): neighbours share key blocks
    int64_t max_ch = 0;
    for (int64_t i = i0; i < i1; ++i) max_ch = std::max(max_ch, n_chunks(nvis[i]));
    std::vector<int64_t> item_pair;
    std::vector<int32_t> item_chunk;
    item_pair.reserve(n_items), item_chunk.reserve(n_items);
    for (int64_t c = 0; c < max_ch; ++c)
      for (int hk = 0; hk < nkv; ++hk)
        for (int64_t i = i0; i < i1; ++i)
          if (c < n_chunks(nvis[i])) {
            const int64_t pr = (i - i0) * nkv + hk;
            item_pair.push_back(pr), item_chunk.push_back((int32_t)c);
          }
    // partial states, pair-major: chunk c of pair pr at pair_base[pr] + c
    std::vector<int64_t> pair_base(npairs + 1, 0);
    for (int64_t pr = 0; pr < npairs; ++pr)
      pair_base[pr + 1] = pair_base[pr] + n_chunks(nvis[i0 + pr / nkv]);
    std::vector<float> partial((size_t)n_items * part);
    std::vector<float> preps((size_t)npairs * G * pf);
    std::unique_ptr<std::atomic<int>[]> prep_state(new std::atomic<int>[npairs]);
    std::unique_ptr<std::atomic<int64_t>[]> done(new std::atomic<int64_t>[npairs]);
    for (int64_t pr = 0; pr < npairs; ++pr) prep_state[pr].store(0), done[pr].store(0);

    const int threads = pool_threads();
    parallel_for(n_items, 1, [&](int64_t it, int64_t) {  // one item per chunk, taken in order
      thread_local std::vector<float, AlignedAlloc> sc, qs;
      if (sc.size() < (size_t)G * kChunk) sc.resize((size_t)G * kChunk);
      if (qs.size() < (size_t)G * d) qs.resize((size_t)G * d);
      {
        const int64_t pr = item_pair[it], i = i0 + pr / nkv, c = item_chunk[it];
        const int hk = (int)(pr % nkv);
        const float* qh = q + (i * nh + (int64_t)hk * G) * d;  // the group's G query heads
        const float* prep = nullptr;
        if (pf > 0 && s_end[i] < w0[i]) {  // compressed tokens: the group's prepared queries
          float* pp = &preps[(size_t)pr * G * pf];
          int expect = 0;
          if (prep_state[pr].compare_exchange_strong(expect, 1, std::memory_order_acq_rel)) {
            for (int g = 0; g < G; ++g) kc_->prepare_query(qh + (size_t)g * d, hk * G + g, scale, pp + g * pf);
            prep_state[pr].store(2, std::memory_order_release);
          } else {
            while (prep_state[pr].load(std::memory_order_acquire) != 2) std::this_thread::yield();
          }
          prep = pp;
        }
        if (const int64_t nx = it + threads; nx < n_items) {
          // this thread's likely next item (items taken in order, equal items): its codes to L2
          const int64_t i2 = i0 + item_pair[nx] / nkv, c2 = item_chunk[nx];
          prefetch_codes((int)(item_pair[nx] % nkv), std::max(c2 * kChunk, s_end[i2]),
                         std::min((c2 + 1) * kChunk, w0[i2]));
        }
        float* st = &partial[(size_t)(pair_base[pr] + c) * part];
        chunk_state(c * kChunk, std::min(nvis[i], (c + 1) * kChunk), s_end[i], w0[i], hk, qh, scale,
                    prep, pf, sc.data(), qs.data(), st);
        // the last chunk of a pair to finish merges the pair's chunks (in chunk order)
        const int64_t nch = pair_base[pr + 1] - pair_base[pr];
        if (done[pr].fetch_add(1, std::memory_order_acq_rel) == nch - 1)
          merge(&partial[(size_t)pair_base[pr] * part], nch, out + (i * nh + (int64_t)hk * G) * d);
      }
    });
    // queries that see no token
    for (int64_t i = i0; i < i1; ++i)
      if (nvis[i] == 0) std::memset(out + i * nh * d, 0, sizeof(float) * nh * d);
  }

  // Partial softmax state of tokens [t0, t1) for the G query heads of KV head hk.
  // st: G x {o[d], m, s}.
  void chunk_state(int64_t t0, int64_t t1, int64_t s1, int64_t c1, int hk, const float* qh,
                   float scale, const float* prep, size_t pf, float* sc, float* qs, float* st) const {
    const int d = g_.head_dim, G = g_.n_head / g_.n_kv_head;
    const size_t row = (size_t)g_.n_kv_head * d;
    const int64_t L = t1 - t0, Lp = (L + 7) / 8 * 8;
    float* rows[kMaxGroup];
    const float* qsp[kMaxGroup];
    const float* preps[kMaxGroup];
    float* acc[kMaxGroup];
    const float* wts[kMaxGroup];
    for (int g = 0; g < G; ++g) {
      rows[g] = sc + (size_t)g * kChunk;
      qsp[g] = qs + (size_t)g * d;
      preps[g] = prep ? prep + g * pf : nullptr;
      acc[g] = st + (size_t)g * (d + 2);
    }
    const bool exact = t0 < s1 || t1 > c1;
    if (exact)
      for (int g = 0; g < G; ++g)
        for (int e = 0; e < d; ++e) qs[(size_t)g * d + e] = qh[(size_t)g * d + e] * scale;
    auto shift = [&](auto* const* p, int64_t off, auto** dst) {
      for (int g = 0; g < G; ++g) dst[g] = p[g] + off;
    };
    float* r[kMaxGroup];
    prefetch_codes(hk, std::max(t0, s1), std::min(t1, c1), true);
    // scores
    if (const int64_t a = t0, b = std::min(t1, s1); a < b) {
      shift(rows, a - t0, r);
      dot_f32_f16_group(qsp, G, &sink_k_[a * row + hk * d], row, b - a, d, r);
    }
    for_blocks(std::max(t0, s1), std::min(t1, c1), [&](int64_t b, int64_t lo, int64_t cnt) {
      const uint8_t* blk = kblocks_[hk][b].get();
      const int o = (int)(lo - b * kBlockTokens);
      shift(rows, lo - t0, r);
      kc_->score_block_group(preps, G, blk, o, (int)cnt, r);
    });
    ring_runs(std::max(t0, c1), t1, [&](int64_t t, int64_t slot, int64_t cnt) {
      shift(rows, t - t0, r);
      dot_f32_f16_group(qsp, G, ring_.k_slot(slot) + hk * d, row, cnt, d, r);
    });
    // softmax pieces: m = max, p = exp(score - m) in place, s = sum p
    for (int g = 0; g < G; ++g) {
      float* x = rows[g];
      for (int64_t t = L; t < Lp; ++t) x[t] = -INFINITY;  // padding: exp -> 0
      const float m = max_padded(x, Lp);
      acc[g][d] = m;
      acc[g][d + 1] = exp_sub_sum(x, Lp, m);
      std::memset(acc[g], 0, sizeof(float) * d);
    }
    // values
    if (const int64_t a = t0, b = std::min(t1, s1); a < b) {
      shift(rows, a - t0, r);
      for (int g = 0; g < G; ++g) wts[g] = r[g];
      axpy_f16_group(wts, G, &sink_v_[a * row + hk * d], row, b - a, d, acc);
    }
    for_blocks(std::max(t0, s1), std::min(t1, c1), [&](int64_t b, int64_t lo, int64_t cnt) {
      const uint8_t* blk = vblocks_[hk][b].get() + (lo - b * kBlockTokens) * vbytes_;
      shift(rows, lo - t0, r);
      for (int g = 0; g < G; ++g) wts[g] = r[g];
      vc_->accumulate_group(wts, G, blk, cnt, acc);
    });
    ring_runs(std::max(t0, c1), t1, [&](int64_t t, int64_t slot, int64_t cnt) {
      shift(rows, t - t0, r);
      for (int g = 0; g < G; ++g) wts[g] = r[g];
      axpy_f16_group(wts, G, ring_.v_slot(slot) + hk * d, row, cnt, d, acc);
    });
  }

  // out[g] = sum_c e_c o_c[g] / sum_c e_c s_c[g], e_c = exp(m_c[g] - max_c m_c[g]), c in order.
  void merge(const float* st, int64_t nch, float* out) const {
    const int d = g_.head_dim, G = g_.n_head / g_.n_kv_head;
    const size_t part = (size_t)G * (d + 2);
    for (int g = 0; g < G; ++g) {
      const float* s0 = st + (size_t)g * (d + 2);
      float* o = out + (size_t)g * d;
      float M = -INFINITY;
      for (int64_t c = 0; c < nch; ++c) M = std::max(M, s0[c * part + d]);
      float S = 0;
      std::memset(o, 0, sizeof(float) * d);
      for (int64_t c = 0; c < nch; ++c) {
        const float* sc = s0 + c * part;
        const float e = nch == 1 ? 1.0f : vexp_ref(sc[d] - M);
        S += e * sc[d + 1];
        axpy_f32(e, sc, o, d);
      }
      const float inv = 1.0f / S;
      for (int e = 0; e < d; ++e) o[e] *= inv;
    }
  }

  // Prefetches the compressed codes of tokens [t0, t1) of KV head hk (keys, then values), to L1
  // or to L2, so the misses of a cold cache overlap (many short block streams defeat the
  // hardware prefetcher).
  void prefetch_codes(int hk, int64_t t0, int64_t t1, bool l1 = false) const {
    auto pf = [l1](const uint8_t* p, size_t n) {
      for (size_t i = 0; i < n; i += 64) {
        if (l1) __builtin_prefetch(p + i, 0, 3);
        else __builtin_prefetch(p + i, 0, 2);
      }
    };
    for_blocks(t0, t1, [&](int64_t b, int64_t lo, int64_t cnt) { pf(kblocks_[hk][b].get(), kBlockTokens * kbytes_); });
    for_blocks(t0, t1, [&](int64_t b, int64_t lo, int64_t cnt) {
      pf(vblocks_[hk][b].get() + (lo - b * kBlockTokens) * vbytes_, cnt * vbytes_);
    });
  }

  // Calls f(token, ring slot, count) for the runs of [t0, t1) that are contiguous in the ring.
  template <class F>
  void ring_runs(int64_t t0, int64_t t1, F&& f) const {
    for (int64_t t = t0; t < t1;) {
      const int64_t slot = t % ring_.cap(), cnt = std::min(t1 - t, ring_.cap() - slot);
      f(t, slot, cnt);
      t += cnt;
    }
  }

 public:
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
    return (size_t)sink_cap_ * g_.n_kv_head * g_.head_dim * 4 + ring_.capacity_bytes();
  }
  void do_truncate(int64_t n) override {
    const std::vector<int32_t>& pos_ = positions();
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
    n_ = n;
    ex_lo_ = std::max(tiers_.sink, std::min(ex_lo_, n));
  }
  // The next query (past the newest token) needs at most the last W - 1 tokens exact: keep W,
  // what the formula counts, and the ring's slots for them; batches before count as one token.
  void do_settle() override {
    if (tiers_.window == 0 || n_ == 0) return;
    ex_lo_ = std::max({ex_lo_, tiers_.sink, n_ - tiers_.window});
    max_batch_ = 1;
    ring_.shrink(std::min(keep(), g_.n_ctx), ex_lo_, n_);
  }

 private:
  // Window tokens the ring must retain: W-1 older ones plus the largest batch since settle().
  int64_t keep() const { return tiers_.window - 1 + max_batch_; }

  // Calls f(block, first token, count) for the pieces of [t0, t1) in each block.
  template <class F>
  static void for_blocks(int64_t t0, int64_t t1, F&& f) {
    for (int64_t lo = t0; lo < t1;) {
      const int64_t b = lo / kBlockTokens, hi = std::min(t1, (b + 1) * kBlockTokens);
      f(b, lo, hi - lo);
      lo = hi;
    }
  }

  static constexpr int kMaxGroup = 64;
  CacheGeometry g_;
  std::unique_ptr<KeyCodec> kc_;
  std::unique_ptr<ValueCodec> vc_;
  TierOptions tiers_;
  size_t kbytes_, vbytes_;
  int64_t n_ = 0;  // tokens held (n_tokens() once an append completes)
  // [n_kv_head][block] -> block of kBlockTokens key codes (codec layout) / value codes
  // ([kBlockTokens][vbytes_])
  std::vector<Blocks> kblocks_, vblocks_;
  // exact tier, f16: sinks [sink_cap_][n_kv_head][d]; the ring holds tokens [ex_lo_, n_)
  std::vector<uint16_t> sink_k_, sink_v_;
  F16Ring ring_;
  std::vector<float> vscale_, vbias_;  // [n_head][d] output affine, or empty
  int64_t sink_cap_ = 0, ex_lo_ = 0, max_batch_ = 0;
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
