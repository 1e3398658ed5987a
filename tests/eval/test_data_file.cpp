#include <gtest/gtest.h>

#include "eval/data_file.h"
#include "util/error.h"
#include "util/paths.h"

using namespace h1bkv;

TEST(DataFile, HellaSwagBzip2HasSixLinesPerItem) {
  const auto lines = read_data_lines(shared_dir() + "/data/tasks/hellaswag_val_full.txt.bz2");
  EXPECT_EQ(lines.size(), 10042u * 6);  // PROVENANCE.md: 10042 items in llama.cpp's 6-line format
  EXPECT_TRUE(lines[1] == "0" || lines[1] == "1" || lines[1] == "2" || lines[1] == "3") << lines[1];
}

TEST(DataFile, HumanEvalGzipHas164Problems) {
  const auto lines = read_data_lines(shared_dir() + "/data/humaneval/HumanEval.jsonl.gz");
  EXPECT_EQ(lines.size(), 164u);
  EXPECT_EQ(lines[0].rfind("{\"task_id\": \"HumanEval/0\"", 0), 0u) << lines[0].substr(0, 40);
}

TEST(DataFile, CorruptOrMissingFilesAreErrors) {
  const std::string dir = testing::TempDir();
  for (const char* name : {"bad.gz", "bad.bz2"}) {
    const std::string p = dir + name;
    FILE* f = std::fopen(p.c_str(), "wb");
    std::fputs(std::string(name) == "bad.gz" ? "\x1f\x8b\x08garbage" : "BZh9garbage", f);
    std::fclose(f);
    EXPECT_THROW(read_data_file(p), Error) << name;
  }
  EXPECT_THROW(read_data_file(dir + "missing.bz2"), Error);
  EXPECT_THROW(read_data_file(dir + "missing.txt"), Error);
}

TEST(DataFile, JsonLinesNameTheLineOfAnError) {
  const std::string p = testing::TempDir() + "items.jsonl";
  auto write = [&](const char* text) {
    FILE* f = std::fopen(p.c_str(), "wb");
    std::fputs(text, f);
    std::fclose(f);
  };
  write("{\"a\": \"x\"}\n\n{\"a\": \"y\", \"b\": 2}\n");
  const auto lines = read_jsonl(p);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1].str("a"), "y");
  EXPECT_EQ(lines[1].where, p + ":3");
  auto error_of = [&](auto fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error_of([&] { lines[1].str("b"); }), p + ":3: needs a string field \"b\"");
  write("{\"a\": 1}\n{oops\n");
  EXPECT_EQ(error_of([&] { read_jsonl(p); }).rfind(p + ":2: not JSON", 0), 0u);
  write("[1, 2]\n");
  EXPECT_EQ(error_of([&] { read_jsonl(p); }), p + ":1: not a JSON object");
  write("\n\n");
  EXPECT_EQ(error_of([&] { read_jsonl(p); }), p + ": no items");
}
