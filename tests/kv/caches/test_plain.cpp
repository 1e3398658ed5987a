// The all-tokens cache with f32/f16 codecs: kernels vs scalar references, attention vs a naive
// double-precision reference, batched == token-by-token, bytes, errors.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kv/cache.h"
#include "kv/codecs/float_kernels.h"
#include "kv/registry.h"
#include "util/error.h"
#include "util/fp16.h"

#include "kv/random.h"
#include "kv/reference_attention.h"

using namespace h1bkv;

namespace {

CacheGeometry geom(int d = 64, int64_t ctx = 300) { return CacheGeometry{2, 6, 2, d, ctx}; }

}  // namespace

TEST(FloatKernels, Avx2MatchesScalar) {
  for (int n : {8, 64, 67, 128}) {
    auto a = randn(n, 1), b = randn(n, 2);
    std::vector<uint16_t> bh(n);
    for (int i = 0; i < n; ++i) bh[i] = f32_to_fp16(b[i]);
    EXPECT_NEAR(dot_f32(a.data(), b.data(), n), dot_f32_ref(a.data(), b.data(), n), 1e-4);
    EXPECT_NEAR(dot_f32_f16(a.data(), bh.data(), n), dot_f32_f16_ref(a.data(), bh.data(), n), 1e-4);
    std::vector<float> o1(n, 0.5f), o2(n, 0.5f), o3(n, 0.5f), o4(n, 0.5f);
    axpy_f32(0.3f, a.data(), o1.data(), n);
    axpy_f32_ref(0.3f, a.data(), o2.data(), n);
    axpy_f16(0.3f, bh.data(), o3.data(), n);
    axpy_f16_ref(0.3f, bh.data(), o4.data(), n);
    for (int i = 0; i < n; ++i) {
      EXPECT_NEAR(o1[i], o2[i], 1e-6);
      EXPECT_NEAR(o3[i], o4[i], 1e-6);
    }
  }
}

TEST(Fp16, ScalarMatchesF16C) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> u;
  for (int i = 0; i < 200000; ++i) {
    uint32_t bits = u(rng);
    float f;
    std::memcpy(&f, &bits, 4);
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_fp16_scalar(f), f32_to_fp16(f)) << f;
  }
  for (uint32_t h = 0; h < 65536; ++h) {
    const float a = fp16_to_f32_scalar((uint16_t)h), b = fp16_to_f32((uint16_t)h);
    if (std::isnan(a)) { ASSERT_TRUE(std::isnan(b)); continue; }
    ASSERT_EQ(a, b) << h;
  }
}

class FloatCacheTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FloatCacheTest, MatchesNaiveAttention) {
  const CacheGeometry g = geom();
  auto cache = make_cache(parse_cache_spec(GetParam()), g);
  const int n = 150, d = g.head_dim;
  auto k = randn((size_t)n * g.n_kv_head * d, 3), v = randn((size_t)n * g.n_kv_head * d, 4);
  auto q = randn((size_t)n * g.n_head * d, 5);
  std::vector<int32_t> pos(n);
  for (int i = 0; i < n; ++i) pos[i] = i;
  std::vector<float> out(q.size());
  const float scale = 1.0f / 8;
  cache->layer(1).append(n, pos.data(), k.data(), v.data());
  cache->layer(1).attend(n, pos.data(), q.data(), scale, out.data());
  const auto ref = naive_attention(g, k, v, q, pos, pos, scale);
  const double tol = GetParam() == "f32" ? 1e-5 : 5e-3;  // f16 rounding of K and V
  for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], tol) << i;
}

TEST_P(FloatCacheTest, BatchedEqualsTokenByToken) {
  const CacheGeometry g = geom();
  auto a = make_cache(parse_cache_spec(GetParam()), g);
  auto b = make_cache(parse_cache_spec(GetParam()), g);
  const int n = 100, d = g.head_dim, kvs = g.n_kv_head * d, qs = g.n_head * d;
  auto k = randn((size_t)n * kvs, 6), v = randn((size_t)n * kvs, 7), q = randn((size_t)n * qs, 8);
  std::vector<int32_t> pos(n);
  for (int i = 0; i < n; ++i) pos[i] = i;
  std::vector<float> out_a(q.size()), out_b(q.size());
  a->layer(0).append(n, pos.data(), k.data(), v.data());
  a->layer(0).attend(n, pos.data(), q.data(), 0.125f, out_a.data());
  for (int i = 0; i < n; ++i) {
    b->layer(0).append(1, &pos[i], k.data() + i * kvs, v.data() + i * kvs);
    b->layer(0).attend(1, &pos[i], q.data() + i * qs, 0.125f, out_b.data() + i * qs);
  }
  for (size_t i = 0; i < out_a.size(); ++i) ASSERT_EQ(out_a[i], out_b[i]) << i;
}

TEST_P(FloatCacheTest, TruncateThenAppendEqualsFresh) {
  const CacheGeometry g = geom();
  auto a = make_cache(parse_cache_spec(GetParam()), g);
  auto b = make_cache(parse_cache_spec(GetParam()), g);
  const int n = 130, d = g.head_dim, kvs = g.n_kv_head * d;
  auto k = randn((size_t)n * kvs, 9), v = randn((size_t)n * kvs, 10), q = randn(g.n_head * d, 11);
  auto k2 = randn((size_t)n * kvs, 12);
  std::vector<int32_t> pos(n);
  for (int i = 0; i < n; ++i) pos[i] = i;
  a->layer(0).append(n, pos.data(), k.data(), v.data());
  a->truncate(70);  // drop tokens 70.., then append other keys there
  EXPECT_EQ(a->n_tokens(), 70);
  a->layer(0).append(n - 70, pos.data() + 70, k2.data() + 70 * kvs, v.data() + 70 * kvs);
  b->layer(0).append(70, pos.data(), k.data(), v.data());
  b->layer(0).append(n - 70, pos.data() + 70, k2.data() + 70 * kvs, v.data() + 70 * kvs);
  std::vector<float> oa(g.n_head * d), ob(g.n_head * d);
  const int32_t qp = n - 1;
  a->layer(0).attend(1, &qp, q.data(), 0.125f, oa.data());
  b->layer(0).attend(1, &qp, q.data(), 0.125f, ob.data());
  EXPECT_EQ(oa, ob);
}

INSTANTIATE_TEST_SUITE_P(Codecs, FloatCacheTest, ::testing::Values("f32", "f16", "plain:k=f16,v=f32"));

TEST(CacheBytes, FormulaEqualsHeldAndAllocated) {
  // SmolLM2-135M geometry: 30 layers x 3 KV heads x 64 dims; f16 K+V = 30*3*64*2*2 bytes/token
  const CacheGeometry g{30, 9, 3, 64, 1000};
  auto c = make_cache(parse_cache_spec("f16"), g);
  EXPECT_EQ(c->bytes_per_token(), 23040.0);
  EXPECT_EQ(cache_bytes_per_token(parse_cache_spec("f32"), g), 46080.0);
  EXPECT_EQ(cache_bytes_per_token(parse_cache_spec("plain:k=f32,v=f16"), g), 34560.0);
  const int n = 100, kvs = g.n_kv_head * g.head_dim;
  auto k = randn((size_t)n * kvs, 1);
  std::vector<int32_t> pos(n);
  for (int i = 0; i < n; ++i) pos[i] = i;
  for (int il = 0; il < g.n_layer; ++il) c->layer(il).append(n, pos.data(), k.data(), k.data());
  EXPECT_EQ(c->bytes(), (size_t)(23040 * n));
  EXPECT_EQ(c->capacity_bytes(), (size_t)(23040 * 128));  // two whole 64-token blocks
}

TEST(CacheErrors, OverflowIsAnError) {
  const CacheGeometry g = geom(8, 10);
  auto c = make_cache(parse_cache_spec("f16"), g);
  std::vector<float> k(11 * g.n_kv_head * 8, 0.f);
  std::vector<int32_t> pos(11);
  for (int i = 0; i < 11; ++i) pos[i] = i;
  EXPECT_THROW(c->layer(0).append(11, pos.data(), k.data(), k.data()), Error);
}

TEST(CacheRegistry, ErrorsListValidChoices) {
  try {
    parse_cache_spec("f8");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("valid: f16, f32, q8_0, q4_0, plain, h1b, kivi, evict, loki"),
              std::string::npos)
        << e.what();
  }
  try {
    parse_cache_spec("plain:q=3");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("valid: k, v"), std::string::npos) << e.what();
  }
  try {
    parse_cache_spec("plain:k=q2");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not one of f32, f16"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_cache_spec("f16:k=f32"), Error);
  EXPECT_EQ(parse_cache_spec("plain:k=f32").str(), "plain:k=f32");
  EXPECT_EQ(plain_cache_spec("f16", "f32").str(), "plain:v=f32");
}
