// Qwen2.5-Coder-1.5B-Instruct (Q4_K_M, qwen2, head dim 128) against llama.cpp on the same file.
// Slow (minutes on 2 cores) and the model is 1.1 GB: these run only with H1BKV_QWEN=1 and the
// model fetched (scripts/get_model.sh qwen2.5-coder-1.5b); CTest label Qwen (`ctest -L Qwen`).
// References: llama.cpp as vendored in the PyPI sdist llama-cpp-python==0.3.16 (commands beside
// each value).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "cli/run_cli.h"
#include "util/paths.h"

namespace {

using h1bkv::test::run_cli;

std::string qwen_path() { return h1bkv::models_dir() + "/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"; }

#define QWEN_OR_SKIP()                                                                      \
  do {                                                                                     \
    const char* on = std::getenv("H1BKV_QWEN");                                            \
    if (!on || std::string(on) != "1") GTEST_SKIP() << "set H1BKV_QWEN=1 to run";         \
    if (!std::ifstream(qwen_path()).good())                                                \
      GTEST_SKIP() << "no " << qwen_path() << " (scripts/get_model.sh qwen2.5-coder-1.5b)"; \
  } while (0)

std::string read_golden(const std::string& name) {
  std::ifstream f(std::string(H1BKV_TEST_DIR) + "/cli/golden/" + name, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

TEST(QwenModel, InfoShowsGeometry) {
  QWEN_OR_SKIP();
  const auto r = run_cli("info -m " + qwen_path(), false);
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* s : {"qwen2", "28 layers", "12 heads", "2 KV heads", "head dim 128"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
}

// Golden: llama.cpp's `llama-simple -m MODEL -n 48 "<|im_start|>user\nPROMPT<|im_end|>\n<|im_start|>assistant\n"`
// (greedy), the text after the prompt.
TEST(QwenModelSlow, GreedyChatMatchesLlamaCpp) {
  QWEN_OR_SKIP();
  const std::string golden = read_golden("qwen2.5-coder-1.5b_chat_greedy48.txt");
  ASSERT_FALSE(golden.empty());
  const auto r = run_cli("run -m " + qwen_path() +
                             " --chat --temp 0 -n 48 -t 2 -p 'Write a Python function that returns the "
                             "n-th Fibonacci number.'",
                         false);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, golden + "\n");
}

// llama.cpp: `llama-perplexity -m MODEL -f wiki.test.raw -c 2048 --chunks 2 -t 2` gives
// [1]11.3783,[2]14.1163 (final 14.1163 +/- 0.94123); h1bkv measured [1]11.3163,[2]14.1085
// (-0.06 % over both chunks; the first chunk alone is -0.54 %, from the f16 cache paths: with f32
// caches the first chunk is 11.3521 here, 11.3586 in llama.cpp; README, Models).
TEST(QwenModelSlow, WikiText2PerplexityWithinHalfPercentOfLlamaCpp) {
  QWEN_OR_SKIP();
  const auto r = run_cli("ppl -m " + qwen_path() + " -f " + h1bkv::shared_dir() +
                             "/data/wikitext-2/wiki.test.raw -c 2048 --chunks 2 -t 2 --json",
                         false);
  ASSERT_EQ(r.code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["chunks"], 2);
  const double want = 14.1163;
  EXPECT_NEAR(j["ppl"].get<double>(), want, want * 0.005);
}
