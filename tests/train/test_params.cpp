// ParamBuffer, AdamW against hand-computed updates, clipping, the cosine schedule.
#include <gtest/gtest.h>

#include <cmath>

#include "train/params.h"
#include "util/error.h"

using namespace h1bkv::train;

TEST(TrainParams, AdamWStepsMatchHandComputedValues) {
  ParamBuffer p;
  const size_t a = p.add("a", {2}, 1.0f, true);
  const size_t f = p.add("frozen", {1}, 5.0f, false);
  p.grad(a)[0] = 0.5f, p.grad(a)[1] = -2.0f, p.grad(f)[0] = 1.0f;
  AdamW opt({0.9f, 0.999f, 1e-8f, 0.0f});
  opt.step(p, 0.1f);
  // step 1: m = 0.1 g, v = 0.001 g^2, bias-corrected m^ = g, v^ = g^2: x -= lr sign(g)
  EXPECT_NEAR(p.value(a)[0], 0.9, 1e-6);
  EXPECT_NEAR(p.value(a)[1], 1.1, 1e-6);
  EXPECT_EQ(p.value(f)[0], 5.0f);
  // step 2 with g = 1 for a[0]: m = 0.9*0.05 + 0.1 = 0.145, v = 0.999*0.00025 + 0.001 = 0.00124975
  // m^ = 0.145 / 0.19 = 0.763158, v^ = 0.00124975 / 0.001999 = 0.625188, step = 0.1 * 0.763158 / 0.790688
  p.grad(a)[0] = 1.0f;
  opt.step(p, 0.1f);
  EXPECT_NEAR(p.value(a)[0], 0.9 - 0.1 * 0.763158 / std::sqrt(0.625188), 1e-6);
  EXPECT_EQ(opt.t(), 2);
}

TEST(TrainParams, AdamWWeightDecayIsDecoupled) {
  ParamBuffer p;
  p.add("a", {1}, 2.0f, true);
  AdamW opt({0.9f, 0.999f, 1e-8f, 0.01f});
  opt.step(p, 0.1f);  // zero gradient: only the decay moves x, by lr wd x
  EXPECT_NEAR(p.values()[0], 2.0 - 0.1 * 0.01 * 2.0, 1e-7);
}

TEST(TrainParams, ClipScalesTrainableGradientsToTheNorm) {
  ParamBuffer p;
  p.add("a", {2}, 0.f, true);
  p.add("b", {1}, 0.f, false);
  p.grads() = {3.f, 4.f, 100.f};
  EXPECT_NEAR(clip_grad_norm(p, 1.0), 5.0, 1e-9);
  EXPECT_NEAR(p.grads()[0], 0.6f, 1e-6);
  EXPECT_NEAR(p.grads()[1], 0.8f, 1e-6);
  EXPECT_NEAR(clip_grad_norm(p, 10.0), 1.0, 1e-6);  // below the bound: unchanged
  EXPECT_NEAR(p.grads()[0], 0.6f, 1e-6);
}

TEST(TrainParams, CosineScheduleWarmsUpThenDecays) {
  EXPECT_FLOAT_EQ(cosine_lr(0, 100, 10, 1.0f, 0.1f), 0.1f);
  EXPECT_FLOAT_EQ(cosine_lr(9, 100, 10, 1.0f, 0.1f), 1.0f);
  EXPECT_NEAR(cosine_lr(10, 100, 10, 1.0f, 0.1f), 1.0f, 1e-6);
  EXPECT_NEAR(cosine_lr(99, 100, 10, 1.0f, 0.1f), 0.1f, 1e-6);
  // step 54: 44 of the 89 decay steps done
  EXPECT_NEAR(cosine_lr(54, 100, 10, 1.0f, 0.1f), 0.1 + 0.45 * (1 + std::cos(M_PI * 44 / 89.0)), 1e-6);
}

TEST(TrainParams, RepeatedNameIsAnError) {
  ParamBuffer p;
  p.add("x", {1}, 0.f, true);
  EXPECT_THROW(p.add("x", {1}, 0.f, true), h1bkv::Error);
}
