// `h1bkv eval` end to end on stories260K: every (task, cache) row printed, JSON with the prompt
// settings, the plot written, and bad task names rejected before any work.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
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

// HumanEval refuses to run model-written code when bubblewrap cannot start (here: a PATH with
// python3 but no bwrap), in one line and before the model loads, unless --unsafe-exec is passed.
TEST(EvalCli, HumanEvalRefusesWithoutTheSandbox) {
  const std::filesystem::path dir = ::testing::TempDir() + "/h1bkv-path-without-bwrap";
  std::filesystem::create_directories(dir);
  std::error_code ec;
  std::filesystem::create_symlink("/usr/bin/python3", dir / "python3", ec);  // may be there already
  const std::string saved = std::getenv("PATH") ? std::getenv("PATH") : "";
  setenv("PATH", dir.c_str(), 1);
  const Result refused = run_h1bkv("eval -m /nonexistent/model.gguf --tasks arc_easy,humaneval --caches f16");
  const Result unsafe = run_h1bkv("eval -m /nonexistent/model.gguf --tasks humaneval --caches f16 --unsafe-exec");
  setenv("PATH", saved.c_str(), 1);
  EXPECT_EQ(refused.code, 1);
  EXPECT_EQ(refused.out, "error: humaneval: the sandbox cannot start (bwrap not found on PATH (install the bubblewrap "
                         "package)); pass --unsafe-exec to run model-written code without it\n");
  EXPECT_EQ(unsafe.code, 1);
  EXPECT_EQ(unsafe.out.find("sandbox"), std::string::npos) << unsafe.out;  // it got as far as the model
  EXPECT_NE(unsafe.out.find("/nonexistent/model.gguf"), std::string::npos) << unsafe.out;
}

// Whether the programs ran in the sandbox is in the table and the JSON.
TEST(EvalCli, HumanEvalRecordsTheSandbox) {
  Result r = run_h1bkv("eval -m " + stories() + " --tasks humaneval --caches f16 --limit 1 -t 1 --json", false);
  ASSERT_EQ(r.code, 0) << r.out;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["unsafe_exec"], false);
  EXPECT_EQ(j["tasks"]["humaneval"]["unsafe_exec"], false);
  EXPECT_EQ(j["rows"][0]["sandboxed_frac"], 1.0);
  EXPECT_NE(j["tasks"]["humaneval"]["runner"].get<std::string>().find("inside bubblewrap"), std::string::npos);
  // the story model's text (not Python) is what --unsafe-exec runs outside the sandbox here
  r = run_h1bkv("eval -m " + stories() + " --tasks humaneval --caches f16 --limit 1 -t 1 --json --unsafe-exec", false);
  ASSERT_EQ(r.code, 0) << r.out;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["unsafe_exec"], true);
  EXPECT_EQ(j["rows"][0]["sandboxed_frac"], 0.0);
  EXPECT_EQ(j["rows"][0]["acc"], 0.0);
  r = run_h1bkv("eval -m " + stories() + " --tasks humaneval --caches f16 --limit 1 -t 1 --unsafe-exec");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("sandboxed_frac 0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("UNSAFE: --unsafe-exec: humaneval programs ran without the bubblewrap sandbox"), std::string::npos)
      << r.out;
}

// The CI smoke run on the real model: every task, an exact and a compressed cache, a few items
// each (one shot, so MMLU's 57 subjects and GSM8K stay short). Scores are not asserted (2 items
// say nothing); that every row appears, with the items asked for, is.
TEST(EvalCliSlow, SmolLM2SmokeRun) {
  const std::string model = h1bkv::models_dir() + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::ifstream(model).good()) GTEST_SKIP() << "no " << model << " (scripts/get_model.sh)";
  const Result r = run_h1bkv("eval -m " + model +
                                 " --tasks arc_easy,arc_challenge,piqa,hellaswag,mmlu,lambada,gsm8k,humaneval,passkey"
                                 " --caches \"f16;kivi:bits=2\" --limit 1 --shots 1 -c 1024 -t 2 --json",
                             false);
  ASSERT_EQ(r.code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["rows"].size(), 18u);
  for (const auto& row : j["rows"]) {
    const int64_t want = row["task"] == "mmlu" ? 57 : 1;  // mmlu: --limit per subject
    EXPECT_EQ(row["items"], want) << row.dump();
    EXPECT_GE(row["acc"].get<double>(), 0.0);
    EXPECT_LE(row["acc"].get<double>(), 1.0);
  }
}

// --task-file: the first lines of the ARC-Easy file, as a user's file, score exactly as the
// built-in task on the same items; with --tasks both run.
TEST(EvalCli, TaskFileScoresLikeBuiltInTask) {
  const std::string path = ::testing::TempDir() + "/arc5.jsonl";
  {
    std::ifstream in(h1bkv::shared_dir() + "/data/tasks/arc_easy.jsonl");
    std::ofstream out(path);
    std::string line;
    for (int i = 0; i < 5 && std::getline(in, line); ++i) out << line << "\n";
  }
  const Result a = run_h1bkv("eval -m " + stories() + " --task-file " + path + " --caches f16 -t 1 --json", false);
  const Result b = run_h1bkv("eval -m " + stories() + " --tasks arc_easy --limit 5 --caches f16 -t 1 --json", false);
  ASSERT_EQ(a.code, 0) << a.out;
  ASSERT_EQ(b.code, 0) << b.out;
  const nlohmann::json ja = nlohmann::json::parse(a.out), jb = nlohmann::json::parse(b.out);
  ASSERT_EQ(ja["rows"].size(), 1u);
  EXPECT_EQ(ja["rows"][0]["task"], "arc5");
  EXPECT_EQ(ja["rows"][0]["items"], 5);
  EXPECT_EQ(ja["rows"][0]["acc"], jb["rows"][0]["acc"]);
  EXPECT_EQ(ja["rows"][0]["acc_norm"], jb["rows"][0]["acc_norm"]);
  const Result both = run_h1bkv("eval -m " + stories() + " --tasks piqa --limit 2 --task-file " + path +
                                " --caches f16 -t 1 --json", false);
  ASSERT_EQ(both.code, 0) << both.out;
  EXPECT_EQ(nlohmann::json::parse(both.out)["rows"].size(), 2u);
}

TEST(EvalCli, MalformedTaskFileLineIsOneLineError) {
  const std::string path = ::testing::TempDir() + "/bad_user_task.jsonl";
  std::ofstream(path) << "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n"
                      << "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 5}\n";
  const Result r = run_h1bkv("eval -m " + stories() + " --task-file " + path + " --caches f16");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_EQ(r.out, "error: " + path + ":2: gold 5 is out of range [0, 2)\n");
}

// --passkey-lengths / --passkey-keys shape the grid: 2 lengths x 5 depths x 2 keys = 20 items, a
// group per cell; the options without the passkey task are an error before the model loads.
TEST(EvalCli, PasskeyGridOptions) {
  const Result r = run_h1bkv("eval -m " + stories() + " --tasks passkey --caches f16 -t 1 --json --groups 20"
                             " --passkey-lengths 256,128 --passkey-keys 2", false);
  ASSERT_EQ(r.code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["rows"].size(), 1u);
  EXPECT_EQ(j["rows"][0]["items"], 20);
  EXPECT_EQ(j["tasks"]["passkey"]["lengths"], nlohmann::json({128, 256}));
  EXPECT_EQ(j["tasks"]["passkey"]["keys_per_cell"], 2);
  EXPECT_EQ(j["tasks"]["passkey"]["keys"]["ctx 256 depth 50%"].size(), 2u);
  const Result bad = run_h1bkv("eval -m " + stories() + " --tasks arc_easy --passkey-keys 3");
  EXPECT_EQ(bad.code, 1);
  EXPECT_EQ(bad.out, "error: --passkey-lengths and --passkey-keys need passkey in --tasks\n");
}
