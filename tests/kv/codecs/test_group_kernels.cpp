// The attention loop's SIMD pieces: vectorised exp (error bound, special values, vector ==
// scalar reference), grouped f16 / int4 / sketch kernels (== the one-head paths, independent of
// how a token range is split), and chunked attention over several 256-token chunks (naive
// reference, batched == token-by-token, any thread count).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kv/cache.h"
#include "kv/codecs/float_kernels.h"
#include "kv/codecs/int4.h"
#include "kv/codecs/sketch.h"
#include "kv/registry.h"
#include "tensor/vexp.h"
#include "tensor/isa_paths.h"
#include "util/fp16.h"

#include "kv/random.h"
#include "kv/reference_attention.h"

using namespace h1bkv;

TEST(Vexp, RelativeErrorBelow2e7) {
  // every 97th float in [-87.3, 88.7] (about 2.2M values), plus a dense run around 0
  double worst = 0;
  float at = 0;
  auto check = [&](float x) {
    const double ref = std::exp((double)x), y = vexp_ref(x);
    const double e = std::fabs(y - ref) / ref;
    if (e > worst) worst = e, at = x;
  };
  for (uint32_t b = 0; b < 0x7f800000u; b += 97) {
    float x;
    std::memcpy(&x, &b, 4);
    if (x <= 88.7f) check(x);
    if (x <= 87.3f) check(-x);
  }
  for (int i = -100000; i <= 100000; ++i) check(i * 1e-5f);
  EXPECT_LT(worst, 2e-7) << "at x = " << at;
}

TEST(Vexp, VectorEqualsScalarAndSpecialValues) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-100.f, 100.f);
  std::vector<float> x(1003), y(1003);
  for (auto& v : x) v = u(rng);
  const float inf = std::numeric_limits<float>::infinity();
  const float special[] = {0.f, -0.f, -inf, inf, NAN, -87.3365479f, -87.34f, 88.72f, 88.73f, 1e30f, -1e30f};
  for (int i = 0; i < 11; ++i) x[i] = special[i];
  vexp(x.data(), y.data(), (int64_t)x.size());  // 1003: the tail goes through the padded path
  for (size_t i = 0; i < x.size(); ++i) {
    const float r = vexp_ref(x[i]);
    if (std::isnan(r)) {
      ASSERT_TRUE(std::isnan(y[i])) << x[i];
    } else {
      ASSERT_EQ(y[i], r) << x[i];
    }
  }
  EXPECT_EQ(vexp_ref(0.f), 1.0f);
  EXPECT_EQ(vexp_ref(-inf), 0.0f);
  EXPECT_EQ(vexp_ref(-87.34f), 0.0f);
  EXPECT_EQ(vexp_ref(inf), inf);
  EXPECT_EQ(vexp_ref(88.73f), inf);
  EXPECT_EQ(vexp_ref(1e30f), inf);
  EXPECT_TRUE(std::isnan(vexp_ref(NAN)));
  EXPECT_GT(vexp_ref(88.72f), 3.3e38f);
}

// Scores and value sums of G heads at once == one head at a time, and any split of the token
// range into runs gives the same floats.
TEST(GroupKernels, F16GroupEqualsPerHeadAndSplitInvariant) {
  for (int d : {8, 64, 72}) {
    const int n = 45, G = 3;
    const size_t stride = (size_t)d + 16;  // rows inside a wider array, as the exact tier
    auto kf = randn(n * stride, 1), q = randn((size_t)G * d, 2), w = randn((size_t)G * n, 3);
    std::vector<uint16_t> k(kf.size());
    for (size_t i = 0; i < k.size(); ++i) k[i] = f32_to_fp16(kf[i]);
    std::vector<float> a((size_t)G * n), b((size_t)G * n);
    const float* qp[3] = {&q[0], &q[d], &q[2 * d]};
    float* ap[3] = {&a[0], &a[n], &a[2 * n]};
    dot_f32_f16_group(qp, G, k.data(), stride, n, d, ap);
    for (int g = 0; g < G; ++g)  // one head, in runs of 1..7 tokens
      for (int t = 0, len = 1; t < n; t += len, len = len % 7 + 1) {
        const int m = std::min(len, n - t);
        float* bp = &b[(size_t)g * n + t];
        dot_f32_f16_group(&qp[g], 1, k.data() + t * stride, stride, m, d, &bp);
      }
    EXPECT_EQ(a, b) << d;
    for (int g = 0; g < G; ++g)
      for (int t = 0; t < n; ++t)
        ASSERT_NEAR(a[(size_t)g * n + t], dot_f32_f16_ref(qp[g], k.data() + t * stride, d), 1e-4);
    std::vector<float> o1((size_t)G * d, 0.5f), o2((size_t)G * d, 0.5f);
    const float* wp[3] = {&w[0], &w[n], &w[2 * n]};
    float* op1[3] = {&o1[0], &o1[d], &o1[2 * d]};
    axpy_f16_group(wp, G, k.data(), stride, n, d, op1);
    for (int g = 0; g < G; ++g)
      for (int t = 0; t < n; ++t) axpy_f16(w[(size_t)g * n + t], k.data() + t * stride, &o2[(size_t)g * d], d);
    EXPECT_EQ(o1, o2) << d;
  }
}

TEST(GroupKernels, Int4GroupEqualsPerHeadAndReference) {
  for (int d : {64, 128})
    for (int group : {0, 16, 32}) {
      const int n = 77, G = 3;
      const size_t vb = int4_bytes(d, group);
      auto v = randn((size_t)n * d, 5), w = randn((size_t)G * n, 6);
      std::vector<uint8_t> vals(n * vb);
      for (int t = 0; t < n; ++t) int4_encode(&v[t * d], d, group, &vals[t * vb]);
      std::vector<float> a((size_t)G * d, 0.25f), b = a, r = a;
      const float* wp[3] = {&w[0], &w[n], &w[2 * n]};
      float* ap[3] = {&a[0], &a[d], &a[2 * d]};
      int4_accumulate_group(wp, G, vals.data(), n, d, group, ap);
      for (int g = 0; g < G; ++g) {
        int4_accumulate(wp[g], vals.data(), n, d, group, &b[(size_t)g * d]);
        if (int4_integer_path(active_isa(), d, group))
          int4_accumulate_q16_ref(wp[g], vals.data(), n, d, group, &r[(size_t)g * d]);
        else
          int4_accumulate_ref(wp[g], vals.data(), n, d, group, &r[(size_t)g * d]);
      }
      EXPECT_EQ(a, b) << d << " " << group;
      for (size_t e = 0; e < a.size(); ++e) ASSERT_NEAR(a[e], r[e], 1e-4) << d << " " << group << " " << e;
    }
}

TEST(GroupKernels, SketchGroupEqualsScoreBlock) {
  const CacheGeometry g{2, 8, 2, 64, 1000};
  for (Isa isa : supported_isas())  // every kernel path this CPU has (tests/tensor/isa_paths.h)
  for (auto est : {SketchEst::hamming, SketchEst::angle, SketchEst::qjl})
    for (int bits : {64, 192, 256, 512}) {
      const h1bkv::testing::IsaScope path(isa);
      SketchOptions o;
      o.est = est, o.bits = bits;
      SketchKeyCodec c(g, 1, o);
      const int G = 4;
      std::vector<uint8_t> block(kBlockTokens * c.bytes_per_vector(), 0);
      auto k = randn((size_t)kBlockTokens * 64, 7), q = randn((size_t)G * 64, 8);
      for (int t = 0; t < kBlockTokens; ++t) c.encode_slot(&k[t * 64], 1, block.data(), t);
      const size_t pf = c.query_prep_floats();
      std::vector<float> prep(G * pf);
      const float* pp[4];
      for (int h = 0; h < G; ++h) c.prepare_query(&q[h * 64], 4 + h, 0.125f, &prep[h * pf]), pp[h] = &prep[h * pf];
      for (auto [t0, n] : {std::pair{0, 64}, {5, 40}, {33, 31}, {63, 1}}) {
        std::vector<float> a((size_t)G * n), b((size_t)G * n);
        float* ap[4];
        for (int h = 0; h < G; ++h) ap[h] = &a[(size_t)h * n];
        sketch_score_group(c, pp, G, block.data(), t0, n, ap);
        for (int h = 0; h < G; ++h) c.score_block(pp[h], block.data(), t0, n, &b[(size_t)h * n]);
        ASSERT_EQ(a, b) << isa_name(isa) << " " << sketch_est_name(est) << " " << bits << " " << t0;
      }
    }
}

namespace {

// One query at position qpos over n_tok tokens at positions 0 .. n_tok-1.
std::vector<float> naive(const CacheGeometry& g, const std::vector<float>& k, const std::vector<float>& v,
                         const std::vector<float>& q, int n_tok, int32_t qpos, float scale) {
  std::vector<int32_t> kpos(n_tok);
  for (int t = 0; t < n_tok; ++t) kpos[t] = t;
  return naive_attention(g, k, v, q, kpos, {qpos}, scale);
}

}  // namespace

// 700 tokens = 3 chunks: the merged partial softmax states equal the one-pass reference.
TEST(ChunkedAttention, F32MatchesNaiveAcrossChunks) {
  const CacheGeometry g{1, 6, 2, 64, 800};
  const int n = 700, kvs = 2 * 64;
  auto k = randn((size_t)n * kvs, 11), v = randn((size_t)n * kvs, 12), q = randn(6 * 64, 13);
  for (auto& x : k) x *= 2;  // peaked softmax: chunk maxima differ
  auto c = make_cache(parse_cache_spec("f32"), g);
  std::vector<int32_t> pos(n);
  for (int i = 0; i < n; ++i) pos[i] = i;
  c->layer(0).append(n, pos.data(), k.data(), v.data());
  for (int32_t qp : {100, 255, 256, 600, 699}) {
    std::vector<float> out(6 * 64);
    c->layer(0).attend(1, &qp, q.data(), 0.125f, out.data());
    const auto ref = naive(g, k, v, q, n, qp, 0.125f);
    for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], 2e-5) << qp << " " << i;
  }
}

// Batched == token by token for every cache type: tests/kv/test_conformance.cpp.

