// `h1bkv eval` end to end on stories260K: every (task, cache) row printed, JSON with the prompt
// settings, the plot written, and bad task names rejected before any work.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "cli/run_cli.h"
#include "util/paths.h"

namespace {

using Result = h1bkv::test::CliResult;
using h1bkv::test::run_cli;
Result run_h1bkv(const std::string& args, bool merge_stderr = true) { return run_cli(args, merge_stderr); }

std::string stories() { return h1bkv::shared_dir() + "/models/stories260K.gguf"; }

}  // namespace

TEST(EvalCli, PrintsEveryTaskCacheRow) {
  const std::string svg = ::testing::TempDir() + "/eval_plot.svg";
  const Result r = run_h1bkv("eval -m " + stories() + " --tasks arc_easy,lambada --caches \"f16;q8_0\" --limit 5 -t 1 --plot " + svg);
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* row : {"| arc_easy | f16 | 640 | 5 |", "| arc_easy | q8_0 | 400 | 5 |", "| lambada | f16 | 640 | 5 |",
                          "| lambada | q8_0 | 400 | 5 |"})
    EXPECT_NE(r.out.find(row), std::string::npos) << row << "\n" << r.out;
  EXPECT_NE(r.out.find("ppl "), std::string::npos) << r.out;
  std::stringstream ss;
  ss << std::ifstream(svg).rdbuf();
  EXPECT_NE(ss.str().find("<circle"), std::string::npos);
}

TEST(EvalCli, JsonHasRowsAndPromptSettings) {
  const Result r = run_h1bkv("eval -m " + stories() + " --tasks arc_challenge --caches f16 --limit 3 -t 1 --json", false);
  ASSERT_EQ(r.code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["rows"].size(), 1u);
  EXPECT_EQ(j["rows"][0]["items"], 3);
  EXPECT_EQ(j["rows"][0]["task"], "arc_challenge");
  EXPECT_TRUE(j["rows"][0].contains("acc_norm"));
  EXPECT_EQ(j["tasks"]["arc_challenge"]["shots"], 0);
  EXPECT_EQ(j["tasks"]["arc_challenge"]["standard_size"], 500);
}

TEST(EvalCli, UnknownTaskIsAnError) {
  const Result r = run_h1bkv("eval -m " + stories() + " --tasks arc_easy,nope --caches f16");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("error: unknown task 'nope'"), std::string::npos) << r.out;
}
