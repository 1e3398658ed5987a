// H1B-KV codecs: projection generator, sketch statistics, estimator bias/variance, nibble-table
// kernels vs scalar references, int4 round trip and fused accumulate.
#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <cmath>
#include <random>
#include <vector>

#include "kv/codecs/int4.h"
#include "kv/codecs/sketch.h"
#include "tensor/isa_paths.h"
#include "util/error.h"
#include "util/fp16.h"

#include "kv/random.h"

using namespace h1bkv;

namespace {

double dot(const float* a, const float* b, int n) {
  double s = 0;
  for (int i = 0; i < n; ++i) s += (double)a[i] * b[i];
  return s;
}

const CacheGeometry kGeom{2, 6, 2, 64, 1000};

SketchOptions opts(int bits, SketchEst est, uint64_t seed = 7) {
  SketchOptions o;
  o.bits = bits, o.est = est, o.seed = seed;
  return o;
}

}  // namespace

TEST(Sketch, GaussianMatrixIsDeterministicStandardNormal) {
  const int n = 512 * 64;
  std::vector<float> a(n), b(n), c(n);
  gaussian_matrix(1, 0, -1, 512, 64, a.data());
  gaussian_matrix(1, 0, -1, 512, 64, b.data());
  gaussian_matrix(1, 1, -1, 512, 64, c.data());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  double m = 0, v = 0;
  for (float x : a) m += x, v += (double)x * x;
  m /= n, v = v / n - m * m;
  EXPECT_NEAR(m, 0.0, 0.02);  // 4 sigma = 4 / sqrt(32768) = 0.022
  EXPECT_NEAR(v, 1.0, 0.035);
  // golden values pin the generator (SplitMix64 + Box-Muller) across builds
  const float golden[4] = {0.241252631f, 0.674220264f, 0.892710447f, 0.630574822f};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(a[i], golden[i], 1e-6) << i;
}

// P(sign(r.x) == sign(r.y)) = 1 - theta / pi (Goemans-Williamson / SimHash).
// bits: any multiple of 64 in [64, 512] (the kernels work on whole bytes, the words on 64 bits)
TEST(Sketch, BitsMustBeMultipleOf64UpTo512) {
  for (int bits : {0, 32, 96, 200, 576}) EXPECT_THROW(SketchKeyCodec(kGeom, 0, opts(bits, SketchEst::qjl)), Error) << bits;
  for (int bits : {64, 192, 320, 448}) EXPECT_EQ(SketchKeyCodec(kGeom, 0, opts(bits, SketchEst::qjl)).bytes_per_vector(), (size_t)bits / 8 + 2);
}

TEST(Sketch, SignMatchRateIsOneMinusAngleOverPi) {
  SketchKeyCodec c(kGeom, 0, opts(512, SketchEst::hamming));
  const int d = 64, pairs = 200;
  for (double theta : {0.3, 1.0, M_PI / 2, 2.5}) {
    long match = 0;
    for (int p = 0; p < pairs; ++p) {
      auto x = randn(d, 100 + p), z = randn(d, 5000 + p);
      const double xx = dot(x.data(), x.data(), d), xz = dot(x.data(), z.data(), d);
      for (int i = 0; i < d; ++i) z[i] -= (float)(xz / xx) * x[i];  // z orthogonal to x
      const double nx = std::sqrt(xx), nz = std::sqrt(dot(z.data(), z.data(), d));
      std::vector<float> y(d);
      for (int i = 0; i < d; ++i) y[i] = (float)(std::cos(theta) * x[i] / nx + std::sin(theta) * z[i] / nz);
      uint64_t sx[8], sy[8];
      c.sign_bits(x.data(), 0, sx);
      c.sign_bits(y.data(), 0, sy);
      for (int w = 0; w < 8; ++w) match += 64 - std::popcount(sx[w] ^ sy[w]);
    }
    // 102400 bits; per-pair rows are shared, so allow ~ 5x the binomial sigma (0.0016)
    EXPECT_NEAR((double)match / (pairs * 512), 1 - theta / M_PI, 0.01) << theta;
  }
}

// QJL is unbiased for scale * q.k, with variance ~ 1/b; angle is close at b = 512.
TEST(Sketch, QjlUnbiasedAndVarianceShrinks) {
  const int d = 64, seeds = 300;
  const float scale = 0.125f;
  auto q = randn(d, 1), k = randn(d, 2);
  for (int i = 0; i < d; ++i) k[i] += 0.5f * q[i];  // correlated, so q.k is not ~ 0
  const double truth = scale * dot(q.data(), k.data(), d), nk = std::sqrt(dot(k.data(), k.data(), d));
  const double unit = scale * std::sqrt(dot(q.data(), q.data(), d)) * nk;
  double var[2];
  int bi = 0;
  for (int bits : {64, 512}) {
    double m = 0, m2 = 0;
    for (int s = 0; s < seeds; ++s) {
      SketchKeyCodec c(kGeom, 0, opts(bits, SketchEst::qjl, 1000 + s));
      uint64_t kw[8];
      c.sign_bits(k.data(), 0, kw);
      const double e = c.score_ref(q.data(), 0, scale, kw, (float)nk) - truth;
      m += e, m2 += e * e;
    }
    m /= seeds;
    var[bi++] = m2 / seeds - m * m;
    // sigma of one estimate ~ unit * sqrt(pi/2 / b); the mean of 300 is within 4 sigma/sqrt(300)
    EXPECT_NEAR(m, 0.0, 4 * unit * std::sqrt(M_PI / 2 / bits) / std::sqrt((double)seeds)) << bits;
  }
  EXPECT_LT(var[1], var[0] / 4);  // ideal ratio 8
}

TEST(Sketch, AngleCloseAtB512) {
  const int d = 64;
  const float scale = 0.125f;
  SketchKeyCodec c(kGeom, 0, opts(512, SketchEst::angle));
  double err = 0;
  for (int p = 0; p < 100; ++p) {
    auto q = randn(d, 300 + p), k = randn(d, 400 + p);
    for (int i = 0; i < d; ++i) k[i] += 0.7f * q[i];
    const double nk = std::sqrt(dot(k.data(), k.data(), d));
    const double unit = scale * std::sqrt(dot(q.data(), q.data(), d)) * nk;
    uint64_t kw[8];
    c.sign_bits(k.data(), 0, kw);
    const double e = (c.score_ref(q.data(), 0, scale, kw, (float)nk) - scale * dot(q.data(), k.data(), d)) / unit;
    EXPECT_LT(std::fabs(e), 0.2) << p;  // ~ 3.5 sigma of the angle error at b = 512
    err += std::fabs(e);
  }
  EXPECT_LT(err / 100, 0.07);
}

// Every kernel path (tensor/isa.h) against the scalar sums; paths this CPU lacks are skipped.
class SketchKernels : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override { H1BKV_SKIP_UNSUPPORTED_ISA(GetParam()); }
};
INSTANTIATE_TEST_SUITE_P(Paths, SketchKernels, ::testing::ValuesIn(h1bkv::testing::kAllIsas),
                         [](const auto& info) { return std::string(isa_name(info.param)); });

TEST_P(SketchKernels, LutScoresMatchScalar) {
  const h1bkv::testing::IsaScope path(GetParam());
  std::mt19937 rng(3);
  for (int nbytes : {8, 16, 24, 32, 40, 48, 56, 64})  // b = 64 .. 512 in steps of 64
    for (int chunk : {1, 31}) {
      const int maxe = chunk == 1 ? 127 : 4;
      std::vector<uint8_t> tab(nbytes * 32), codes(nbytes * 32);
      for (auto& x : tab) x = (uint8_t)(rng() % (maxe + 1));
      for (auto& x : codes) x = (uint8_t)rng();
      int32_t a[32], b[32];
      lut_scores32(tab.data(), codes.data(), nbytes, chunk, a);
      lut_scores32_ref(tab.data(), codes.data(), nbytes, b);
      for (int t = 0; t < 32; ++t) ASSERT_EQ(a[t], b[t]) << nbytes << " " << chunk << " " << t;
    }
}

// (bits, estimator, kernel path)
class SketchCodecTest : public ::testing::TestWithParam<std::tuple<int, SketchEst, Isa>> {
 protected:
  void SetUp() override { H1BKV_SKIP_UNSUPPORTED_ISA(std::get<2>(GetParam())); }
};

// Block layout round trip; block scores == token-major scores == scalar reference; hamming
// distances from the nibble tables == popcount(s_q xor s_k) exactly.
TEST_P(SketchCodecTest, BlockKernelMatchesReference) {
  const auto [bits, est, isa] = GetParam();
  const h1bkv::testing::IsaScope path(isa);
  SketchOptions o = opts(bits, est);
  o.per_head = true;
  SketchKeyCodec c(kGeom, 1, o);
  const int d = 64, kvh = 1, head = 4;  // query head 4 -> KV head 1 (group 3)
  const float scale = 0.125f;
  const size_t kb = c.bytes_per_vector();
  std::vector<uint8_t> block(kBlockTokens * kb, 0), tokmaj(kBlockTokens * kb);
  auto k = randn((size_t)kBlockTokens * d, 11), q = randn(d, 12);
  for (int t = 0; t < kBlockTokens; ++t) {
    c.encode_slot(&k[t * d], kvh, block.data(), t);
    c.encode(&k[t * d], kvh, &tokmaj[t * kb]);
  }
  std::vector<float> prep(c.query_prep_floats()), sb(kBlockTokens), st(kBlockTokens);
  c.prepare_query(q.data(), head, scale, prep.data());
  c.score_block(prep.data(), block.data(), 0, kBlockTokens, sb.data());
  c.score(prep.data(), tokmaj.data(), kBlockTokens, st.data());
  float part[20];
  c.score_block(prep.data(), block.data(), 25, 20, part);  // crosses the 32-token group edge
  uint64_t qw[8];
  c.sign_bits(q.data(), kvh, qw);
  int32_t h[64];
  const auto* tab = reinterpret_cast<const uint8_t*>(prep.data());
  lut_scores32(tab, block.data(), bits / 8, est == SketchEst::qjl ? 1 : 31, h);
  lut_scores32(tab, block.data() + 32 * bits / 8, bits / 8, est == SketchEst::qjl ? 1 : 31, h + 32);
  const double nq = std::sqrt(dot(q.data(), q.data(), d));
  for (int t = 0; t < kBlockTokens; ++t) {
    uint64_t kw[8], ref[8];
    SketchKeyCodec::unpack_slot(block.data(), bits, t, kw);
    c.sign_bits(&k[t * d], kvh, ref);
    for (int w = 0; w < bits / 64; ++w) ASSERT_EQ(kw[w], ref[w]) << t;
    ASSERT_EQ(sb[t], st[t]) << t;
    if (t >= 25 && t < 45) {
      ASSERT_EQ(part[t - 25], sb[t]) << t;
    }
    const float nk = std::sqrt((float)dot(&k[t * d], &k[t * d], d));
    const float r = c.score_ref(q.data(), head, scale, kw, nk);
    if (est != SketchEst::qjl) {
      int hd = 0;
      for (int w = 0; w < bits / 64; ++w) hd += std::popcount(qw[w] ^ kw[w]);
      ASSERT_EQ(h[t], hd) << t;  // bit-exact popcount
      // the kernel uses the stored fp16 norm; the reference gets the f32 norm
      ASSERT_NEAR(sb[t], r, 1e-5 + 1e-3 * std::fabs(r)) << t;
    } else {
      // 7-bit nibble tables: error ~ 2.3 steps, step = max nibble sum / 63 ~ 12 |q| / 63
      ASSERT_NEAR(sb[t], r, scale * nk * std::sqrt(M_PI / 2) / bits * 12 * nq * 12 / 63) << t;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(BitsEst, SketchCodecTest,
                         ::testing::Combine(::testing::Values(64, 128, 192, 256, 320, 384, 448, 512),
                                            ::testing::Values(SketchEst::hamming, SketchEst::angle,
                                                              SketchEst::qjl),
                                            ::testing::ValuesIn(h1bkv::testing::kAllIsas)));

TEST(Int4, RoundTripWithinHalfScale) {
  for (int d : {64, 128})
    for (int group : {0, 16, 32, 64}) {
      const int G = group ? group : d;
      std::vector<uint8_t> code(int4_bytes(d, group));
      EXPECT_EQ(code.size(), (size_t)(d / 2 + 4 * (d / G)));
      for (int r = 0; r < 50; ++r) {
        auto v = randn(d, 1000 * d + 10 * group + r);
        for (auto& x : v) x = x * (1 + r) + (r % 5 == 0 ? 30.f : 0.f);  // offsets and spreads
        std::vector<float> back(d);
        int4_encode(v.data(), d, group, code.data());
        int4_decode(code.data(), d, group, back.data());
        for (int e = 0; e < d; ++e) {
          uint16_t sh;
          std::memcpy(&sh, &code[d / 2 + 4 * (e / G)], 2);
          const float s = fp16_to_f32_scalar(sh);
          ASSERT_LE(std::fabs(back[e] - v[e]), s / 2 * (1 + 1e-4f) + 1e-6f) << d << " " << group << " " << e;
        }
      }
    }
}

TEST(Int4, FusedAccumulateMatchesScalar) {
  for (int d : {64, 128})
    for (int group : {0, 16, 32}) {
      const int n = 37;
      const size_t vb = int4_bytes(d, group);
      std::vector<uint8_t> vals(n * vb);
      auto v = randn((size_t)n * d, 5), w = randn(n, 6);
      for (int t = 0; t < n; ++t) int4_encode(&v[t * d], d, group, &vals[t * vb]);
      std::vector<float> a(d, 0.25f), b(d, 0.25f);
      int4_accumulate(w.data(), vals.data(), n, d, group, a.data());
      if (int4_integer_path(active_isa(), d, group))
        int4_accumulate_q16_ref(w.data(), vals.data(), n, d, group, b.data());
      else
        int4_accumulate_ref(w.data(), vals.data(), n, d, group, b.data());
      for (int e = 0; e < d; ++e) ASSERT_NEAR(a[e], b[e], 1e-4) << d << " " << group << " " << e;
    }
}

// The integer path's reference is within its bound of the float one: per piece of 64 tokens,
// each factor w_t s_t is off by at most half a unit (max |w s| of the piece / 32767), times a code
// <= 15; plus float rounding.
TEST(Int4, Q16ReferenceWithinHalfAUnitPerToken) {
  for (int d : {64, 128})
    for (int group : {0, 32})
      for (int n : {1, 64, 150}) {
        const int G = group ? group : d;
        const size_t vb = int4_bytes(d, group);
        std::vector<uint8_t> vals(n * vb);
        auto v = randn((size_t)n * d, 11 + n), w = randn(n, 12 + n);
        for (int t = 0; t < n; ++t) int4_encode(&v[t * d], d, group, &vals[t * vb]);
        std::vector<float> a(d, 0.0f), b(d, 0.0f);
        int4_accumulate_q16_ref(w.data(), vals.data(), n, d, group, a.data());
        int4_accumulate_ref(w.data(), vals.data(), n, d, group, b.data());
        for (int gr = 0; gr < d / G; ++gr) {
          double bound = 0, mag = 0;
          for (int p0 = 0; p0 < n; p0 += 64) {
            const int m = std::min(64, n - p0);
            double amax = 0;
            for (int t = p0; t < p0 + m; ++t) {
              uint16_t sh, mh;
              std::memcpy(&sh, &vals[t * vb + d / 2 + 4 * gr], 2);
              std::memcpy(&mh, &vals[t * vb + d / 2 + 4 * gr + 2], 2);
              const double s = fp16_to_f32_scalar(sh), mn = fp16_to_f32_scalar(mh);
              amax = std::max(amax, std::fabs(w[t] * s));
              mag += std::fabs(w[t]) * (std::fabs(mn) + 15 * s);
            }
            bound += m * 15 * 0.5 * amax / 32767;
          }
          for (int e = gr * G; e < (gr + 1) * G; ++e)
            ASSERT_NEAR(a[e], b[e], bound * 1.01 + (n + 8) * 1.2e-7 * mag)
                << "d " << d << " group " << group << " n " << n << " e " << e;
        }
      }
}
