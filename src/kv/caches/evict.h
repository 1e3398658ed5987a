// Token eviction by heavy hitters: H2O (Zhang et al. 2023, "H2O: Heavy-Hitter Oracle for
// Efficient Generative Inference of Large Language Models"; the H1B-KV paper's SparseLLM
// baseline). Keys and values are stored f16, but at most a budget of B tokens per KV head.
//
// Rule, per layer and per KV head (H2O evicts per head). When token t is decoded:
//   1. it is appended to the held tokens;
//   2. the query of token t attends to the held tokens (the G query heads of the KV head's group,
//      scores q.k * scale, softmax in f32, as the seam defines);
//   3. each held token's accumulated score += the attention weights it just received, summed
//      over the G query heads;
//   4. while more than B tokens are held, the held token with the smallest accumulated score
//      that is neither a sink (index < sink) nor in the recent window (the last R = ceil(recent*B)
//      tokens, t-R < index <= t) is evicted (ties: the oldest). Evicted tokens are gone for good.
// Batches: append(n) then attend(n) (the model's order, per layer) processes the n queries in
// order inside attend(): query i sees the tokens held after step i-1 plus token i, then step i's
// eviction runs, so batched evaluation equals token-by-token decoding. Between append and attend
// the n new tokens wait, f16, outside the budget: memory may exceed B tokens within one batch.
// attend() must get exactly the queries of the tokens just appended (Error otherwise), and
// append() is an Error while appended tokens still wait for their queries.
//
// Budget: keep <= 1 is a fraction of the context, B = max(1, ceil(keep * n_ctx)); keep > 1 a
// whole token count (clamped to n_ctx). sink + R <= B is required (so one token is evictable).
// Bytes: a held token costs, per KV head, f16 K and V (4 * head_dim) plus its f32 accumulated
// score (4), counted in bytes(). The registry's bytes per token is that cost times
// min(1, B / n_ctx), all layers and KV heads: B tokens spread over the context, so the memory at
// n_ctx (and at another context, for fraction budgets) is bytes_per_token * context.
// n_tokens() is the number of tokens appended (the sequence length), not the number held.
// truncate(n): an Error (eviction cannot rewind) unless n >= n_tokens() (no-op) or n == 0
// (same as clear()).
#pragma once
#include <memory>
#include <vector>

#include "kv/cache.h"
#include "kv/registry.h"

namespace h1bkv {

struct EvictOptions {
  double keep = 0.125;  // budget: <= 1 fraction of n_ctx, > 1 token count
  double recent = 0.5;  // fraction of the budget kept as the most recent tokens
  int64_t sink = 0;     // first tokens never evicted (inside the budget)
};

EvictOptions evict_options(const CacheSpec& spec);
int64_t evict_budget(const EvictOptions& o, int64_t n_ctx);         // B, in [1, n_ctx]
int64_t evict_recent(const EvictOptions& o, int64_t budget);        // R = ceil(recent * B)
size_t evict_bytes_per_held_token(const CacheGeometry& g);          // one layer, all KV heads

class EvictLayerCache : public LayerCache {
 public:
  EvictLayerCache(const CacheGeometry& g, const EvictOptions& o);
  size_t bytes() const override;           // held (and waiting) tokens: f16 K, V + f32 score
  size_t capacity_bytes() const override;   // allocated slots (with token ids) and waiting buffer

  int64_t budget() const { return budget_; }
  int64_t recent() const { return recent_; }
  int64_t held() const { return held_; }  // tokens held per KV head (the same for every head)
  // Indices (order of appending) of the tokens KV head hk holds, ascending.
  std::vector<int64_t> held_tokens(int hk) const;

 private:
  void do_append(int64_t n, const int32_t* pos, const float* k, const float* v) override;
  void do_attend(int64_t n_q, const int32_t* q_pos, const float* q, float scale, float* out) override;
  void do_truncate(int64_t n) override;  // n == 0 only
  // One KV head: slots [0, held_) hold tokens in no particular order (an evicted slot takes the
  // last one), one more slot takes the token being decoded.
  struct Head {
    std::vector<uint16_t> k, v;  // [cap][head_dim] f16
    std::vector<float> score;    // [cap] accumulated attention
    std::vector<int32_t> tok;    // [cap] token index
  };
  void reserve_slots(int64_t need);
  // Runs the decoding steps of queries [0, n_q) for KV head hk, from `held` tokens held.
  int64_t decode_head(int hk, int64_t held, int64_t n_q, const float* q, float scale, float* out);

  CacheGeometry g_;
  EvictOptions o_;
  int64_t budget_ = 0, recent_ = 0;
  int64_t cap_ = 0;     // slots allocated per head (at most min(B + 1, n_ctx))
  int64_t held_ = 0;    // tokens held per head after the last step
  int64_t n_done_ = 0;  // tokens decoded (appended and attended)
  std::vector<Head> heads_;
  std::vector<uint16_t> pend_k_, pend_v_;  // [n][n_kv_head][head_dim] f16: appended, not yet attended
  std::vector<int32_t> pend_pos_;          // [n]
};

std::unique_ptr<KvCache> make_evict_cache(const CacheSpec& spec, const CacheGeometry& g);

}  // namespace h1bkv
