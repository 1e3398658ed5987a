// `h1bkv calibrate --cache h1b:...,center=1,ridge=..,itq=..` end to end on stories260K (head_dim
// 8): the adapter it writes holds the fitted tensors and loads into `ppl --calib`; an adapter for
// another key configuration, and an adapter spec without one, are one-line errors; kl=STEPS
// (stage 1c) lowers the attention KL of the held-out chunk.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "cli/run_cli.h"
#include "kv/calib/adapter.h"
#include "util/paths.h"

namespace {

using Result = h1bkv::test::CliResult;
using h1bkv::test::ppl_in_output;
Result run(const std::string& args) { return h1bkv::test::run_cli(args); }

}  // namespace

TEST(H1bAdapterCli, CalibrateStories260KThenPpl) {
  const std::string model = h1bkv::shared_dir() + "/models/stories260K.gguf";
  const std::string calib_text = h1bkv::shared_dir() + "/data/sotu/2010_barack_obama_d.txt";
  const std::string eval_text = h1bkv::shared_dir() + "/data/tinystories/sample.txt";
  const std::string adapter = ::testing::TempDir() + "/stories.h1b.safetensors";
  const std::string spec = "h1b:bits=64,est=qjl,sink=2,orth=1,center=1,ridge=0.05,itq=5";
  const Result cal = run("calibrate -m " + model + " -f " + calib_text + " -c 128 --chunks 4 -t 1 --cache " + spec +
                         " -o " + adapter);
  ASSERT_EQ(cal.code, 0) << cal.out;
  EXPECT_NE(cal.out.find("adapter stage 1a+1b"), std::string::npos) << cal.out;
  const h1bkv::Adapter a = h1bkv::load_adapter(adapter);
  EXPECT_EQ(a.stage, "1a+1b");
  EXPECT_EQ(a.tokens, 4 * (128 - 2));  // keys past the 2 sinks of each chunk
  ASSERT_FALSE(a.layers.empty());
  EXPECT_EQ(a.layers[0].k_mean.shape.size(), 2u);
  EXPECT_EQ(a.layers[0].k_proj.shape.back(), 8);
  EXPECT_EQ(a.layers[0].q_proj.shape[1], 64);

  const std::string ppl = "ppl -m " + model + " -f " + eval_text + " -c 128 --chunks 4 -t 1 ";
  const Result ok = run(ppl + "--cache " + spec + " --calib " + adapter);
  ASSERT_EQ(ok.code, 0) << ok.out;
  EXPECT_GT(ppl_in_output(ok.out), 1.0) << ok.out;

  const Result other = run(ppl + "--cache h1b:bits=64,est=qjl,sink=2,orth=1,ridge=0.05,itq=5 --calib " + adapter);
  EXPECT_NE(other.code, 0);
  EXPECT_NE(other.out.find(adapter + ": made for cache option center=1, the cache has center=0"), std::string::npos)
      << other.out;
  const Result none = run(ppl + "--cache " + spec);
  EXPECT_NE(none.code, 0);
  EXPECT_NE(none.out.find("needs an adapter"), std::string::npos) << none.out;
}

// Stage 1(c): kl=STEPS trains R, A and the multipliers on attention KL from the ridge start; the
// summary's held-out sequence (the last calibration chunk) has a lower KL than the start, the
// adapter holds all three tensors per layer and `ppl` loads it with the same spec.
TEST(H1bAdapterCli, KlFitStories260KLowersHeldOutKlThenPpl) {
  const std::string model = h1bkv::shared_dir() + "/models/stories260K.gguf";
  const std::string calib_text = h1bkv::shared_dir() + "/data/sotu/2010_barack_obama_d.txt";
  const std::string eval_text = h1bkv::shared_dir() + "/data/tinystories/sample.txt";
  const std::string adapter = ::testing::TempDir() + "/stories.h1b-kl.safetensors";
  const std::string spec = "h1b:bits=64,est=qjl,sink=2,window=8,orth=1,center=1,ridge=0.05,kl=40";
  const Result cal = run("calibrate -m " + model + " -f " + calib_text + " -c 128 --chunks 4 -t 1 --cache " + spec +
                         " -o " + adapter);
  ASSERT_EQ(cal.code, 0) << cal.out;
  const size_t at = cal.out.find("held-out sequence ");
  ASSERT_NE(at, std::string::npos) << cal.out;
  double before = 0, after = 0;
  ASSERT_EQ(std::sscanf(cal.out.c_str() + at, "held-out sequence %lf -> %lf", &before, &after), 2) << cal.out;
  EXPECT_GT(before, 0.0) << cal.out;
  EXPECT_LT(after, before) << cal.out;
  const h1bkv::Adapter a = h1bkv::load_adapter(adapter);
  EXPECT_EQ(a.stage, "1a+1c");
  for (const auto& l : a.layers) {
    EXPECT_EQ(l.k_proj.shape.size(), 3u);
    EXPECT_EQ(l.q_proj.shape.size(), 3u);
    EXPECT_EQ(l.logit_mult.shape.size(), 1u);
  }
  const std::string ppl = "ppl -m " + model + " -f " + eval_text + " -c 128 --chunks 4 -t 1 ";
  const Result ok = run(ppl + "--cache " + spec + " --calib " + adapter);
  ASSERT_EQ(ok.code, 0) << ok.out;
  EXPECT_GT(ppl_in_output(ok.out), 1.0) << ok.out;
  const Result other = run(ppl + "--cache h1b:bits=64,est=qjl,sink=2,window=8,orth=1,center=1,ridge=0.05 --calib " + adapter);
  EXPECT_NE(other.code, 0);
  EXPECT_NE(other.out.find("made for cache option kl=40, the cache has kl=0"), std::string::npos) << other.out;
}
