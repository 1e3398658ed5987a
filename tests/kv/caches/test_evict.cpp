// The H2O eviction cache (kv/evict_cache.h) against exact attention and against a
// straightforward reimplementation of the H2O rule in double.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "kv/caches/evict.h"
#include "kv/registry.h"
#include "kv/reference_attention.h"
#include "kv/random.h"
#include "util/error.h"
#include "util/fp16.h"

using namespace h1bkv;

namespace {

CacheGeometry geom(int n_head, int n_kv, int d, int64_t n_ctx) {
  CacheGeometry g;
  g.n_layer = 1, g.n_head = n_head, g.n_kv_head = n_kv, g.head_dim = d, g.n_ctx = n_ctx;
  return g;
}

// One sequence: k, v [n][n_kv][d], q [n][n_head][d], positions 3*i (not contiguous).
struct Seq {
  std::vector<float> k, v, q;
  std::vector<int32_t> pos;
};

Seq make_seq(const CacheGeometry& g, int64_t n, uint32_t seed) {
  Seq s;
  s.k = randn(n * g.n_kv_head * g.head_dim, seed);
  s.v = randn(n * g.n_kv_head * g.head_dim, seed + 1);
  s.q = randn(n * g.n_head * g.head_dim, seed + 2);
  for (float& x : s.q) x *= 2.0f;  // peakier softmax: real heavy hitters
  for (int64_t i = 0; i < n; ++i) s.pos.push_back((int32_t)(3 * i));
  return s;
}

float round_f16(float x) { return fp16_to_f32(f32_to_fp16(x)); }

// H2O by the letter, in double, one KV head at a time: held tokens as a list, scores by token.
class RefH2O {
 public:
  RefH2O(const CacheGeometry& g, int64_t budget, int64_t recent, int64_t sink)
      : g_(g), B_(budget), R_(recent), S_(sink), held_(g.n_kv_head), score_(g.n_kv_head) {}

  // Decodes token t (k, v, q of the sequence); out: [n_head][d].
  void step(const Seq& s, int64_t t, float scale, float* out) {
    const int d = g_.head_dim, G = g_.n_head / g_.n_kv_head;
    for (int hk = 0; hk < g_.n_kv_head; ++hk) {
      auto& held = held_[hk];
      held.push_back(t);
      score_[hk][t] = 0;
      for (int g = 0; g < G; ++g) {
        const int h = hk * G + g;
        std::vector<double> w;
        for (int64_t j : held) {
          double dot = 0;
          for (int c = 0; c < d; ++c)
            dot += (double)s.q[(t * g_.n_head + h) * d + c] * key(s, j, hk, c);
          w.push_back(dot * scale);
        }
        const double mx = *std::max_element(w.begin(), w.end());
        double sum = 0;
        for (double& x : w) sum += (x = std::exp(x - mx));
        for (int c = 0; c < d; ++c) {
          double acc = 0;
          for (size_t u = 0; u < held.size(); ++u) acc += w[u] / sum * val(s, held[u], hk, c);
          out[h * d + c] = (float)acc;
        }
        for (size_t u = 0; u < held.size(); ++u) score_[hk][held[u]] += w[u] / sum;
      }
      while ((int64_t)held.size() > B_) {
        int64_t victim = -1;
        for (int64_t j : held) {
          if (j < S_ || j > t - R_) continue;
          if (victim < 0 || score_[hk][j] < score_[hk][victim]) victim = j;  // held is ascending
        }
        ASSERT_GE(victim, 0);
        held.erase(std::find(held.begin(), held.end(), victim));
      }
    }
  }
  const std::vector<int64_t>& held(int hk) const { return held_[hk]; }

 private:
  double key(const Seq& s, int64_t t, int hk, int c) const {
    return round_f16(s.k[(t * g_.n_kv_head + hk) * g_.head_dim + c]);
  }
  double val(const Seq& s, int64_t t, int hk, int c) const {
    return round_f16(s.v[(t * g_.n_kv_head + hk) * g_.head_dim + c]);
  }
  CacheGeometry g_;
  int64_t B_, R_, S_;
  std::vector<std::vector<int64_t>> held_;       // [n_kv][held], ascending
  std::vector<std::map<int64_t, double>> score_;  // [n_kv] token -> accumulated attention
};

// Feeds tokens [t0, t0 + n) of s as one batch; out: [n][n_head][d].
void feed(EvictLayerCache& c, const CacheGeometry& g, const Seq& s, int64_t t0, int64_t n,
          float scale, float* out) {
  const size_t kr = (size_t)g.n_kv_head * g.head_dim, qr = (size_t)g.n_head * g.head_dim;
  c.append(n, &s.pos[t0], &s.k[t0 * kr], &s.v[t0 * kr]);
  c.attend(n, &s.pos[t0], &s.q[t0 * qr], scale, out);
}

struct Config {
  int n_head, n_kv, d;
  int64_t n_ctx, n;
  EvictOptions o;
};

std::vector<Config> configs() {
  return {{4, 2, 16, 64, 40, {8, 0.5, 0}},     // count budget, GQA 2
          {3, 1, 12, 64, 30, {6, 0.0, 2}},     // no recent window, sinks; d % 8 != 0
          {2, 2, 8, 40, 40, {0.25, 0.3, 1}},   // fraction: B = 10, R = 3
          {6, 2, 16, 64, 50, {12, 1.0, 0}}};   // all recent: a sliding window
}

}  // namespace

TEST(EvictCache, FullBudgetEqualsExactAttention) {
  const CacheGeometry g = geom(4, 2, 16, 48);
  const Seq s = make_seq(g, 48, 11);
  EvictLayerCache c(g, {1.0, 0.5, 0});
  ASSERT_EQ(c.budget(), 48);
  const float scale = 0.25f;
  std::vector<float> out(s.q.size());
  feed(c, g, s, 0, 30, scale, out.data());
  feed(c, g, s, 30, 18, scale, out.data() + 30 * g.n_head * g.head_dim);
  EXPECT_EQ(c.held(), 48);
  const auto ref = naive_attention(g, s.k, s.v, s.q, s.pos, s.pos, scale);
  for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], 2e-3) << i;
}

TEST(EvictCache, TokenByTokenMatchesReferenceH2O) {
  for (const Config& cf : configs()) {
    const CacheGeometry g = geom(cf.n_head, cf.n_kv, cf.d, cf.n_ctx);
    const Seq s = make_seq(g, cf.n, 21 + cf.d);
    EvictLayerCache c(g, cf.o);
    RefH2O ref(g, c.budget(), c.recent(), cf.o.sink);
    const float scale = 1.0f / std::sqrt((float)cf.d);
    const size_t qr = (size_t)g.n_head * g.head_dim;
    std::vector<float> out(qr), want(qr);
    for (int64_t t = 0; t < cf.n; ++t) {
      feed(c, g, s, t, 1, scale, out.data());
      ref.step(s, t, scale, want.data());
      ASSERT_EQ(c.held(), std::min<int64_t>(t + 1, c.budget())) << "step " << t;
      for (int hk = 0; hk < g.n_kv_head; ++hk) {
        const auto held = c.held_tokens(hk);
        ASSERT_EQ(held, ref.held(hk)) << "step " << t << " head " << hk;
        EXPECT_LE(held.back(), t);  // never a future token
      }
      for (size_t e = 0; e < qr; ++e) ASSERT_NEAR(out[e], want[e], 1e-4) << "step " << t;
    }
  }
}

TEST(EvictCache, RecentWindowAndSinksNeverEvicted) {
  const CacheGeometry g = geom(4, 2, 16, 80);
  Seq s = make_seq(g, 80, 5);
  // the sinks get almost no attention: the lightest tokens, evicted first but for the rule
  for (int64_t i = 0; i < 80; ++i)
    for (int h = 0; h < g.n_head; ++h) s.q[(i * g.n_head + h) * 16] = 3.0f;
  for (int64_t i = 0; i < 3; ++i)
    for (int h = 0; h < g.n_kv_head; ++h) s.k[(i * g.n_kv_head + h) * 16] = -4.0f;
  EvictLayerCache c(g, {10, 0.4, 3});  // B = 10, R = 4, 3 sinks
  ASSERT_EQ(c.recent(), 4);
  std::vector<float> out(g.n_head * g.head_dim);
  for (int64_t t = 0; t < 80; ++t) {
    feed(c, g, s, t, 1, 0.25f, out.data());
    for (int hk = 0; hk < g.n_kv_head; ++hk) {
      const auto held = c.held_tokens(hk);
      auto has = [&](int64_t j) { return std::binary_search(held.begin(), held.end(), j); };
      for (int64_t j = 0; j < std::min<int64_t>(3, t + 1); ++j) EXPECT_TRUE(has(j)) << "sink " << j;
      for (int64_t j = std::max<int64_t>(0, t - 3); j <= t; ++j) EXPECT_TRUE(has(j)) << "recent " << j;
    }
  }
}

TEST(EvictCache, BatchedEqualsTokenByToken) {
  for (const Config& cf : configs()) {
    const CacheGeometry g = geom(cf.n_head, cf.n_kv, cf.d, cf.n_ctx);
    const Seq s = make_seq(g, cf.n, 31 + cf.d);
    const float scale = 1.0f / std::sqrt((float)cf.d);
    const size_t qr = (size_t)g.n_head * g.head_dim;
    EvictLayerCache one(g, cf.o), batched(g, cf.o);
    std::vector<float> a(cf.n * qr), b(cf.n * qr);
    const int64_t sizes[] = {5, 1, 9, 3, 12, 2, 17, 40};
    int64_t t0 = 0;
    for (int64_t k = 0; t0 < cf.n; ++k) {
      const int64_t n = std::min(sizes[k % 8], cf.n - t0);
      feed(batched, g, s, t0, n, scale, b.data() + t0 * qr);
      for (int64_t t = t0; t < t0 + n; ++t) feed(one, g, s, t, 1, scale, a.data() + t * qr);
      t0 += n;
      ASSERT_EQ(batched.held(), std::min(t0, batched.budget()));  // exactly B once a batch is done
      for (int hk = 0; hk < g.n_kv_head; ++hk) ASSERT_EQ(batched.held_tokens(hk), one.held_tokens(hk));
    }
    for (size_t e = 0; e < a.size(); ++e) ASSERT_NEAR(a[e], b[e], 1e-6) << e;
  }
}

TEST(EvictCache, TruncateThrowsClearRestarts) {
  const CacheGeometry g = geom(2, 1, 8, 32);
  const Seq s = make_seq(g, 20, 9);
  EvictLayerCache c(g, {6, 0.5, 0});
  std::vector<float> first(20 * 2 * 8), again(20 * 2 * 8);
  feed(c, g, s, 0, 20, 0.3f, first.data());
  EXPECT_EQ(c.n_tokens(), 20);
  EXPECT_NO_THROW(c.truncate(20));
  EXPECT_THROW(c.truncate(19), Error);
  EXPECT_THROW(c.truncate(1), Error);
  EXPECT_EQ(c.held(), 6);
  c.clear();
  EXPECT_EQ(c.n_tokens(), 0);
  EXPECT_EQ(c.held(), 0);
  EXPECT_EQ(c.bytes(), 0u);
  feed(c, g, s, 0, 20, 0.3f, again.data());
  EXPECT_EQ(first, again);
}

TEST(EvictCache, SeamMisuseIsAnError) {
  const CacheGeometry g = geom(2, 1, 8, 32);
  const Seq s = make_seq(g, 4, 3);
  EvictLayerCache c(g, {2, 0.5, 0});
  std::vector<float> out(4 * 16);
  c.append(2, s.pos.data(), s.k.data(), s.v.data());
  EXPECT_THROW(c.append(1, &s.pos[2], &s.k[16], &s.v[16]), Error);  // queries of 2 still due
  EXPECT_THROW(c.attend(1, s.pos.data(), s.q.data(), 0.3f, out.data()), Error);
  const int32_t wrong[2] = {0, 4};
  EXPECT_THROW(c.attend(2, wrong, s.q.data(), 0.3f, out.data()), Error);
  EXPECT_NO_THROW(c.attend(2, s.pos.data(), s.q.data(), 0.3f, out.data()));
}

TEST(EvictCache, BytesAreHeldTokensTimesPerTokenBytes) {
  CacheGeometry g = geom(4, 2, 16, 64);
  g.n_layer = 3;
  const auto cache = make_cache(parse_cache_spec("evict:keep=0.25"), g);  // B = 16
  const size_t per = 2 * (4 * 16 + 4);  // per layer: 2 KV heads x (f16 K, V + f32 score)
  ASSERT_EQ(evict_bytes_per_held_token(g), per);
  EXPECT_DOUBLE_EQ(cache->bytes_per_token(), per * 3 * 0.25);
  const Seq s = make_seq(g, 40, 17);
  std::vector<float> out(40 * 4 * 16);
  for (int64_t t0 = 0; t0 < 40; t0 += 10) {
    for (int il = 0; il < 3; ++il) {
      auto& lc = dynamic_cast<EvictLayerCache&>(cache->layer(il));
      feed(lc, g, s, t0, 10, 0.25f, out.data());
      EXPECT_EQ(lc.bytes(), (size_t)lc.held() * per);
      EXPECT_GE(lc.capacity_bytes(), lc.bytes());
    }
    EXPECT_EQ(cache->bytes(), (size_t)std::min<int64_t>(t0 + 10, 16) * per * 3);
  }
  // a count budget: B / n_ctx of the f16 bytes
  EXPECT_DOUBLE_EQ(cache_bytes_per_token(parse_cache_spec("evict:keep=8"), g), per * 3 * 8.0 / 64);
}

TEST(EvictCache, OptionErrorsNameTheOption) {
  auto msg = [](const std::string& spec) {
    try {
      parse_cache_spec(spec);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg("evict:keep=0").find("'keep'"), std::string::npos);
  EXPECT_NE(msg("evict:keep=-1").find("'keep'"), std::string::npos);
  EXPECT_NE(msg("evict:keep=2.5").find("'keep'"), std::string::npos);
  EXPECT_NE(msg("evict:recent=1.5").find("'recent'"), std::string::npos);
  EXPECT_NE(msg("evict:recent=-0.1").find("'recent'"), std::string::npos);
  EXPECT_NE(msg("evict:sink=-1").find("'sink'"), std::string::npos);
  EXPECT_NE(msg("evict:keep=4,sink=3").find("'sink'"), std::string::npos);  // 3 + R 2 > 4
  EXPECT_NE(msg("evict:keep=x").find("'keep'"), std::string::npos);
  EXPECT_EQ(msg("evict:keep=0.5,recent=0.25,sink=4"), "no error");
  // a fraction budget is only known with the context: checked when the cache is made
  const CacheGeometry g = geom(2, 1, 8, 16);  // keep=0.125: B = 2, R = 1
  EXPECT_THROW(make_cache(parse_cache_spec("evict:sink=2"), g), Error);
  EXPECT_NO_THROW(make_cache(parse_cache_spec("evict:sink=1"), g));
  EXPECT_EQ(parse_cache_spec("evict:keep=0.25").str(), "evict:keep=0.25");
}
