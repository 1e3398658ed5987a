// Tokenizer behaviour beyond llama.cpp's vectors: the stories260K and SmolLM2 tokenizers, special
// tokens, EOG, decoding, invalid UTF-8, pre-tokenizer splits and encode speed.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/gguf.h"
#include "tokenize/pretokenize.h"
#include "tokenize/tokenizer.h"
#include "tokenize/unicode.h"
#include "util/error.h"
#include "util/paths.h"

namespace h1bkv {
namespace {

using Ids = std::vector<int32_t>;

std::unique_ptr<Tokenizer> load(const std::string& path) {
  if (!std::filesystem::exists(path)) return nullptr;
  auto g = GgufFile::open(path);
  return Tokenizer::from_gguf(*g);
}
std::unique_ptr<Tokenizer> vocab(const std::string& name) {
  return load(shared_dir() + "/data/vocab/ggml-vocab-" + name + ".gguf");
}
std::string smollm_path() { return models_dir() + "/SmolLM2-135M-Instruct.Q4_1.gguf"; }

#define LOAD_OR_SKIP(var, expr)                             \
  auto var = (expr);                                        \
  if (!var) GTEST_SKIP() << "tokenizer file not found: " #expr

TEST(Stories260K, OnceUponATime) {
  LOAD_OR_SKIP(t, load(shared_dir() + "/models/stories260K.gguf"));
  EXPECT_EQ(t->model_name(), "llama");
  EXPECT_EQ(t->n_vocab(), 512);
  EXPECT_EQ(t->bos(), 1);
  EXPECT_EQ(t->eos(), 2);
  EXPECT_TRUE(t->add_bos());
  EXPECT_TRUE(t->is_eog(2));
  // BOS, "▁Once" "▁upon" "▁a" "▁time" (checked against a plain score-greedy merge in Python).
  EXPECT_EQ(t->encode("Once upon a time", true, false), (Ids{1, 403, 407, 261, 378}));
  EXPECT_EQ(t->encode("Once upon a time", false, false), (Ids{403, 407, 261, 378}));
  const std::string s = "Once upon a time, there was a little girl named Lily.";
  Ids ids = t->encode(s, true, false);
  EXPECT_EQ(ids, (Ids{1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426}));
  EXPECT_EQ(t->decode(ids), s);
  EXPECT_EQ(t->decode(ids, true), "<s>" + s);
  EXPECT_EQ(t->token_to_piece(403), " Once");
  EXPECT_EQ(t->token_to_piece(1), "");
  EXPECT_EQ(t->token_to_piece(1, true), "<s>");
  EXPECT_EQ(t->token_to_piece(t->token_id("<0x0A>")), "\n");
  EXPECT_EQ(t->encode("", true, false), (Ids{1}));
  EXPECT_TRUE(t->encode("", false, false).empty());
  // Characters missing from the vocab fall back to byte tokens (<0xXX> is id 3 + byte).
  Ids han = t->encode("\xE6\x9D\xB1", false, false);  // U+6771
  ASSERT_GE(han.size(), 3u);
  EXPECT_EQ(Ids(han.end() - 3, han.end()), (Ids{3 + 0xE6, 3 + 0x9D, 3 + 0xB1}));
  EXPECT_EQ(t->decode(t->encode("x \xE6\x9D\xB1 y\n", true, false)), "x \xE6\x9D\xB1 y\n");
  EXPECT_THROW(t->token_to_piece(512), Error);
}

TEST(SmolLM2, HelloWorldAndChatTokens) {
  if (!std::filesystem::exists(smollm_path())) GTEST_SKIP() << smollm_path() << " not found";
  auto t = load(smollm_path());
  EXPECT_EQ(t->model_name(), "gpt2");
  EXPECT_EQ(t->pre_name(), "smollm");
  EXPECT_FALSE(t->add_bos());
  EXPECT_EQ(t->encode("Hello world", true, false), (Ids{19556, 905}));
  const int32_t im_start = t->token_id("<|im_start|>"), im_end = t->token_id("<|im_end|>");
  ASSERT_EQ(im_start, 1);
  ASSERT_EQ(im_end, 2);
  EXPECT_EQ(t->encode("<|im_start|>", false, true), (Ids{im_start}));
  EXPECT_GT(t->encode("<|im_start|>", false, false).size(), 1u);  // plain text without parse
  Ids chat = t->encode("<|im_start|>user\nHello world<|im_end|>\n", false, true);
  EXPECT_EQ(chat, (Ids{1, 4093, 198, 19556, 905, 2, 198}));
  EXPECT_EQ(t->decode(chat, true), "<|im_start|>user\nHello world<|im_end|>\n");
  EXPECT_EQ(t->decode(chat), "user\nHello world\n");
  EXPECT_TRUE(t->is_eog(im_end));
  EXPECT_TRUE(t->is_eog(t->token_id("<|endoftext|>")));
  EXPECT_TRUE(t->is_eog(t->eos()));
  EXPECT_FALSE(t->is_eog(im_start));
  // smollm = starcoder splits: digits one by one.
  EXPECT_EQ(t->encode("2024", false, false).size(), 4u);
}

TEST(Special, ParseSpecialAndUserDefined) {
  LOAD_OR_SKIP(f, vocab("falcon"));
  EXPECT_EQ(f->encode(">>TITLE<<", false, true), (Ids{0}));
  EXPECT_NE(f->encode(">>TITLE<<", false, false), (Ids{0}));
  EXPECT_EQ(f->encode("a<|endoftext|>b", false, true)[1], 11);
  // USER_DEFINED tokens are split out even without parse_special (llama.cpp does the same):
  // mpt has whitespace runs as user-defined tokens.
  LOAD_OR_SKIP(m, vocab("mpt"));
  int32_t sp4 = m->token_id("    ");
  ASSERT_GE(sp4, 0);
  EXPECT_EQ(m->encode("    ", false, false), (Ids{sp4}));
  // phi-3 (general.name Phi3): special tokens strip whitespace on their right.
  LOAD_OR_SKIP(p, vocab("phi-3"));
  int32_t end = p->token_id("<|end|>");
  EXPECT_EQ(p->encode("<|end|>  \nhi", false, true), p->encode("<|end|>hi", false, true));
  EXPECT_EQ(p->encode("<|end|>hi", false, true)[0], end);
  EXPECT_TRUE(p->is_eog(end));
  EXPECT_TRUE(p->is_eog(p->token_id("<|endoftext|>")));
}

TEST(Special, FlagsAndEog) {
  LOAD_OR_SKIP(g, vocab("gpt-2"));
  EXPECT_FALSE(g->add_bos());
  EXPECT_TRUE(g->is_eog(50256));
  EXPECT_EQ(g->encode("hi", true, false), g->encode("hi", false, false));
  EXPECT_EQ(g->token_to_piece(g->token_id("\xC4\xA0")), " ");  // "Ġ"
  LOAD_OR_SKIP(d, vocab("deepseek-llm"));
  EXPECT_TRUE(d->add_bos());  // from tokenizer.ggml.add_bos_token
  EXPECT_EQ(d->encode("hi", true, false)[0], d->bos());
  LOAD_OR_SKIP(s, vocab("llama-spm"));
  EXPECT_TRUE(s->add_space_prefix());
  EXPECT_TRUE(s->is_eog(2));
  EXPECT_FALSE(s->is_eog(1));
  EXPECT_EQ(s->encode("<s>", false, true), (Ids{1}));
  auto bert = GgufFile::open(shared_dir() + "/data/vocab/ggml-vocab-bert-bge.gguf");
  EXPECT_THROW(Tokenizer::from_gguf(*bert), Error);
}

TEST(InvalidUtf8, Throws) {
  LOAD_OR_SKIP(s, vocab("llama-spm"));
  LOAD_OR_SKIP(b, vocab("gpt-2"));
  const std::pair<std::string, int> bad[] = {
      {"abc\xFF", 3}, {"\xC3", 0}, {"ok \xC0\xAF", 3}, {"\xED\xA0\x80", 0},
      {"\xF4\x90\x80\x80", 0}, {"x\x80y", 1}, {"\xE2\x82", 0}, {"ab\xE2\x28\xA1", 2}};
  for (const auto& [text, at] : bad) {
    for (const Tokenizer* t : {s.get(), b.get()}) {
      try {
        t->encode(text, true, true);
        ADD_FAILURE() << "no error for byte " << at;
      } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()), "invalid UTF-8 in input text at byte " + std::to_string(at));
      }
    }
  }
  EXPECT_NO_THROW(b->encode("\xF4\x8F\xBF\xBF \xF0\x9F\x98\x80", false, false));
}

// decode(encode(t)) == t for all test inputs, except where llama.cpp's clean_spaces rewrites
// " ." and friends (vocabs with clean_spaces).
TEST(Decode, RoundTrip) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  int checked = 0;
  for (const char* name : {"llama-spm", "phi-3", "gpt-2", "mpt", "falcon", "starcoder", "refact",
                           "deepseek-llm", "deepseek-coder"}) {
    auto t = vocab(name);
    if (!t) continue;
    std::ifstream f(shared_dir() + "/data/vocab/ggml-vocab-" + std::string(name) + ".gguf.inp",
                    std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    std::string raw = ss.str();
    for (size_t pos = 0; pos < raw.size();) {
      size_t next = raw.find(sep, pos);
      std::string text = raw.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
      pos = next == std::string::npos ? raw.size() : next + sep.size();
      if (t->clean_spaces()) {
        bool touched = false;
        for (const char* pat : {" ?", " !", " .", " ,", " '"})
          touched |= text.find(pat) != std::string::npos;
        if (touched) continue;
      }
      EXPECT_EQ(t->decode(t->encode(text, false, false)), text) << name;
      EXPECT_EQ(t->decode(t->encode(text, true, false)), text) << name << " with BOS";
      ++checked;
    }
  }
  if (checked == 0) GTEST_SKIP() << "no vocab files";
}

std::vector<std::string> split(const std::string& s, PreType type) {
  auto cps = uc::decode_utf8(s);
  std::vector<std::string> out;
  size_t i = 0;
  for (uint32_t n : pre_split(cps, type)) {
    std::string w;
    for (uint32_t k = 0; k < n; ++k) uc::append_utf8(w, cps[i++]);
    out.push_back(w);
  }
  return out;
}

using Words = std::vector<std::string>;

// Splits worked out by hand from the regexes (no vocab vectors exist for these pre-types).
TEST(PreTokenize, Llama3AndQwen2) {
  const std::string s = "Hello world 12345 IT'S\n\n  x";
  EXPECT_EQ(split(s, PreType::LLAMA3),
            (Words{"Hello", " world", " ", "123", "45", " IT", "'S", "\n\n", " ", " x"}));
  EXPECT_EQ(split(s, PreType::QWEN2),
            (Words{"Hello", " world", " ", "1", "2", "3", "4", "5", " IT", "'S", "\n\n", " ", " x"}));
  EXPECT_EQ(split("a...\n\nb", PreType::LLAMA3), (Words{"a", "...\n\n", "b"}));
  EXPECT_EQ(split("\xC3\xA9t\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD", PreType::LLAMA3),
            (Words{"\xC3\xA9t\xC3\xA9", " \xE4\xBD\xA0\xE5\xA5\xBD"}));
  EXPECT_EQ(split("  hello it's", PreType::GPT2), (Words{" ", " hello", " it", "'s"}));
}

TEST(PreTokenize, Names) {
  EXPECT_EQ(pre_info("llama-bpe").type, PreType::LLAMA3);
  EXPECT_TRUE(pre_info("llama3").ignore_merges);
  EXPECT_EQ(pre_info("qwen2").type, PreType::QWEN2);
  EXPECT_EQ(pre_info("smollm").type, PreType::STARCODER);
  EXPECT_FALSE(pre_info("smollm").clean_spaces);
  EXPECT_EQ(pre_info("").type, PreType::DEFAULT);
  EXPECT_THROW(pre_info("no-such-pre"), Error);
}

// wikitext-2 test (1.3 MB) must tokenize fast: it is encoded whole for perplexity.
TEST(SpeedSlow, EncodeWikitext) {
  const std::string path = shared_dir() + "/data/wikitext-2/wiki.test.raw";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not found";
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  auto t = std::filesystem::exists(smollm_path()) ? load(smollm_path()) : vocab("gpt-2");
  if (!t) GTEST_SKIP() << "no BPE tokenizer";
  auto t0 = std::chrono::steady_clock::now();
  Ids ids = t->encode(text, false, false);
  double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ speed ] %s: %zu bytes -> %zu tokens in %.3f s (%.1f MB/s)\n",
              t->pre_name().c_str(), text.size(), ids.size(), sec, text.size() / sec / 1e6);
#ifdef NDEBUG
  EXPECT_LT(sec, 3.0);
#else
  EXPECT_LT(sec, 20.0);  // unoptimised / sanitizer builds
#endif
  EXPECT_GT(ids.size(), text.size() / 8);
  if (!t->clean_spaces()) {
    EXPECT_EQ(t->decode(ids), text);
  }
}

}  // namespace
}  // namespace h1bkv

namespace h1bkv {
namespace {

// Random byte strings either encode or throw Error; valid ones decode back for SPM and for BPE
// vocabs without clean_spaces.
TEST(Robustness, RandomInput) {
  std::vector<std::unique_ptr<Tokenizer>> toks;
  for (const char* n : {"llama-spm", "deepseek-llm", "deepseek-coder", "falcon", "starcoder"})
    if (auto t = vocab(n)) toks.push_back(std::move(t));
  if (toks.empty()) GTEST_SKIP() << "no vocab files";
  const char* pieces[] = {" ", "  ", "\n", "\r\n", "\t", "a", "Z", "7", "123", "'s", "'LL", ".",
                          "!?", "$", "\xC3\xA9", "\xE4\xBD\xA0", "\xE3\x80\x80", "\xC2\xA0",
                          "\xF0\x9F\x98\x80", "\xD9\xA3", "<s>", "<|endoftext|>", "\xFF", "\xC3"};
  uint32_t seed = 12345;
  auto rnd = [&] { seed = seed * 1664525u + 1013904223u; return seed >> 8; };
  for (int iter = 0; iter < 300; ++iter) {
    std::string s;
    int n = rnd() % 24;
    for (int k = 0; k < n; ++k) s += pieces[rnd() % std::size(pieces)];
    const bool valid = uc::find_invalid_utf8(s) == std::string::npos;
    for (const auto& t : toks) {
      if (!valid) {
        EXPECT_THROW(t->encode(s, true, rnd() % 2), Error);
        continue;
      }
      Ids ids = t->encode(s, false, false);
      for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < t->n_vocab());
      if (!t->clean_spaces()) {
        EXPECT_EQ(t->decode(ids), s) << t->pre_name();
      }
    }
  }
}

}  // namespace
}  // namespace h1bkv
