// `h1bkv calibrate --cache h1b:...,center=1,ridge=..,itq=..` end to end on stories260K (head_dim
// 8): the adapter it writes holds the fitted tensors and loads into `ppl --calib`; an adapter for
// another key configuration, and an adapter spec without one, are one-line errors.
#include <gtest/gtest.h>

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
