// Loki (kv/loki_cache.h): the Jacobi eigen solver, the PCA of recorded keys (centered), the cache
// against exact attention (full rank, all tokens), exact top-k on keys of a known low-rank
// subspace, the selection count and causality, batched == token-by-token, truncate, the basis
// file (round trip, load errors) and the registry's calibration check.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <numeric>
#include <sstream>

#include "kv/calib/loki_basis.h"
#include "kv/caches/loki.h"
#include "kv/registry.h"
#include "kv/calib/sym_eigen.h"
#include "kv/random.h"
#include "kv/reference_attention.h"
#include "util/error.h"

using namespace h1bkv;

namespace {

// A random orthonormal d x d matrix (rows): eigenvectors of a random symmetric matrix.
std::vector<float> random_rotation(int d, uint32_t seed) {
  const std::vector<float> x = randn((size_t)d * d, seed);
  std::vector<double> a((size_t)d * d);
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) a[(size_t)i * d + j] = x[(size_t)i * d + j] + x[(size_t)j * d + i];
  const SymEigen e = symmetric_eigen(a, d);
  return std::vector<float>(e.vectors.begin(), e.vectors.end());
}

LokiBasis random_basis(const CacheGeometry& g, uint32_t seed) {
  LokiBasis b;
  b.model_id = g.model_id;
  b.n_layer = g.n_layer, b.n_kv_head = g.n_kv_head, b.head_dim = g.head_dim;
  b.text = {"a.txt", "b.txt"};
  b.tokens = 1234;
  const int d = g.head_dim;
  for (int i = 0; i < g.n_layer * g.n_kv_head; ++i) {
    const auto r = random_rotation(d, seed + i);
    b.basis.insert(b.basis.end(), r.begin(), r.end());
    for (int j = 0; j < d; ++j) {
      b.mean.push_back(0.01f * j);
      b.explained.push_back((float)(j + 1) / d);
    }
  }
  return b;
}

CacheGeometry geometry(int d = 16, int64_t n_ctx = 256) {
  CacheGeometry g;
  g.n_layer = 1, g.n_head = 4, g.n_kv_head = 2, g.head_dim = d, g.n_ctx = n_ctx;
  return g;
}

std::vector<int32_t> iota_pos(int64_t n) {
  std::vector<int32_t> p(n);
  std::iota(p.begin(), p.end(), 0);
  return p;
}

std::vector<float> run_batched(KvCache& c, const CacheGeometry& g, const std::vector<float>& k,
                               const std::vector<float>& v, const std::vector<float>& q, int64_t n,
                               float scale) {
  const auto pos = iota_pos(n);
  c.layer(0).append(n, pos.data(), k.data(), v.data());
  std::vector<float> out(q.size());
  c.layer(0).attend(n, pos.data(), q.data(), scale, out.data());
  return out;
}

std::string temp_path(const std::string& name) { return ::testing::TempDir() + "/" + name; }

std::string read_all(const std::string& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST(SymEigen, RandomSymmetricMatrix) {
  const int n = 24;
  const std::vector<float> x = randn((size_t)n * n, 7);
  std::vector<double> a((size_t)n * n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) a[(size_t)i * n + j] = x[(size_t)i * n + j] + x[(size_t)j * n + i];
  const SymEigen e = symmetric_eigen(a, n);
  ASSERT_EQ(e.values.size(), (size_t)n);
  for (int j = 0; j + 1 < n; ++j) EXPECT_GE(e.values[j], e.values[j + 1]);
  for (int j = 0; j < n; ++j) {
    const double* v = &e.vectors[(size_t)j * n];
    for (int i = 0; i < n; ++i) {  // (A v)_i == lambda v_i
      double av = 0;
      for (int c = 0; c < n; ++c) av += a[(size_t)i * n + c] * v[c];
      EXPECT_NEAR(av, e.values[j] * v[i], 1e-10) << "eigenpair " << j;
    }
    for (int k = 0; k < n; ++k) {
      double dot = 0;
      for (int c = 0; c < n; ++c) dot += v[c] * e.vectors[(size_t)k * n + c];
      EXPECT_NEAR(dot, j == k ? 1.0 : 0.0, 1e-12);
    }
  }
  // trace == sum of eigenvalues
  double tr = 0, sum = 0;
  for (int i = 0; i < n; ++i) tr += a[(size_t)i * n + i], sum += e.values[i];
  EXPECT_NEAR(tr, sum, 1e-10);
}

TEST(SymEigen, KnownSmallCases) {
  const SymEigen e = symmetric_eigen({2, 1, 1, 2}, 2);
  EXPECT_NEAR(e.values[0], 3, 1e-14);
  EXPECT_NEAR(e.values[1], 1, 1e-14);
  EXPECT_NEAR(std::abs(e.vectors[0]), std::sqrt(0.5), 1e-14);
  EXPECT_NEAR(e.vectors[0], e.vectors[1], 1e-14);  // (1, 1) / sqrt 2 up to sign
  const SymEigen diag = symmetric_eigen({1, 0, 0, 0, 5, 0, 0, 0, 3}, 3);
  EXPECT_EQ(diag.values, (std::vector<double>{5, 3, 1}));
  EXPECT_EQ(diag.vectors[1], 1.0);  // row 0 = e_1
  EXPECT_THROW(symmetric_eigen({1, 2, 3}, 2), Error);
}

// Keys = mu + z e_0 with a large mean along e_1: the centered PCA's top direction is e_0 (an
// uncentered second moment would pick e_1), and the explained curve rises to 1.
TEST(LokiBasis, PcaIsCenteredAndSorted) {
  const int d = 8;
  KeyMoments m(d);
  const std::vector<float> z = randn(2000, 3), w = randn(2000 * d, 4);
  std::vector<float> k(2000 * d);
  for (int t = 0; t < 2000; ++t)
    for (int c = 0; c < d; ++c)
      k[t * d + c] = (c == 0 ? 2.0f * z[t] : 0.0f) + (c == 1 ? 10.0f : 0.0f) + 0.05f * w[t * d + c];
  m.add(k.data(), 2000, d);
  std::vector<float> basis(d * d), mean(d), ex(d);
  pca_from_moments(m, basis.data(), mean.data(), ex.data());
  EXPECT_GT(std::abs(basis[0]), 0.999f);  // row 0 ~ +-e_0
  EXPECT_NEAR(mean[1], 10.0f, 0.01f);
  EXPECT_GT(ex[0], 0.99f);
  for (int j = 0; j + 1 < d; ++j) EXPECT_LE(ex[j], ex[j + 1] + 1e-6f);
  EXPECT_NEAR(ex[d - 1], 1.0f, 1e-5f);
  EXPECT_THROW(pca_from_moments(KeyMoments(d), basis.data(), mean.data(), ex.data()), Error);
}

TEST(Loki, SelectCountAndTopK) {
  EXPECT_EQ(loki_select_count(0.125, 1), 1);
  EXPECT_EQ(loki_select_count(0.125, 8), 1);
  EXPECT_EQ(loki_select_count(0.125, 9), 2);
  EXPECT_EQ(loki_select_count(0.25, 100), 25);
  EXPECT_EQ(loki_select_count(5, 3), 3);
  EXPECT_EQ(loki_select_count(5, 30), 5);
  EXPECT_EQ(loki_select_count(1, 30), 30);  // 1 = every visible token (a fraction, as evict's keep)
  EXPECT_EQ(loki_select_count(2, 30), 2);
  const float s[] = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f, 2.0f};
  std::vector<int32_t> idx;
  loki_top_k(s, 6, 2, idx);  // ties at 2.0: the lower indices
  EXPECT_EQ(idx, (std::vector<int32_t>{1, 3}));
  loki_top_k(s, 6, 4, idx);
  EXPECT_EQ(idx, (std::vector<int32_t>{1, 3, 4, 5}));
  loki_top_k(s, 6, 6, idx);
  EXPECT_EQ(idx, (std::vector<int32_t>{0, 1, 2, 3, 4, 5}));
}

TEST(Loki, FullRankAllTokensIsExactAttention) {
  const CacheGeometry g = geometry(16);
  const int64_t n = 40;
  const size_t kv = (size_t)n * g.n_kv_head * g.head_dim, qs = (size_t)n * g.n_head * g.head_dim;
  const auto k = randn(kv, 1), v = randn(kv, 2), q = randn(qs, 3);
  auto c = make_loki_cache(parse_cache_spec("loki:r=16,k=100000"), g, random_basis(g, 10));
  const float scale = 0.25f;
  const auto out = run_batched(*c, g, k, v, q, n, scale);
  const auto ref = naive_attention(g, k, v, q, iota_pos(n), iota_pos(n), scale);
  for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], 3e-3) << i;
  EXPECT_EQ(c->bytes_per_token(), 16.0 * 2 * 2 * 2);  // f16's: [n_kv_head][d] keys + values
  EXPECT_EQ(c->bytes(), (size_t)n * 2 * 16 * 4);
}

// Keys in the span of the basis' first 4 rows: 4 coordinates score exactly, so the cache attends
// exactly the top-k tokens by exact score.
TEST(Loki, LowRankKeysSelectTheExactTopK) {
  const CacheGeometry g = geometry(16);
  const int d = g.head_dim, r = 4, nkv = g.n_kv_head, nh = g.n_head, group = nh / nkv;
  const int64_t n = 48, top = 6;
  const LokiBasis b = random_basis(g, 20);
  const auto coef = randn((size_t)n * nkv * r, 5), v = randn((size_t)n * nkv * d, 6),
             q = randn((size_t)n * nh * d, 7);
  std::vector<float> k((size_t)n * nkv * d, 0.0f);
  for (int64_t t = 0; t < n; ++t)
    for (int h = 0; h < nkv; ++h)
      for (int j = 0; j < r; ++j)
        for (int c = 0; c < d; ++c)
          k[(t * nkv + h) * d + c] += coef[(t * nkv + h) * r + j] * b.rows(0, h)[j * d + c];
  auto cache = make_loki_cache(parse_cache_spec("loki:r=4,k=6"), g, b);
  const float scale = 0.5f;
  const auto out = run_batched(*cache, g, k, v, q, n, scale);
  for (int64_t i = 0; i < n; ++i)
    for (int h = 0; h < nh; ++h) {
      const int hk = h / group;
      std::vector<double> e(i + 1);
      for (int64_t t = 0; t <= i; ++t) {
        double s = 0;
        for (int c = 0; c < d; ++c) s += (double)q[(i * nh + h) * d + c] * k[(t * nkv + hk) * d + c];
        e[t] = s * scale;
      }
      std::vector<int> idx(i + 1);
      std::iota(idx.begin(), idx.end(), 0);
      std::sort(idx.begin(), idx.end(), [&](int a, int c) { return e[a] > e[c]; });
      idx.resize(std::min<int64_t>(top, i + 1));
      double mx = -1e300, sum = 0;
      for (int t : idx) mx = std::max(mx, e[t]);
      for (int t : idx) sum += std::exp(e[t] - mx);
      for (int c = 0; c < d; ++c) {
        double acc = 0;
        for (int t : idx) acc += std::exp(e[t] - mx) / sum * v[(t * nkv + hk) * d + c];
        ASSERT_NEAR(out[(i * nh + h) * d + c], acc, 5e-3) << "query " << i << " head " << h;
      }
    }
}

// One-hot values (v_t = e_t): the output's support is the set of attended tokens.
TEST(Loki, AttendsExactlyKTokensAndNoFutureOne) {
  const CacheGeometry g = geometry(32);
  const int d = g.head_dim, nkv = g.n_kv_head, nh = g.n_head;
  const int64_t n = 30;
  std::vector<float> v((size_t)n * nkv * d, 0.0f);
  for (int64_t t = 0; t < n; ++t)
    for (int h = 0; h < nkv; ++h) v[(t * nkv + h) * d + t] = 1.0f;
  auto k = randn((size_t)n * nkv * d, 8), q = randn((size_t)n * nh * d, 9);
  for (auto& x : k) x *= 0.3f;
  for (const char* spec : {"loki:r=3,k=5", "loki:r=8,k=0.25", "loki:r=1,k=0.125"}) {
    const CacheSpec s = parse_cache_spec(spec);
    auto c = make_loki_cache(s, g, random_basis(g, 30));
    const auto out = run_batched(*c, g, k, v, q, n, 1.0f);
    for (int64_t i = 0; i < n; ++i)
      for (int h = 0; h < nh; ++h) {
        int64_t support = 0;
        for (int t = 0; t < d; ++t)
          if (out[(i * nh + h) * d + t] != 0.0f) {
            ++support;
            EXPECT_LE(t, i) << spec << ": query " << i << " attends future token " << t;
          }
        EXPECT_EQ(support, loki_select_count(s.get_float("k"), i + 1)) << spec << " query " << i;
      }
  }
}

// sink=S: the first S tokens are always among the k attended, even with the lowest scores.
TEST(Loki, SinksAreAlwaysSelected) {
  const CacheGeometry g = geometry(32);
  const int d = g.head_dim, nkv = g.n_kv_head, nh = g.n_head;
  const int64_t n = 30;
  std::vector<float> v((size_t)n * nkv * d, 0.0f);
  for (int64_t t = 0; t < n; ++t)
    for (int h = 0; h < nkv; ++h) v[(t * nkv + h) * d + t] = 1.0f;
  auto k = randn((size_t)n * nkv * d, 8), q = randn((size_t)n * nh * d, 9);
  for (int64_t t = 0; t < 2; ++t)  // the sinks' keys point away from every query: lowest scores
    for (int h = 0; h < nkv; ++h)
      for (int c = 0; c < d; ++c) k[(t * nkv + h) * d + c] = 0.0f;
  for (auto& x : q) x = std::fabs(x);
  for (auto& x : k) x = x == 0.0f ? -0.05f : std::fabs(x);  // sink weights small, not 0
  auto c = make_loki_cache(parse_cache_spec("loki:r=32,k=5,sink=2"), g, random_basis(g, 30));
  const auto out = run_batched(*c, g, k, v, q, n, 1.0f);
  auto plain = make_loki_cache(parse_cache_spec("loki:r=32,k=5"), g, random_basis(g, 30));  // exact ranking
  const auto out0 = run_batched(*plain, g, k, v, q, n, 1.0f);
  int64_t plain_sink_hits = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int h = 0; h < nh; ++h) {
      int64_t support = 0;
      for (int t = 0; t < d; ++t) support += out[(i * nh + h) * d + t] != 0.0f;
      EXPECT_EQ(support, std::min<int64_t>(5, i + 1)) << "query " << i;
      EXPECT_NE(out[(i * nh + h) * d + 0], 0.0f) << "query " << i << " head " << h;
      if (i >= 1) {
        EXPECT_NE(out[(i * nh + h) * d + 1], 0.0f) << "query " << i << " head " << h;
      }
      if (i >= 6) plain_sink_hits += out0[(i * nh + h) * d + 0] != 0.0f;
    }
  EXPECT_EQ(plain_sink_hits, 0);  // without sink=, the low-scoring first token is not selected
  EXPECT_THROW(parse_cache_spec("loki:sink=-1"), Error);
}

TEST(Loki, BatchedEqualsTokenByTokenAndTruncateRewinds) {
  const CacheGeometry g = geometry(16);
  const int d = g.head_dim, nkv = g.n_kv_head, nh = g.n_head;
  const int64_t n = 50;
  const auto k = randn((size_t)n * nkv * d, 11), v = randn((size_t)n * nkv * d, 12),
             q = randn((size_t)n * nh * d, 13);
  const LokiBasis b = random_basis(g, 40);
  const CacheSpec spec = parse_cache_spec("loki:r=4,k=0.25");
  auto batched = make_loki_cache(spec, g, b);
  const auto ref = run_batched(*batched, g, k, v, q, n, 0.3f);
  auto step = make_loki_cache(spec, g, b);
  std::vector<float> out(nh * d);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t p = (int32_t)i;
    step->layer(0).append(1, &p, &k[i * nkv * d], &v[i * nkv * d]);
    step->layer(0).attend(1, &p, &q[i * nh * d], 0.3f, out.data());
    ASSERT_EQ(std::memcmp(out.data(), &ref[i * nh * d], out.size() * 4), 0) << "token " << i;
  }
  // rewind 20 tokens and append them again: the same outputs
  batched->truncate(30);
  EXPECT_EQ(batched->n_tokens(), 30);
  const auto pos = iota_pos(n);
  batched->layer(0).append(20, &pos[30], &k[30 * nkv * d], &v[30 * nkv * d]);
  std::vector<float> again(20 * nh * d);
  batched->layer(0).attend(20, &pos[30], &q[30 * nh * d], 0.3f, again.data());
  EXPECT_EQ(std::memcmp(again.data(), &ref[30 * nh * d], again.size() * 4), 0);
}

TEST(LokiBasis, FileRoundTripAndRegistry) {
  CacheGeometry g = geometry(16);
  g.model_id = "model-abc";
  const LokiBasis b = random_basis(g, 50);
  const std::string path = temp_path("loki_roundtrip.json");
  save_loki_basis(path, b);
  const LokiBasis l = load_loki_basis(path);
  EXPECT_EQ(l.model_id, "model-abc");
  EXPECT_EQ(l.n_layer, 1);
  EXPECT_EQ(l.n_kv_head, 2);
  EXPECT_EQ(l.head_dim, 16);
  EXPECT_EQ(l.text, b.text);
  EXPECT_EQ(l.tokens, 1234);
  EXPECT_EQ(l.basis, b.basis);
  EXPECT_EQ(l.mean, b.mean);
  EXPECT_EQ(l.explained, b.explained);
  auto c = make_cache(parse_cache_spec("loki:r=4"), g, path);
  EXPECT_EQ(c->spec(), "loki:r=4");
  EXPECT_EQ(cache_fixed_bytes(parse_cache_spec("loki"), g), 2.0 * 16 * 16 * 4);
  CacheGeometry other = g;
  other.model_id = "model-xyz";
  try {
    make_cache(parse_cache_spec("loki"), other, path);
    FAIL() << "no error for another model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("made for another model"), std::string::npos) << e.what();
  }
  CacheGeometry wider = g;
  wider.n_kv_head = 4, wider.n_head = 8;
  EXPECT_THROW(make_cache(parse_cache_spec("loki"), wider, path), Error);
  EXPECT_THROW(make_cache(parse_cache_spec("loki:r=17"), g, path), Error);  // r > head_dim
}

TEST(LokiBasis, LoadErrorsNameTheFileAndField) {
  const CacheGeometry g = geometry(8);
  const std::string good = temp_path("loki_good.json");
  save_loki_basis(good, random_basis(g, 60));
  const std::string text = read_all(good);
  auto expect_load_error = [&](const std::string& name, const std::string& content,
                               const std::string& needle) {
    const std::string p = temp_path(name);
    std::ofstream(p) << content;
    try {
      load_loki_basis(p);
      FAIL() << name << ": no error";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(p), std::string::npos) << m;
      EXPECT_NE(m.find(needle), std::string::npos) << m;
    }
  };
  expect_load_error("loki_trunc.json", text.substr(0, text.size() / 2), "not valid JSON");
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string s = text;
    const size_t at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return s.replace(at, from.size(), to);
  };
  expect_load_error("loki_layers.json", replaced("\"n_layer\": 1", "\"n_layer\": 2"), "\"basis\"");
  expect_load_error("loki_dim.json", replaced("\"head_dim\": 8", "\"head_dim\": 0"), "\"head_dim\"");
  expect_load_error("loki_format.json", replaced("h1bkv-loki-basis", "h1bkv-calib"), "format");
  expect_load_error("loki_nobasis.json", replaced("\"basis\"", "\"basis_\""), "\"basis\"");
  const size_t at = text.find("\"basis\": \"") + 10;
  std::string bad = text;
  bad[at] = '*';
  expect_load_error("loki_b64.json", bad, "\"basis\"");
  std::string cut = text;  // drop 4 base64 characters: 3 bytes short
  cut.erase(at + 8, 4);
  expect_load_error("loki_short.json", cut, "\"basis\"");
  // a basis that is not a rotation
  LokiBasis skew = random_basis(g, 61);
  skew.basis[3] += 0.1f;
  save_loki_basis(temp_path("loki_skew.json"), skew);
  expect_load_error("loki_skew2.json", read_all(temp_path("loki_skew.json")), "orthonormal");
  EXPECT_THROW(load_loki_basis(temp_path("does_not_exist.json")), Error);
}

TEST(LokiRegistry, NeedsACalibrationFileAndValidOptions) {
  const CacheGeometry g = geometry(16);
  try {
    make_cache(parse_cache_spec("loki"), g, "");
    FAIL() << "no error without a calibration file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs a calibration file"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_cache_spec("loki:r=0"), Error);
  EXPECT_THROW(parse_cache_spec("loki:k=0"), Error);
  EXPECT_THROW(parse_cache_spec("loki:k=1.5"), Error);
  EXPECT_THROW(parse_cache_spec("loki:q=1"), Error);
  EXPECT_EQ(parse_cache_spec("loki:r=32,k=0.25").str(), "loki:r=32,k=0.25");
  EXPECT_EQ(cache_bytes_per_token(parse_cache_spec("loki"), g),
            cache_bytes_per_token(parse_cache_spec("f16"), g));
}
