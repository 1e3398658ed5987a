// `run` reads its prompt from -p or -f and prefills it in batches of -b tokens; the batches change
// neither the prompt nor the greedy text.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "cli/run_cli.h"

namespace {

using h1bkv::test::run_cli;
using h1bkv::test::stories260k;

const char* kPrompt = "Once upon a time, there was a little girl named Lily. She loved to play outside";

std::string write_prompt() {
  const std::string path = ::testing::TempDir() + "h1bkv_run_prompt.txt";
  std::ofstream(path) << kPrompt;
  return path;
}

TEST(RunCli, PromptFileAndBatchesGiveTheSameText) {
  const std::string file = write_prompt();
  for (const char* cache : {"f16", "kivi:bits=2", "h1b:bits=128,window=4,sink=2"}) {
    const std::string tail = std::string(" -n 24 --cache ") + cache;
    const auto whole = run_cli("run -m " + stories260k() + " -p '" + kPrompt + "'" + tail, false);
    ASSERT_EQ(whole.code, 0) << cache;
    ASSERT_EQ(whole.out.rfind(kPrompt, 0), 0u) << whole.out;  // the prompt, then the generation
    EXPECT_GT(whole.out.size(), std::string(kPrompt).size() + 20) << whole.out;
    for (const char* b : {"1", "3", "7"}) {
      const auto batched = run_cli("run -m " + stories260k() + " -f " + file + " -b " + b + tail, false);
      EXPECT_EQ(batched.code, 0) << cache << " -b " << b;
      EXPECT_EQ(batched.out, whole.out) << cache << " -b " << b;
    }
  }
}

TEST(RunCli, PromptOptionsAreChecked) {
  const std::string file = write_prompt();
  auto r = run_cli("run -m " + stories260k() + " -f /nonexistent/prompt.txt");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("/nonexistent/prompt.txt"), std::string::npos) << r.out;
  r = run_cli("run -m " + stories260k() + " -p hi -f " + file);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("excludes"), std::string::npos) << r.out;
  r = run_cli("run -m " + stories260k() + " -p hi -b 0");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("-b"), std::string::npos) << r.out;
}

}  // namespace
