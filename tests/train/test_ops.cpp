// Every backward of train/ops.h against central finite differences in double.
#include <gtest/gtest.h>

#include "fd.h"
#include "train/ops.h"

using namespace h1bkv::train;

namespace {
constexpr double kBound = 1e-6;  // relative error of a smooth op's gradient at h = 1e-5 in double
}

TEST(TrainOps, RmsNormBackwardMatchesFiniteDifferences) {
  const int n = 24;
  auto x = randn_d(n, 1), c = randn_d(n, 2);
  std::vector<float> w(n);
  for (int i = 0; i < n; ++i) w[i] = 0.5f + 0.1f * i;
  std::vector<double> y(n), dx(n, 0);
  auto loss = [&] { rmsnorm_forward(x.data(), w.data(), y.data(), n, 1e-5f); return dotv(y, c); };
  loss();
  rmsnorm_backward(x.data(), w.data(), c.data(), dx.data(), n, 1e-5f);
  EXPECT_LT(fd_rel_error(loss, x.data(), dx.data(), n), kBound);
}

class TrainRope : public testing::TestWithParam<bool> {};

TEST_P(TrainRope, BackwardIsTheTransposeMatchingFiniteDifferences) {
  const int H = 3, hd = 8, n_rot = 8;
  const bool neox = GetParam();
  auto x = randn_d(H * hd, 3), c = randn_d(H * hd, 4);
  auto loss = [&] {
    auto y = x;
    rope_apply(y.data(), H, hd, n_rot, 37, 10000.f, neox, false);
    return dotv(y, c);
  };
  auto dx = c;  // d(c.y)/dx = R^T c
  rope_apply(dx.data(), H, hd, n_rot, 37, 10000.f, neox, true);
  EXPECT_LT(fd_rel_error(loss, x.data(), dx.data(), x.size()), kBound);
  // and backward undoes forward
  auto y = x;
  rope_apply(y.data(), H, hd, n_rot, 37, 10000.f, neox, false);
  rope_apply(y.data(), H, hd, n_rot, 37, 10000.f, neox, true);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(y[i], x[i], 1e-6);
}
INSTANTIATE_TEST_SUITE_P(Layouts, TrainRope, testing::Values(false, true),
                         [](const auto& i) { return i.param ? "NeoX" : "Llama"; });

TEST(TrainOps, SwigluBackwardMatchesFiniteDifferences) {
  const int n = 32;
  auto g = randn_d(n, 5, 2.0), u = randn_d(n, 6), c = randn_d(n, 7);
  std::vector<double> a(n), dg(n, 0), du(n, 0);
  auto loss = [&] { swiglu_forward(g.data(), u.data(), a.data(), n); return dotv(a, c); };
  swiglu_backward(g.data(), u.data(), c.data(), dg.data(), du.data(), n);
  EXPECT_LT(fd_rel_error(loss, g.data(), dg.data(), n), kBound);
  EXPECT_LT(fd_rel_error(loss, u.data(), du.data(), n), kBound);
}

TEST(TrainOps, KlDivergenceGradientAndValue) {
  const int n = 40;
  auto z = randn_d(n, 8, 2.0);
  auto tz = randn_d(n, 9, 2.0);
  std::vector<float> teacher(tz.begin(), tz.end());
  std::vector<double> p(n), pt(n), dz(n, 0);
  auto loss = [&] { return kl_row(teacher.data(), z.data(), (double*)nullptr, 1.0, n, p.data(), pt.data()); };
  const double kl = kl_row(teacher.data(), z.data(), dz.data(), 1.0, n, p.data(), pt.data());
  EXPECT_GT(kl, 0);
  EXPECT_LT(fd_rel_error(loss, z.data(), dz.data(), n), kBound);
  // KL of a distribution with itself is 0
  std::vector<double> zt(teacher.begin(), teacher.end());
  EXPECT_NEAR(kl_row(teacher.data(), zt.data(), (double*)nullptr, 1.0, n, p.data(), pt.data()), 0, 1e-12);
}

TEST(TrainOps, CrossEntropyGradientAndValue) {
  const int n = 40;
  auto z = randn_d(n, 10);
  std::vector<double> p(n), dz(n, 0);
  auto loss = [&] { return cross_entropy_row(z.data(), 7, (double*)nullptr, 1.0, n, p.data()); };
  cross_entropy_row(z.data(), 7, dz.data(), 1.0, n, p.data());
  EXPECT_LT(fd_rel_error(loss, z.data(), dz.data(), n), kBound);
  std::vector<double> flat(n, 0.0);  // uniform: -log(1/n)
  EXPECT_NEAR(cross_entropy_row(flat.data(), 3, (double*)nullptr, 1.0, n, p.data()), std::log(40.0), 1e-12);
}

// The training forwards compute what the inference forward (tensor/ops.h) computes.
#include "tensor/ops.h"
TEST(TrainOps, ForwardsMatchTheInferenceOps) {
  const int H = 2, hd = 16, n = H * hd;
  auto xd = randn_d(n, 11);
  std::vector<float> x(xd.begin(), xd.end()), w(n, 1.3f), a(n), b(n);
  h1bkv::rmsnorm(x.data(), w.data(), a.data(), n, 1e-5f);
  rmsnorm_forward(x.data(), w.data(), b.data(), n, 1e-5f);
  for (int i = 0; i < n; ++i) EXPECT_FLOAT_EQ(a[i], b[i]);
  for (bool neox : {false, true}) {
    a = x, b = x;
    h1bkv::rope(a.data(), H, hd, hd, 123, 10000.f, neox);
    rope_apply(b.data(), H, hd, hd, 123, 10000.f, neox, false);
    for (int i = 0; i < n; ++i) EXPECT_FLOAT_EQ(a[i], b[i]);
  }
}
