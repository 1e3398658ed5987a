// Bad input gets one line "error: ..." naming the problem and a non-zero exit, never a crash.
// These cases are the README's bad-input table.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "cli/run_cli.h"
#include "util/paths.h"

namespace {

using Result = h1bkv::test::CliResult;
Result run(const std::string& args) { return h1bkv::test::run_cli(args); }

std::string stories() { return h1bkv::shared_dir() + "/models/stories260K.gguf"; }

std::string temp_file(const std::string& name, const std::string& content) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

void expect_error(const std::string& args, const std::string& needle) {
  const Result r = run(args);
  EXPECT_NE(r.code, 0) << args << "\n" << r.out;
  EXPECT_LT(r.code, 128) << "crashed: " << args << "\n" << r.out;
  EXPECT_NE(r.out.find(needle), std::string::npos) << args << "\n" << r.out;
}

}  // namespace

TEST(BadInput, MissingModelFile) {
  expect_error("run -m /nonexistent/model.gguf -p hi", "error: /nonexistent/model.gguf: cannot open");
}

TEST(BadInput, NotAGgufFile) {
  const std::string f = temp_file("not.gguf", "hello, this is text and not a model\n");
  expect_error("run -m " + f + " -p hi", "not a GGUF file (bad magic)");
}

TEST(BadInput, TruncatedModel) {
  std::ifstream in(stories(), std::ios::binary);
  std::string head(200000, '\0');
  in.read(head.data(), head.size());
  const std::string f = temp_file("truncated.gguf", head);
  expect_error("run -m " + f + " -p hi", "past the end of the file");
}

TEST(BadInput, UnknownCacheType) {
  expect_error("run -m " + stories() + " -p hi --cache f8", "unknown cache type 'f8' (valid: ");
}

TEST(BadInput, BadCacheOption) {
  expect_error("run -m " + stories() + " -p hi --cache plain:k=q2", "'q2' is not one of");
  expect_error("run -m " + stories() + " -p hi -ctk q3", "'q3' is not one of");
}

TEST(BadInput, ContextOverflow) {
  expect_error("run -m " + stories() + " -p 'Once upon a time' -n 64 -c 16", "context overflow");
}

TEST(BadInput, UnknownFlag) {
  const Result r = run("run -m " + stories() + " --bogus");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("--bogus"), std::string::npos) << r.out;
}

TEST(BadInput, MissingTextFile) {
  expect_error("ppl -m " + stories() + " -f /nonexistent/text.txt", "/nonexistent/text.txt: cannot open");
}

TEST(BadInput, TextShorterThanOneChunk) {
  const std::string f = temp_file("short.txt", "Once upon a time.");
  expect_error("ppl -m " + stories() + " -f " + f + " -c 128", "fewer than one chunk");
}

TEST(BadInput, InvalidUtf8Prompt) {
  expect_error("run -m " + stories() + " -p \"$(printf 'abc\\377\\376')\"", "invalid UTF-8");
}

TEST(BadInput, KlBaseMismatch) {
  const std::string base = ::testing::TempDir() + "/base.lp";
  const std::string text = h1bkv::shared_dir() + "/data/tinystories/sample.txt";
  const Result r = run("ppl -m " + stories() + " -f " + text + " -c 64 --chunks 2 --save-logits " + base);
  ASSERT_EQ(r.code, 0) << r.out;
  expect_error("ppl -m " + stories() + " -f " + text + " -c 32 --chunks 2 --kl-base " + base,
               "base logits were computed with -c 64");
  const std::string junk = temp_file("junk.lp", "nonsense");
  expect_error("ppl -m " + stories() + " -f " + text + " -c 64 --kl-base " + junk, "bad magic");
}

TEST(BadInput, NegativeThreads) {
  expect_error("run -m " + stories() + " -p hi -t -1", "-t must be >= 0");
}

// The same run with itself as base: KL 0 and full top-1 agreement.
TEST(PplSlow, KlAgainstItselfIsZero) {
  const std::string base = ::testing::TempDir() + "/self.lp";
  const std::string text = h1bkv::shared_dir() + "/data/tinystories/sample.txt";
  ASSERT_EQ(run("ppl -m " + stories() + " -f " + text + " -c 64 --save-logits " + base).code, 0);
  const Result r = run("ppl -m " + stories() + " -f " + text + " -c 64 --kl-base " + base + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"top1_agree\": 1.0"), std::string::npos) << r.out;
}
