// `h1bkv eval --samples FILE`: a run stopped after k items (here: a run of the first k, then a
// half-written line, as a kill leaves it) and resumed gives the totals and the file of one run
// without a stop; lines from other settings are not counted; a corrupt line is refused with
// FILE:LINE before the model loads; progress lines are printed when stderr is not a terminal.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli/run_cli.h"
#include "util/paths.h"

namespace {

using h1bkv::test::run_cli;

std::string stories() { return h1bkv::shared_dir() + "/models/stories260K.gguf"; }

std::string read_all(const std::string& path) {
  std::stringstream ss;
  ss << std::ifstream(path, std::ios::binary).rdbuf();
  return ss.str();
}

std::vector<nlohmann::json> read_lines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

// The file's lines without "seconds" and "cpu_seconds", the only fields two runs may write differently.
std::vector<nlohmann::json> untimed(const std::string& path) {
  std::vector<nlohmann::json> out = read_lines(path);
  for (auto& j : out) j.erase("seconds"), j.erase("cpu_seconds");
  return out;
}

nlohmann::json eval_json(const std::string& args) {
  const h1bkv::test::CliResult r = run_cli("eval -m " + stories() + " -t 1 --json " + args, false);
  EXPECT_EQ(r.code, 0) << r.out;
  return r.code == 0 ? nlohmann::json::parse(r.out) : nlohmann::json::object();
}

// Resumes `args` with `n` items after a run of the first `k` and half of the next line; checks
// totals and file content against one run of all n.
void check_resume(const std::string& name, const std::string& args, int n, int k) {
  const std::string whole = ::testing::TempDir() + "/samples_whole_" + name + ".jsonl";
  const std::string parts = ::testing::TempDir() + "/samples_parts_" + name + ".jsonl";
  std::remove(whole.c_str());
  std::remove(parts.c_str());
  const nlohmann::json one = eval_json(args + " --limit " + std::to_string(n) + " --samples " + whole);
  const nlohmann::json first = eval_json(args + " --limit " + std::to_string(k) + " --samples " + parts);
  ASSERT_EQ(first["rows"][0]["items"], k);
  ASSERT_EQ(read_lines(parts).size(), (size_t)k);
  {  // a kill while writing line k + 1
    std::ifstream in(whole);
    std::string next;
    for (int i = 0; i <= k; ++i) std::getline(in, next);
    std::ofstream(parts, std::ios::app) << next.substr(0, next.size() / 2);
  }
  const h1bkv::test::CliResult resumed = run_cli(
      "eval -m " + stories() + " -t 1 --json " + args + " --limit " + std::to_string(n) + " --samples " + parts,
      false);
  ASSERT_EQ(resumed.code, 0) << resumed.out;
  const nlohmann::json rest = nlohmann::json::parse(resumed.out);
  ASSERT_EQ(one["rows"].size(), 1u);
  const nlohmann::json &a = one["rows"][0], &b = rest["rows"][0];
  EXPECT_EQ(b["items"], n);
  EXPECT_EQ(b["items_from_samples"], k);
  EXPECT_EQ(a["items_from_samples"], 0);
  for (const char* key : {"acc", "acc_norm", "groups", "generated_tokens_per_item", "no_number_frac"})
    EXPECT_EQ(a.contains(key) ? a[key] : nullptr, b.contains(key) ? b[key] : nullptr) << key;
  EXPECT_EQ(untimed(whole), untimed(parts));
  EXPECT_EQ(read_lines(whole).size(), (size_t)n);
}

}  // namespace

TEST(EvalSamplesCli, ResumedMultipleChoiceEqualsOneRun) {
  check_resume("arc", "--tasks arc_easy --caches f16", 6, 3);
}

TEST(EvalSamplesCli, ResumedGenerationEqualsOneRun) {
  check_resume("gsm8k", "--tasks gsm8k --shots 1 --caches q8_0", 3, 1);
}

// A line from other settings (here another -c) is kept in the file and not counted.
TEST(EvalSamplesCli, OtherSettingsAreNotCounted) {
  const std::string path = ::testing::TempDir() + "/samples_other.jsonl";
  std::remove(path.c_str());
  const nlohmann::json small = eval_json("--tasks arc_easy -c 200 --limit 4 --caches f16 --samples " + path);
  const h1bkv::test::CliResult r =
      run_cli("eval -m " + stories() + " -t 1 --tasks arc_easy --limit 4 --caches f16 --samples " + path);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find(path + ": arc_easy / f16: 4 lines from other settings (prompt, model, -c) not used"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("| arc_easy | f16 | 640 | 4 |"), std::string::npos) << r.out;
  EXPECT_EQ(read_lines(path).size(), 8u);
  // the same settings again: nothing scored, the same total
  const nlohmann::json again = eval_json("--tasks arc_easy -c 200 --limit 4 --caches f16 --samples " + path);
  EXPECT_EQ(again["rows"][0]["items_from_samples"], 4);
  EXPECT_EQ(again["rows"][0]["acc"], small["rows"][0]["acc"]);
  EXPECT_EQ(again["rows"][0]["acc_norm"], small["rows"][0]["acc_norm"]);
  EXPECT_EQ(read_lines(path).size(), 8u);
}

TEST(EvalSamplesCli, CorruptLineIsRefusedWithFileAndLine) {
  const std::string path = ::testing::TempDir() + "/samples_corrupt.jsonl";
  std::remove(path.c_str());
  eval_json("--tasks arc_easy --limit 3 --caches f16 --samples " + path);
  std::vector<std::string> lines;
  {
    std::ifstream in(path);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
  }
  ASSERT_EQ(lines.size(), 3u);
  const std::string kept = read_all(path);
  std::ofstream(path) << lines[0] << "\n" << lines[1].substr(0, 20) << "\n" << lines[2] << "\n";
  h1bkv::test::CliResult r =
      run_cli("eval -m /nonexistent.gguf --tasks arc_easy --limit 3 --caches f16 --samples " + path);
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "error: " + path + ":2: not JSON\n");
  std::ofstream(path) << lines[0] << "\n" << lines[0] << "\n";
  r = run_cli("eval -m /nonexistent.gguf --tasks arc_easy --caches f16 --samples " + path);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("error: " + path + ":2: item 0 of arc_easy / f16 is already on an earlier line"),
            std::string::npos) << r.out;
  nlohmann::json j = nlohmann::json::parse(lines[0]);
  j.erase("correct");
  std::ofstream(path) << j.dump() << "\n";
  r = run_cli("eval -m /nonexistent.gguf --tasks arc_easy --caches f16 --samples " + path);
  EXPECT_EQ(r.out, "error: " + path + ":1: no \"correct\" true/false\n");
}

// Progress goes to a non-terminal stderr as lines (every 5 % and the last), resumed runs too.
TEST(EvalSamplesCli, ProgressLinesInALog) {
  const std::string path = ::testing::TempDir() + "/samples_progress.jsonl";
  std::remove(path.c_str());
  h1bkv::test::CliResult r = run_cli("eval -m " + stories() + " -t 1 --tasks gsm8k --shots 1 --limit 1 --caches f16 "
                                     "--samples " + path);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("eval 1/1  "), std::string::npos) << r.out;
  r = run_cli("eval -m " + stories() + " -t 1 --tasks gsm8k,mmlu --shots 1 --limit 2 --caches f16 --samples " + path);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find(path + ": gsm8k / f16: 1 of 2 items already scored there, 1 to go"), std::string::npos) << r.out;
  for (const char* line : {"eval 5/115  ", "eval 110/115  ", "eval 115/115  "})  // 1 gsm8k + 57 x 2 mmlu, every 5
    EXPECT_NE(r.out.find(line), std::string::npos) << line << "\n" << r.out;
}
