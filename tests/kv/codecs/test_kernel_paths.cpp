// The KV caches' dispatched kernels (int4 values, f32/f16 dots and accumulation, softmax exp) on
// every kernel path (tensor/isa.h) against their scalar references; paths this CPU or build
// lacks are skipped by name. The exp kernels must give the reference's floats exactly; the sums
// that a path reorders must lie within the float rounding bound of the reference.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kv/codecs/float_kernels.h"
#include "kv/codecs/int4.h"
#include "tensor/isa_paths.h"
#include "tensor/vexp.h"
#include "util/fp16.h"

#include "kv/random.h"

using namespace h1bkv;

namespace {

class KvKernelPaths : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override { H1BKV_SKIP_UNSUPPORTED_ISA(GetParam()); }
};
INSTANTIATE_TEST_SUITE_P(Paths, KvKernelPaths, ::testing::ValuesIn(h1bkv::testing::kAllIsas),
                         [](const auto& info) { return std::string(isa_name(info.param)); });

// Rounding bound of a sum of n products whose magnitudes sum to `mag` (each path may split a
// product in two and add in another order): (n + 8) units of 2^-23 per unit of magnitude.
double sum_tol(int64_t n, double mag) { return (double)(n + 8) * 1.2e-7 * mag + 1e-30; }

}  // namespace

// Heads, tokens and value groups of every shape the paths treat differently (512-bit tiles,
// 256-bit tiles, references; pieces of 32 and 64 tokens and their tails).
TEST_P(KvKernelPaths, Int4AccumulateGroupMatchesReference) {
  const h1bkv::testing::IsaScope path(GetParam());
  for (int d : {64, 128})
    for (int group : {0, 16, 32, 64})
      for (int n : {1, 7, 64, 77, 130})
        for (int G : {1, 3, 4}) {
          if (group == 64 && d == 64) continue;
          const size_t vb = int4_bytes(d, group);
          auto v = randn((size_t)n * d, 5 + n), w = randn((size_t)G * n, 6 + G);
          std::vector<uint8_t> vals(n * vb);
          std::vector<float> dec((size_t)n * d);
          for (int t = 0; t < n; ++t) {
            int4_encode(&v[t * d], d, group, &vals[t * vb]);
            int4_decode(&vals[t * vb], d, group, &dec[(size_t)t * d]);
          }
          std::vector<float> a((size_t)G * d, 0.25f), one = a, r = a;
          std::vector<const float*> wp(G);
          std::vector<float*> ap(G);
          for (int g = 0; g < G; ++g) wp[g] = &w[(size_t)g * n], ap[g] = &a[(size_t)g * d];
          int4_accumulate_group(wp.data(), G, vals.data(), n, d, group, ap.data());
          for (int g = 0; g < G; ++g) {
            float* o = &one[(size_t)g * d];
            int4_accumulate_group(&wp[g], 1, vals.data(), n, d, group, &o);
            // the integer path's arithmetic, which it equals but for the minima's sum order
            if (int4_integer_path(GetParam(), d, group))
              int4_accumulate_q16_ref(wp[g], vals.data(), n, d, group, &r[(size_t)g * d]);
            else
              int4_accumulate_ref(wp[g], vals.data(), n, d, group, &r[(size_t)g * d]);
          }
          ASSERT_EQ(a, one) << "a head's floats depend on the group: d " << d << " group " << group << " n " << n;
          std::vector<double> vmax(n, 0.0);  // 3 |w| vmax bounds |w m| + |w s q| + |w v|
          for (int t = 0; t < n; ++t)
            for (int i = 0; i < d; ++i) vmax[t] = std::max(vmax[t], (double)std::fabs(dec[(size_t)t * d + i]));
          for (int g = 0; g < G; ++g)
            for (int e = 0; e < d; ++e) {
              double mag = 0.25;
              for (int t = 0; t < n; ++t) mag += 3 * std::fabs(wp[g][t]) * vmax[t];
              ASSERT_NEAR(a[(size_t)g * d + e], r[(size_t)g * d + e], sum_tol(n, mag))
                  << "d " << d << " group " << group << " n " << n << " head " << g << " e " << e;
            }
        }
}

TEST_P(KvKernelPaths, FloatKernelsMatchReference) {
  const h1bkv::testing::IsaScope path(GetParam());
  for (int d : {1, 8, 13, 64, 72, 128}) {
    auto a = randn(d, 1), b = randn(d, 2);
    std::vector<uint16_t> bh(d);
    double mag = 0, magh = 0;
    for (int i = 0; i < d; ++i) {
      bh[i] = f32_to_fp16(b[i]);
      mag += std::fabs(a[i] * b[i]), magh += std::fabs(a[i] * fp16_to_f32_scalar(bh[i]));
    }
    EXPECT_NEAR(dot_f32(a.data(), b.data(), d), dot_f32_ref(a.data(), b.data(), d), sum_tol(d, mag)) << d;
    EXPECT_NEAR(dot_f32_f16(a.data(), bh.data(), d), dot_f32_f16_ref(a.data(), bh.data(), d), sum_tol(d, magh)) << d;
    std::vector<float> o1(d, 0.5f), o2 = o1, o3 = o1, o4 = o1;
    axpy_f32(0.75f, b.data(), o1.data(), d);  // one product and one add per element: exact match
    axpy_f32_ref(0.75f, b.data(), o2.data(), d);
    axpy_f16(0.75f, bh.data(), o3.data(), d);
    axpy_f16_ref(0.75f, bh.data(), o4.data(), d);
    for (int i = 0; i < d; ++i) {
      EXPECT_NEAR(o1[i], o2[i], 2.4e-7 * (0.5 + std::fabs(0.75 * b[i]))) << d;
      EXPECT_NEAR(o3[i], o4[i], 2.4e-7 * (0.5 + std::fabs(0.75 * b[i]))) << d;
    }
  }
  // grouped kernels: G heads over n f16 rows of a wider array
  for (int d : {8, 64, 72})
    for (int G : {1, 3, 4, 5}) {
      const int n = 45;
      const size_t stride = (size_t)d + 16;
      auto kf = randn(n * stride, 3), q = randn((size_t)G * d, 4), w = randn((size_t)G * n, 5);
      std::vector<uint16_t> k(kf.size());
      for (size_t i = 0; i < k.size(); ++i) k[i] = f32_to_fp16(kf[i]);
      std::vector<float> s((size_t)G * n), sr((size_t)G * n), o((size_t)G * d, 0.5f), orf = o;
      std::vector<const float*> qp(G), wp(G);
      std::vector<float*> sp(G), srp(G), op(G), orp(G);
      for (int g = 0; g < G; ++g) {
        qp[g] = &q[(size_t)g * d], wp[g] = &w[(size_t)g * n];
        sp[g] = &s[(size_t)g * n], srp[g] = &sr[(size_t)g * n];
        op[g] = &o[(size_t)g * d], orp[g] = &orf[(size_t)g * d];
      }
      dot_f32_f16_group(qp.data(), G, k.data(), stride, n, d, sp.data());
      dot_f32_f16_group_ref(qp.data(), G, k.data(), stride, n, d, srp.data());
      axpy_f16_group(wp.data(), G, k.data(), stride, n, d, op.data());
      axpy_f16_group_ref(wp.data(), G, k.data(), stride, n, d, orp.data());
      for (int g = 0; g < G; ++g) {
        for (int t = 0; t < n; ++t) {
          double mag = 0;
          for (int e = 0; e < d; ++e) mag += std::fabs(qp[g][e] * fp16_to_f32_scalar(k[t * stride + e]));
          ASSERT_NEAR(sp[g][t], srp[g][t], sum_tol(d, mag)) << d << " " << G << " " << g << " " << t;
        }
        for (int e = 0; e < d; ++e) {
          double mag = 0.5;
          for (int t = 0; t < n; ++t) mag += std::fabs(wp[g][t] * fp16_to_f32_scalar(k[t * stride + e]));
          ASSERT_NEAR(op[g][e], orp[g][e], sum_tol(n, mag)) << d << " " << G << " " << g << " " << e;
        }
      }
    }
}

// vexp, max_padded and exp_sub_sum give the reference's floats bit for bit on every path.
TEST_P(KvKernelPaths, SoftmaxExpEqualsReferenceBitForBit) {
  const h1bkv::testing::IsaScope path(GetParam());
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(-100.f, 100.f);
  const float inf = std::numeric_limits<float>::infinity();
  const float special[] = {0.f, -0.f, -inf, inf, NAN, -87.3365479f, -87.34f, 88.72f, 88.73f, 1e30f, -1e30f};
  for (int n : {1, 7, 8, 9, 15, 16, 17, 31, 33, 1003}) {
    std::vector<float> x(n), y(n);
    for (auto& v : x) v = u(rng);
    for (int i = 0; i < std::min(n, 11); ++i) x[i] = special[i];
    vexp(x.data(), y.data(), n);
    for (int i = 0; i < n; ++i) {
      const float r = vexp_ref(x[i]);
      if (std::isnan(r)) ASSERT_TRUE(std::isnan(y[i])) << n << " " << x[i];
      else ASSERT_EQ(y[i], r) << n << " " << x[i];
    }
  }
  std::normal_distribution<float> nd(0.f, 3.f);
  for (int n : {8, 16, 24, 40, 256}) {
    std::vector<float> x(n);
    for (auto& v : x) v = nd(rng);
    float mr = -inf;
    for (float v : x) mr = std::max(mr, v);
    EXPECT_EQ(max_padded(x.data(), n), mr) << n;
    std::vector<float> xr = x;
    const float s = exp_sub_sum(x.data(), n, mr), sr = exp_sub_sum_ref(xr.data(), n, mr);
    EXPECT_EQ(s, sr) << n;
    EXPECT_EQ(x, xr) << n;
    // -inf padding (the attention loop's) gives exp 0
    std::fill(x.end() - std::min(n, 5), x.end(), -inf);
    xr = x;
    EXPECT_EQ(exp_sub_sum(x.data(), n, mr), exp_sub_sum_ref(xr.data(), n, mr)) << n;
    EXPECT_EQ(x.back(), 0.0f);
  }
}
