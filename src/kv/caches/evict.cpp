// H2O token eviction (see evict_cache.h for the rule and the byte formula).
#include "kv/caches/evict.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>

#include "kv/registry.h"
#include "kv/codecs/float_kernels.h"
#include "tensor/vexp.h"
#include "util/error.h"
#include "util/thread_pool.h"
#include "util/fp16.h"

namespace h1bkv {

EvictOptions evict_options(const CacheSpec& spec) {
  EvictOptions o;
  o.keep = spec.get_float("keep");
  o.recent = spec.get_float("recent");
  o.sink = spec.get_int("sink");
  return o;
}

int64_t evict_budget(const EvictOptions& o, int64_t n_ctx) {
  const int64_t b = o.keep <= 1.0 ? (int64_t)std::ceil(o.keep * (double)n_ctx - 1e-9)
                                  : (int64_t)o.keep;
  return std::clamp<int64_t>(b, 1, std::max<int64_t>(1, n_ctx));
}

int64_t evict_recent(const EvictOptions& o, int64_t budget) {
  return std::min<int64_t>(budget, (int64_t)std::ceil(o.recent * (double)budget - 1e-9));
}

size_t evict_bytes_per_held_token(const CacheGeometry& g) {
  return (size_t)g.n_kv_head * (4 * (size_t)g.head_dim + sizeof(float));
}

namespace {

void validate_evict_spec(const CacheSpec& spec) {
  const EvictOptions o = evict_options(spec);
  check(o.keep > 0, "cache 'evict' option 'keep' must be > 0 (a fraction <= 1 or a token count)");
  check(o.keep <= 1 || o.keep == std::floor(o.keep),
        "cache 'evict' option 'keep' above 1 is a token count and must be a whole number");
  check(o.recent >= 0 && o.recent <= 1, "cache 'evict' option 'recent' must be in [0, 1]");
  check(o.sink >= 0, "cache 'evict' option 'sink' must be >= 0");
  if (o.keep > 1) {
    const int64_t b = (int64_t)o.keep;
    check(o.sink + evict_recent(o, b) <= b,
          "cache 'evict' options 'sink' + 'recent' leave no token of the budget evictable");
  }
}

}  // namespace

EvictLayerCache::EvictLayerCache(const CacheGeometry& g, const EvictOptions& o)
    : LayerCache(g), g_(g), o_(o), budget_(evict_budget(o, g.n_ctx)), recent_(evict_recent(o, budget_)),
      heads_(g.n_kv_head) {
  check(o.sink >= 0 && o.sink + recent_ <= budget_,
        "cache 'evict' options 'sink' (" + std::to_string(o.sink) + ") + 'recent' (" +
            std::to_string(recent_) + " tokens) exceed the budget 'keep' (" +
            std::to_string(budget_) + " tokens): no token would be evictable");
}

void EvictLayerCache::do_append(int64_t n, const int32_t* pos, const float* k, const float* v) {
  // invariant of the seam's use (model.cpp: append then attend, per layer and batch)
  check(pend_pos_.empty(), "evict cache: append while " + std::to_string(pend_pos_.size()) +
                               " appended tokens still wait for their queries");
  const size_t row = (size_t)g_.n_kv_head * g_.head_dim;
  pend_k_.resize(n * row);
  pend_v_.resize(n * row);
  for (size_t c = 0; c < n * row; ++c) {
    pend_k_[c] = f32_to_fp16(k[c]);
    pend_v_[c] = f32_to_fp16(v[c]);
  }
  pend_pos_.assign(pos, pos + n);
}

void EvictLayerCache::reserve_slots(int64_t need) {
  if (need <= cap_) return;
  const int64_t most = std::min(budget_ + 1, g_.n_ctx);
  const int64_t cap = std::min(most, std::max({need, 2 * cap_, (int64_t)16}));
  assert(need <= cap);
  const size_t d = g_.head_dim;
  for (Head& h : heads_) {
    h.k.resize(cap * d);
    h.v.resize(cap * d);
    h.score.resize(cap);
    h.tok.resize(cap);
  }
  cap_ = cap;
}

void EvictLayerCache::do_attend(int64_t n_q, const int32_t* q_pos, const float* q, float scale,
                             float* out) {
  if (n_q != (int64_t)pend_pos_.size()) [[unlikely]]
    throw Error("evict cache: attend for " + std::to_string(n_q) + " queries, but " +
                std::to_string(pend_pos_.size()) + " tokens were appended (each step needs its query)");
  for (int64_t i = 0; i < n_q; ++i)
    if (q_pos[i] != pend_pos_[i]) [[unlikely]]
      throw Error("evict cache: query position " + std::to_string(q_pos[i]) +
                  " is not the appended token's " + std::to_string(pend_pos_[i]));
  if (n_q == 0) return;
  reserve_slots(std::min(held_ + n_q, budget_ + 1));
  const int nkv = g_.n_kv_head;
  std::vector<int64_t> held_after(nkv);
  parallel_for(nkv, 1, [&](int64_t h0, int64_t h1) {
    for (int64_t hk = h0; hk < h1; ++hk) held_after[hk] = decode_head((int)hk, held_, n_q, q, scale, out);
  });
  for (int hk = 1; hk < nkv; ++hk) assert(held_after[hk] == held_after[0]);
  held_ = held_after[0];
  n_done_ += n_q;
  pend_pos_.clear();
}

int64_t EvictLayerCache::decode_head(int hk, int64_t held, int64_t n_q, const float* q, float scale,
                                     float* out) {
  const int d = g_.head_dim, nh = g_.n_head, nkv = g_.n_kv_head, G = nh / nkv;
  const size_t row = (size_t)nkv * d;
  Head& h = heads_[hk];
  std::vector<float> qs((size_t)G * d), w((size_t)G * cap_);  // [G][d] scaled queries, [G][cap] weights
  std::vector<const float*> qp(G), wp(G);
  std::vector<float*> wr(G), op(G);
  for (int g = 0; g < G; ++g) {
    qp[g] = &qs[(size_t)g * d];
    wr[g] = &w[(size_t)g * cap_];
    wp[g] = wr[g];
  }
  for (int64_t i = 0; i < n_q; ++i) {
    const int64_t t = n_done_ + i;  // token index of this step
    // 1. append token t in slot `held`
    assert(held < cap_ && held <= budget_);
    std::memcpy(&h.k[held * d], &pend_k_[i * row + (size_t)hk * d], 2 * d);
    std::memcpy(&h.v[held * d], &pend_v_[i * row + (size_t)hk * d], 2 * d);
    h.score[held] = 0;
    h.tok[held] = (int32_t)t;
    const int64_t n = ++held;
    // 2. attention of the group's G query heads over the n held tokens
    const float* qh = q + (i * nh + (int64_t)hk * G) * d;  // [G][d]
    for (size_t e = 0; e < (size_t)G * d; ++e) qs[e] = qh[e] * scale;
    dot_f32_f16_group(qp.data(), G, h.k.data(), d, n, d, wr.data());
    for (int g = 0; g < G; ++g) {
      float* x = wr[g];
      const float m = *std::max_element(x, x + n);
      for (int64_t s = 0; s < n; ++s) x[s] -= m;
      vexp(x, x, n);
      float sum = 0;
      for (int64_t s = 0; s < n; ++s) sum += x[s];
      const float inv = 1.0f / sum;
      for (int64_t s = 0; s < n; ++s) x[s] *= inv;  // softmax weights
      op[g] = out + (i * nh + (int64_t)hk * G + g) * d;
      std::memset(op[g], 0, sizeof(float) * d);
    }
    axpy_f16_group(wp.data(), G, h.v.data(), d, n, d, op.data());
    // 3. accumulated attention, summed over the group
    for (int g = 0; g < G; ++g)
      for (int64_t s = 0; s < n; ++s) h.score[s] += wr[g][s];
    // 4. evict one token when over budget (one token was added, so one suffices)
    if (held > budget_) {
      const int64_t recent_lo = t + 1 - recent_;  // tokens with index >= recent_lo are recent
      int64_t victim = -1;
      for (int64_t s = 0; s < n; ++s) {
        const int64_t tk = h.tok[s];
        if (tk < o_.sink || tk >= recent_lo) continue;
        if (victim < 0 || h.score[s] < h.score[victim] ||
            (h.score[s] == h.score[victim] && tk < h.tok[victim]))
          victim = s;
      }
      assert(victim >= 0);  // sink + recent <= budget (constructor)
      const int64_t last = --held;
      if (victim != last) {
        std::memcpy(&h.k[victim * d], &h.k[last * d], 2 * d);
        std::memcpy(&h.v[victim * d], &h.v[last * d], 2 * d);
        h.score[victim] = h.score[last];
        h.tok[victim] = h.tok[last];
      }
    }
  }
  return held;
}

size_t EvictLayerCache::bytes() const {
  const size_t per = evict_bytes_per_held_token(g_);
  return (size_t)held_ * per + pend_pos_.size() * (size_t)g_.n_kv_head * 4 * g_.head_dim;
}

size_t EvictLayerCache::capacity_bytes() const {
  const size_t slot = evict_bytes_per_held_token(g_) + (size_t)g_.n_kv_head * sizeof(int32_t);  // + token ids
  return (size_t)cap_ * slot + (pend_k_.capacity() + pend_v_.capacity()) * 2;
}

void EvictLayerCache::do_truncate(int64_t n) {
  check(n == 0, "evict cache cannot rewind to " + std::to_string(n) + " of " +
                    std::to_string(n_tokens()) + " tokens: evicted tokens are gone");
  held_ = n_done_ = 0;
  pend_pos_.clear();
}

std::vector<int64_t> EvictLayerCache::held_tokens(int hk) const {
  const Head& h = heads_[hk];
  std::vector<int64_t> r(h.tok.begin(), h.tok.begin() + held_);
  std::sort(r.begin(), r.end());
  return r;
}

std::unique_ptr<KvCache> make_evict_cache(const CacheSpec& spec, const CacheGeometry& g) {
  const EvictOptions o = evict_options(spec);
  std::vector<std::unique_ptr<LayerCache>> layers;
  for (int il = 0; il < g.n_layer; ++il) layers.push_back(std::make_unique<EvictLayerCache>(g, o));
  return std::make_unique<KvCache>(spec.str(), g, cache_bytes_per_token(spec, g), std::move(layers));
}

void add_evict_cache_types(std::vector<CacheTypeDef>& types) {
  CacheTypeDef t;
  t.name = "evict";
  t.help = "H2O token eviction: f16 keys and values of at most a budget of heavy-hitter and recent tokens";
  t.options = {{"keep", "float", "0.125", "budget: <= 1 a fraction of the context, > 1 a token count", 0, kMaxCount, true},
               {"recent", "float", "0.5", "fraction of the budget kept as the most recent tokens", 0, 1},
               {"sink", "int", "0", "first tokens never evicted (inside the budget)", 0, kMaxCount}};
  t.color = "#ff7f0e";
  t.context_sized = true;
  t.examples = {"evict", "evict:keep=64,recent=0.5,sink=4", "evict:keep=0.5,recent=0.25"};
  t.exact_examples = {"evict:keep=1"};  // the budget is the whole context: nothing is evicted
  t.validate = validate_evict_spec;
  t.make = [](const CacheSpec& spec, const CacheGeometry& g, const std::string&) {
    return make_evict_cache(spec, g);
  };
  t.bytes_per_token = [](const CacheSpec& spec, const CacheGeometry& g) {
    const double frac = std::min(1.0, (double)evict_budget(evict_options(spec), g.n_ctx) / (double)g.n_ctx);
    return (double)evict_bytes_per_held_token(g) * g.n_layer * frac;
  };
  types.push_back(t);
}

}  // namespace h1bkv
