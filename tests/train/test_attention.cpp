// SketchAttention's backward against central finite differences in double: exact attention with
// GQA, the sketched attention relaxed by tanh (every tensor), and the sign version's
// straight-through gradient where the loss is smooth (everything the sign does not touch).
#include <gtest/gtest.h>

#include "attention_fixture.h"

using h1bkv::SketchEst;
using h1bkv::train::AttentionConfig;

namespace {

AttentionConfig config(int bits, SketchEst est, float beta) {
  AttentionConfig c;
  c.n_head = 4, c.n_kv_head = 2, c.head_dim = 8, c.scale = 1 / std::sqrt(8.0f);
  c.bits = bits, c.est = est, c.sink = 1, c.window = 3, c.beta = beta;
  c.quantize_values = false;
  return c;
}

#define EXPECT_GRAD(x, g, bound) \
  EXPECT_LT(fd_rel_error([&] { return f.loss(); }, f.x.data(), f.g.data(), f.x.size()), bound) << #x

}  // namespace

TEST(TrainAttention, ExactGqaBackwardMatchesFiniteDifferences) {
  AttnFixture f(config(0, SketchEst::qjl, 0), 7, 100);
  f.gradients();
  constexpr double kBound = 1e-7;  // smooth; h = 1e-5 in double
  EXPECT_GRAD(q, dq, kBound);
  EXPECT_GRAD(k, dk, kBound);
  EXPECT_GRAD(v, dv, kBound);
  EXPECT_GRAD(v_scale, gvs, kBound);
  EXPECT_GRAD(v_bias, gvb, kBound);
}

// An exact-key layer (h1b exact_layers): compressed tokens' keys are a q4_0 or f16 round trip,
// straight-through for k, so q, v and the affine have exact gradients (h moves no rounding of k)
TEST(TrainAttention, ExactKeyLayerBackwardMatchesFiniteDifferences) {
  for (auto e : {AttentionConfig::ExactKeys::q4, AttentionConfig::ExactKeys::f16}) {
    AttentionConfig c = config(16, SketchEst::qjl, 0);
    c.exact_keys = e;
    AttnFixture f(c, 9, 500);
    f.gradients();
    constexpr double kBound = 1e-7;
    EXPECT_GRAD(q, dq, kBound);
    EXPECT_GRAD(v, dv, kBound);
    EXPECT_GRAD(v_scale, gvs, kBound);
    EXPECT_GRAD(v_bias, gvb, kBound);
    // no sketch: the sketch tensors get no gradient
    for (double x : f.gR) EXPECT_EQ(x, 0);
    for (double x : f.gmu) EXPECT_EQ(x, 0);
    EXPECT_EQ(f.gt[0], 0);
    // and the q4 round trip changes the output (the layer is not plain exact attention)
    if (e == AttentionConfig::ExactKeys::q4) {
      AttnFixture x(config(0, SketchEst::qjl, 0), 9, 500);
      EXPECT_GT(std::fabs(x.loss() - f.loss()), 1e-3);
    }
  }
}

class TrainSketchAttention : public testing::TestWithParam<SketchEst> {};

TEST_P(TrainSketchAttention, TanhRelaxedBackwardMatchesFiniteDifferences) {
  AttnFixture f(config(16, GetParam(), 0.7f), 9, 200);
  f.gradients();
  constexpr double kBound = 1e-6;  // smooth (tanh); h = 1e-5 in double
  EXPECT_GRAD(q, dq, kBound);
  EXPECT_GRAD(k, dk, kBound);
  EXPECT_GRAD(v, dv, kBound);
  EXPECT_GRAD(temperature, gt, kBound);
  EXPECT_GRAD(mult, gm, kBound);
  EXPECT_GRAD(v_scale, gvs, kBound);
  EXPECT_GRAD(v_bias, gvb, kBound);
  EXPECT_GRAD(mu, gmu, kBound);
  EXPECT_GRAD(R, gR, kBound);
  EXPECT_GRAD(A, gA, kBound);
  EXPECT_NE(f.gt[0], 0);
}

TEST_P(TrainSketchAttention, SignBackwardIsExactWhereTheSignsDoNotMove) {
  AttnFixture f(config(16, GetParam(), 0), 9, 300);
  f.gradients();
  constexpr double kBound = 1e-7;  // the loss is smooth in these; h = 1e-5 moves no sign
  EXPECT_GRAD(v, dv, kBound);
  EXPECT_GRAD(temperature, gt, kBound);
  EXPECT_GRAD(mult, gm, kBound);
  EXPECT_GRAD(v_scale, gvs, kBound);
  EXPECT_GRAD(v_bias, gvb, kBound);
  if (GetParam() == SketchEst::qjl) {  // qjl's query side is unquantized: A q is linear
    EXPECT_GRAD(q, dq, kBound);
    EXPECT_GRAD(A, gA, kBound);
  }
}

TEST_P(TrainSketchAttention, SignWithoutStraightThroughIsTheLocalGradient) {
  // ste none: no gradient through the signs, so the gradient is that of the piecewise-smooth
  // loss where it is smooth, and finite differences see every tensor (no sign moves at h = 1e-5)
  AttentionConfig c = config(16, GetParam(), 0);
  c.ste = AttentionConfig::Ste::none;
  AttnFixture f(c, 9, 400);
  f.gradients();
  constexpr double kBound = 1e-6;
  EXPECT_GRAD(q, dq, kBound);
  EXPECT_GRAD(k, dk, kBound);
  EXPECT_GRAD(mu, gmu, kBound);
  EXPECT_GRAD(R, gR, kBound);
  EXPECT_GRAD(A, gA, kBound);
  EXPECT_GRAD(temperature, gt, kBound);
  // and the straight-through estimators add to it (keys' signs get a gradient)
  for (auto ste : {AttentionConfig::Ste::scaled, AttentionConfig::Ste::identity}) {
    c.ste = ste;
    AttnFixture g(c, 9, 400);
    g.gradients();
    double diff = 0;
    for (size_t i = 0; i < g.gR.size(); ++i) diff += std::fabs(g.gR[i] - f.gR[i]);
    EXPECT_GT(diff, 1e-3);
  }
}

INSTANTIATE_TEST_SUITE_P(Estimators, TrainSketchAttention, testing::Values(SketchEst::qjl, SketchEst::hamming),
                         [](const auto& i) { return std::string(h1bkv::sketch_est_name(i.param)); });
