// `h1bkv calibrate --cache loki` end to end on stories260K (head_dim 8): the basis file it writes
// loads into `ppl --cache loki --calib FILE`; with r = head_dim and every token the loki cache
// scores the f16 cache's perplexity; without a file, loki is an error that says how to make one.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "kv/calib/loki_basis.h"
#include "cli/run_cli.h"
#include "util/paths.h"

namespace {

using Result = h1bkv::test::CliResult;
using h1bkv::test::ppl_in_output;
Result run(const std::string& args) { return h1bkv::test::run_cli(args); }

}  // namespace

TEST(LokiCli, CalibrateStories260KThenPpl) {
  const std::string model = h1bkv::shared_dir() + "/models/stories260K.gguf";
  const std::string calib_text = h1bkv::shared_dir() + "/data/sotu/2010_barack_obama_d.txt";
  const std::string eval_text = h1bkv::shared_dir() + "/data/tinystories/sample.txt";
  const std::string basis = ::testing::TempDir() + "/stories.loki.json";
  const Result cal = run("calibrate -m " + model + " -f " + calib_text +
                         " -c 128 --chunks 4 -t 1 --cache loki -o " + basis);
  ASSERT_EQ(cal.code, 0) << cal.out;
  EXPECT_NE(cal.out.find("r=8    1.0000"), std::string::npos) << cal.out;  // all 8 dims: all variance
  const h1bkv::LokiBasis b = h1bkv::load_loki_basis(basis);
  EXPECT_EQ(b.head_dim, 8);
  EXPECT_EQ(b.tokens, 4 * 128);
  EXPECT_EQ(b.text.size(), 1u);

  const std::string ppl = "ppl -m " + model + " -f " + eval_text + " -c 128 --chunks 4 -t 1 ";
  const Result f16 = run(ppl + "--cache f16");
  const Result full = run(ppl + "--cache loki:r=8,k=100000 --calib " + basis);
  const Result sparse = run(ppl + "--cache loki:r=2,k=0.25 --calib " + basis);
  ASSERT_EQ(f16.code, 0) << f16.out;
  ASSERT_EQ(full.code, 0) << full.out;
  ASSERT_EQ(sparse.code, 0) << sparse.out;
  const double p16 = ppl_in_output(f16.out), pfull = ppl_in_output(full.out), psparse = ppl_in_output(sparse.out);
  ASSERT_GT(p16, 1.0) << f16.out;
  EXPECT_NEAR(pfull, p16, 0.01 * p16);  // full rank, every token: f16 attention up to rounding
  EXPECT_GT(psparse, p16);              // a quarter of the tokens by 2 of 8 dims loses some
  EXPECT_LT(psparse, 5 * p16);

  const Result none = run(ppl + "--cache loki");
  EXPECT_NE(none.code, 0);
  EXPECT_NE(none.out.find("needs a calibration file"), std::string::npos) << none.out;
}
