// `eval --task-file`: a user's {query, choices, gold[, context]} JSONL file becomes a multiple-choice
// task prompted as ARC/PIQA; malformed lines are one-line errors naming FILE:LINE.
#include <gtest/gtest.h>

#include <fstream>

#include "eval/tasks/mc_task.h"
#include "eval/tasks/task_file.h"
#include "io/gguf.h"
#include "tokenize/tokenizer.h"
#include "util/error.h"
#include "util/paths.h"

using namespace h1bkv;

namespace {

std::string write_tmp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

std::unique_ptr<Tokenizer> stories_tokenizer() {
  auto g = GgufFile::open(shared_dir() + "/models/stories260K.gguf");
  return Tokenizer::from_gguf(*g);
}

// The error make_task_from_file throws for a file of these lines ("" if none).
std::string error_for(const std::string& lines) {
  const std::string path = write_tmp("bad_task.jsonl", lines);
  auto tok = stories_tokenizer();
  try {
    make_task_from_file(path, *tok);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(TaskFile, ItemsPromptsAndName) {
  const std::string path = write_tmp(
      "my_quiz.jsonl",
      "{\"query\": \"Question: What is 2+2?\", \"choices\": [\"3\", \"4\"], \"gold\": 1}\n"
      "\n"
      "{\"query\": \"Which is red?\\n\", \"choices\": [\"sky\", \"grass\", \"blood\"], \"gold\": 2,"
      " \"context\": \"Blood is red. Grass is green.\\n\"}\n");
  auto tok = stories_tokenizer();
  auto task = make_task_from_file(path, *tok);
  EXPECT_EQ(task->name(), "my_quiz");
  EXPECT_EQ(task->size(), 2);
  EXPECT_EQ(task->standard_size(), 2);  // a user's file is scored whole by default
  EXPECT_TRUE(task->has_norm());
  const auto& items = static_cast<const McTask&>(*task).items();
  EXPECT_EQ(items[0].context, "Question: What is 2+2?\nAnswer:");
  EXPECT_EQ(items[0].gold, 1);
  EXPECT_EQ(items[1].context, "Blood is red. Grass is green.\nQuestion: Which is red?\nAnswer:");
  EXPECT_EQ(items[1].choices, (std::vector<std::string>{"sky", "grass", "blood"}));
  EXPECT_EQ(items[1].gold, 2);
  EXPECT_GT(task->ctx_needed(), 10);
  EXPECT_LT(task->ctx_needed(), 100);
}

TEST(TaskFile, MalformedLineNamesFileAndLine) {
  const std::string good = "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n";
  const std::string path = ::testing::TempDir() + "/bad_task.jsonl";
  struct Case {
    std::string line, message;
  };
  const Case cases[] = {
      {"{\"query\": \"q\", \"choices\": [\"a\"", "not JSON"},
      {"[1, 2]", "not a JSON object"},
      {"{\"query\": \"q\", \"choices\": [\"a\", \"b\"]}", "expected {\"query\": string"},
      {"{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 2}", "gold 2 is out of range [0, 2)"},
      {"{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": -1}", "gold -1 is out of range"},
      {"{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 4294967296}", "out of range"},
      {"{\"query\": \"q\", \"choices\": [], \"gold\": 0}", "\"choices\" is empty"},
      {"{\"query\": \"q\", \"choices\": [\"a\", 7], \"gold\": 0}", "a choice is not a string"},
      {"{\"query\": \"q\", \"choices\": [\"a\"], \"gold\": 0, \"context\": 3}", "\"context\" is not a string"},
  };
  for (const Case& c : cases) {
    const std::string err = error_for(good + good + c.line + "\n" + good);
    EXPECT_EQ(err.rfind(path + ":3: ", 0), 0u) << c.line << " -> " << err;
    EXPECT_NE(err.find(c.message), std::string::npos) << c.line << " -> " << err;
    EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  }
  EXPECT_EQ(error_for("\n\n"), path + ": no items");
}
