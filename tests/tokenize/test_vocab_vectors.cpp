// llama.cpp's tokenizer test vectors (models/ggml-vocab-*.gguf.inp/.out, run there by
// tests/test-tokenizer-0.cpp with add_special = false, parse_special = false), checked exactly
// for every vocab in shared/data/vocab whose model is "llama" or "gpt2".
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/gguf.h"
#include "tokenize/tokenizer.h"
#include "util/paths.h"

namespace h1bkv {
namespace {

std::string vocab_dir() { return shared_dir() + "/data/vocab"; }

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Case {
  std::string text;
  std::vector<int32_t> ids;
};

// Same parsing as test-tokenizer-0.cpp's read_tests.
std::vector<Case> read_cases(const std::string& base) {
  const std::string raw = slurp(base + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  for (size_t pos = 0; pos < raw.size();) {
    size_t next = raw.find(sep, pos);
    if (next == std::string::npos) { inputs.push_back(raw.substr(pos)); break; }
    inputs.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::ifstream out(base + ".out");
  std::vector<std::vector<int32_t>> outs;
  for (std::string line; std::getline(out, line);) {
    std::istringstream ls(line);
    std::vector<int32_t> ids;
    for (long v; ls >> v;) ids.push_back(int32_t(v));
    outs.push_back(ids);
  }
  std::vector<Case> cases;
  if (inputs.size() != outs.size()) return cases;
  for (size_t i = 0; i < inputs.size(); ++i) cases.push_back({inputs[i], outs[i]});
  return cases;
}

std::string show(const Tokenizer& t, const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) {
    s += std::to_string(id) + "'";
    if (id >= 0 && id < t.n_vocab()) s += t.token_to_piece(id, true);
    s += "' ";
  }
  return s;
}

class VocabVectors : public ::testing::TestWithParam<std::string> {};

TEST_P(VocabVectors, MatchLlamaCpp) {
  const std::string base = vocab_dir() + "/ggml-vocab-" + GetParam() + ".gguf";
  if (!std::filesystem::exists(base) || !std::filesystem::exists(base + ".inp"))
    GTEST_SKIP() << base << " (or its .inp/.out) not found";
  auto g = GgufFile::open(base);
  auto tok = Tokenizer::from_gguf(*g);
  auto cases = read_cases(base);
  ASSERT_FALSE(cases.empty()) << "no test vectors parsed for " << base;
  int failed = 0;
  for (const auto& c : cases) {
    auto got = tok->encode(c.text, false, false);
    EXPECT_EQ(got, c.ids) << GetParam() << " input '" << c.text << "'\n  expected: "
                          << show(*tok, c.ids) << "\n  got:      " << show(*tok, got);
    failed += got != c.ids;
  }
  RecordProperty("vectors", int(cases.size()));
  std::printf("[ vocab %-15s ] %zu vectors, %d failed\n", GetParam().c_str(), cases.size(),
              failed);
}

// Every vocab in the folder with test vectors and a "llama" or "gpt2" model.
INSTANTIATE_TEST_SUITE_P(All, VocabVectors,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "mpt", "falcon",
                                           "starcoder", "refact", "deepseek-llm", "qwen2",
                                           "deepseek-coder"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (!isalnum(uint8_t(c))) c = '_';
                           return n;
                         });

}  // namespace
}  // namespace h1bkv
