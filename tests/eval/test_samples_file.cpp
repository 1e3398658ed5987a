// The samples file alone: lines written and read back as the same ItemResult, a half-written last
// line cut, a whole last line without its '\n' kept, bad lines refused with FILE:LINE.
#include "eval/samples_file.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "util/error.h"

namespace h1bkv {
namespace {

std::string read_all(const std::string& path) {
  std::stringstream ss;
  ss << std::ifstream(path, std::ios::binary).rdbuf();
  return ss.str();
}

std::string fresh(const std::string& name) {
  const std::string p = ::testing::TempDir() + "/" + name;
  std::remove(p.c_str());
  return p;
}

TEST(SamplesFile, WrittenLinesReadBackAsTheSameResult) {
  const std::string path = fresh("samples_roundtrip.jsonl");
  ItemResult r;
  r.correct = true;
  r.correct_norm = false;
  r.group = "abstract_algebra";
  r.sums = {{"target_nll", 0.1 + 0.2}, {"n", 3}};
  r.sample = {{"completion", std::string("cut \xe2\x82")}};  // a character cut in two: replaced, not a throw
  {
    SamplesFile f(path);
    f.append({"mmlu", "f16", settings_hash({{"shots", 5}}), 7}, "f16", r, true, 42, 1.5, 1.25);
  }
  SamplesFile g(path);
  const nlohmann::json* line = g.find({"mmlu", "f16", settings_hash({{"shots", 5}}), 7});
  ASSERT_NE(line, nullptr);
  EXPECT_EQ(g.find({"mmlu", "f16", settings_hash({{"shots", 4}}), 7}), nullptr);
  EXPECT_EQ(g.other_settings("mmlu", "f16", settings_hash({{"shots", 4}})), 1);
  const ItemResult back = item_result_from_sample(*line);
  EXPECT_TRUE(back.correct);
  EXPECT_FALSE(back.correct_norm);
  EXPECT_EQ(back.group, "abstract_algebra");
  EXPECT_EQ(back.sums, r.sums);  // doubles round-trip exactly
  EXPECT_EQ((*line)["tokens"], 42);
  EXPECT_EQ((*line)["cpu_seconds"], 1.25);
  EXPECT_EQ((*line)["sample"]["completion"], "cut \xef\xbf\xbd");
}

TEST(SamplesFile, HalfWrittenLastLineIsCutWholeOneKept) {
  const std::string path = fresh("samples_partial.jsonl");
  ItemResult r;
  {
    SamplesFile f(path);
    f.append({"arc_easy", "f16", "h", 0}, "f16", r, false, 1, 0.5, 0.25);
    f.append({"arc_easy", "f16", "h", 1}, "f16", r, false, 1, 0.5, 0.25);
  }
  const std::string two = read_all(path);
  const size_t first_end = two.find('\n') + 1;
  std::ofstream(path, std::ios::trunc) << two.substr(0, first_end) << two.substr(first_end, 30);
  {
    SamplesFile f(path);
    EXPECT_NE(f.find({"arc_easy", "f16", "h", 0}), nullptr);
    EXPECT_EQ(f.find({"arc_easy", "f16", "h", 1}), nullptr);
    EXPECT_EQ(read_all(path), two.substr(0, first_end));
    f.append({"arc_easy", "f16", "h", 1}, "f16", r, false, 1, 0.5, 0.25);
  }
  EXPECT_EQ(read_all(path), two);
  std::ofstream(path, std::ios::trunc) << two.substr(0, two.size() - 1);  // only the '\n' missing
  {
    SamplesFile f(path);
    EXPECT_NE(f.find({"arc_easy", "f16", "h", 1}), nullptr);
  }
  EXPECT_EQ(read_all(path), two);
}

TEST(SamplesFile, BadLinesAreRefusedWithFileAndLine) {
  const std::string path = fresh("samples_bad.jsonl");
  const std::string good =
      R"({"task":"t","cache":"f16","spec":"f16","settings":"h","item":0,"correct":true,"sums":{},"tokens":3,"seconds":0.1})";
  const auto refused = [&](const std::string& text) {
    std::ofstream(path, std::ios::trunc) << text;
    try {
      SamplesFile f(path);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(refused(good + "\n[1, 2]\n"), path + ":2: not a JSON object");
  EXPECT_EQ(refused(good + "\n{\"task\": \n" + good + "\n"), path + ":2: not JSON");
  EXPECT_EQ(refused(R"({"task":"t","cache":"f16","spec":"f16","settings":"h","item":-1})" "\n"),
            path + ":1: no \"item\" index >= 0");
  EXPECT_EQ(refused(R"({"task":"t","cache":"f16","spec":"f16","settings":"h","item":0,"correct":true,"sums":{"a":"x"},"tokens":3,"seconds":0.1})" "\n"),
            path + ":1: sums \"a\" is not a number");
  EXPECT_EQ(refused(good + "\n\n" + good + "\n"), path + ":3: item 0 of t / f16 is already on an earlier line");
  EXPECT_EQ(refused(good + "\n\n"), "accepted");
  // another file given by mistake (no '\n' at all) is refused and left as it was
  const std::string binary = std::string("GGUF\x03", 5) + std::string(1, '\0') + "binary";
  EXPECT_EQ(refused(binary), path + ":1: not JSON");
  EXPECT_EQ(read_all(path), binary);
}

}  // namespace
}  // namespace h1bkv
