#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "eval/tasks/passkey.h"
#include "io/gguf.h"
#include "tokenize/tokenizer.h"
#include "util/error.h"
#include "util/paths.h"

using namespace h1bkv;

namespace {

const Tokenizer& stories_tok() {
  static const auto g = GgufFile::open(shared_dir() + "/models/stories260K.gguf");
  static const auto t = Tokenizer::from_gguf(*g);
  return *t;
}

}  // namespace

TEST(Passkey, LengthAndDepthAsRequested) {
  const Tokenizer& tok = stories_tok();
  for (int64_t target : {1024, 2048}) {
    const int64_t n = passkey_filler_sentences(tok, target);
    for (int depth : {0, 25, 50, 75, 100}) {
      const PasskeyPrompt p = make_passkey_prompt(tok, n, depth / 100.0, "12345");
      const double len = (double)p.tokens.size();
      EXPECT_LE(std::fabs(len - (double)target), 0.02 * (double)target) << target << " " << depth;
      // the key's token index over the prompt length: the requested depth, up to the header and
      // question (with this 512-token vocabulary 7% of a 1k prompt, 3.5% of 2k)
      EXPECT_NEAR((double)p.key_token / len, depth / 100.0, 75.0 / len) << target << " " << depth;
      // within the filler, the requested depth up to a sentence
      const double start = (double)make_passkey_prompt(tok, n, 0.0, "12345").key_token;
      const double end = (double)make_passkey_prompt(tok, n, 1.0, "12345").key_token;
      EXPECT_NEAR(((double)p.key_token - start) / (end - start), depth / 100.0, 0.01) << target << " " << depth;
      // the key sentence really starts at key_token
      std::vector<int32_t> tail(p.tokens.begin() + p.key_token, p.tokens.end());
      EXPECT_EQ(tok.decode(tail).find("The pass key is 12345."), 0u) << tok.decode(tail).substr(0, 40);
      EXPECT_NE(p.text.find("12345. Remember it. 12345 is the pass key."), std::string::npos);
      EXPECT_TRUE(p.text.ends_with(" pass key.\n\nWhat is the pass key? The pass key is") || p.text.ends_with(".\n\nWhat is the pass key? The pass key is"));
    }
    // the largest filler that fits: one more sentence overflows
    EXPECT_LE((int64_t)make_passkey_prompt(tok, n, 0.5, "00000").tokens.size(), target);
    EXPECT_GT((int64_t)make_passkey_prompt(tok, n + 1, 0.5, "00000").tokens.size(), target);
  }
}

TEST(Passkey, DeterministicForASeed) {
  const Tokenizer& tok = stories_tok();
  EXPECT_EQ(passkey_key(7, 4096, 50), passkey_key(7, 4096, 50));
  EXPECT_NE(passkey_key(7, 4096, 50), passkey_key(8, 4096, 50));
  EXPECT_NE(passkey_key(7, 4096, 50), passkey_key(7, 4096, 25));
  for (uint64_t s = 0; s < 50; ++s) {
    const std::string k = passkey_key(s, 1024, 0);
    EXPECT_EQ(k.size(), 5u);
    EXPECT_NE(k[0], '0');
  }
  const auto a = make_passkey_prompt(tok, 100, 0.25, passkey_key(3, 1024, 25));
  const auto b = make_passkey_prompt(tok, 100, 0.25, passkey_key(3, 1024, 25));
  EXPECT_EQ(a.text, b.text);
  EXPECT_EQ(a.tokens, b.tokens);
}

TEST(Passkey, EdgesAndBadInput) {
  const Tokenizer& tok = stories_tok();
  // depth 0: the key comes right after the header; depth 1: right before the question
  const auto first = make_passkey_prompt(tok, 10, 0.0, "54321");
  EXPECT_NE(first.text.find("\n\nThe pass key is 54321."), std::string::npos);
  const auto last = make_passkey_prompt(tok, 10, 1.0, "54321");
  EXPECT_NE(last.text.find("54321 is the pass key.\n\nWhat is"), std::string::npos);
  EXPECT_THROW(make_passkey_prompt(tok, 10, 1.5, "54321"), Error);
  EXPECT_THROW(make_passkey_prompt(tok, 10, 0.5, "5432"), Error);
  EXPECT_THROW(make_passkey_prompt(tok, 10, 0.5, "5432x"), Error);
  EXPECT_EQ(passkey_filler_sentences(tok, 5), 0);
}

TEST(Passkey, AnswerMatching) {
  EXPECT_TRUE(passkey_answer_matches(" 12345.", "12345"));
  EXPECT_TRUE(passkey_answer_matches(" 12345. Remember", "12345"));
  EXPECT_FALSE(passkey_answer_matches(" 123456", "12345"));
  EXPECT_FALSE(passkey_answer_matches(" 1234", "12345"));
  EXPECT_FALSE(passkey_answer_matches(" 54321 or 12345", "12345"));
  EXPECT_FALSE(passkey_answer_matches(" green", "12345"));
}

TEST(Passkey, KeyIndexZeroIsTheOneKeyGridsKey) {
  // goldens from the first grid's results (docs/eval/f16_passkey.json, seed 0)
  EXPECT_EQ(passkey_key(0, 1024, 0), "94537");
  EXPECT_EQ(passkey_key(0, 8192, 50, 0), "12738");
  std::set<std::string> cell;
  for (int k = 0; k < 3; ++k) cell.insert(passkey_key(0, 4096, 25, k));
  EXPECT_EQ(cell.size(), 3u);
  EXPECT_THROW(passkey_key(0, 4096, 25, -1), Error);
}

TEST(Passkey, GridWithLengthsAndKeysPerCell) {
  TaskOptions o;
  o.tok = &stories_tok();
  o.n_ctx = 4096;
  o.passkey_lengths = {2048, 1024, 2048};  // sorted, duplicates dropped
  o.passkey_keys = 3;
  auto t = make_task("passkey", o);
  ASSERT_EQ(t->size(), 2 * 5 * 3);
  EXPECT_EQ(t->ctx_needed(), 2048);
  auto& g = dynamic_cast<GenerativeTask&>(*t);
  const nlohmann::json s = t->settings();
  EXPECT_EQ(s.at("lengths"), nlohmann::json({1024, 2048}));
  EXPECT_EQ(s.at("keys_per_cell"), 3);
  // item = (length, depth, key): items 15..17 are ctx 2048 depth 100 %, keys 0..2
  for (int k = 0; k < 3; ++k) {
    const int64_t item = 15 + k;
    const std::string key = passkey_key(0, 2048, 100, k);
    EXPECT_EQ(s.at("keys").at("ctx 2048 depth 100%").at(k), key);
    const GenRequest r = g.request(item, 2048);
    EXPECT_LE((int64_t)r.prompt.size(), 2048);
    EXPECT_GT((int64_t)r.prompt.size(), 1900);
    EXPECT_NE(o.tok->decode(r.prompt).find("The pass key is " + key + "."), std::string::npos);
    Generation gen;
    gen.text = " " + key + ".";
    const ItemResult res = g.judge(item, gen);
    EXPECT_TRUE(res.correct);
    EXPECT_EQ(res.group, "ctx 2048 depth 100%");
  }
  // the last item: ctx 2048, depth 0 %, key 2
  EXPECT_NE(o.tok->decode(g.request(29, 2048).prompt).find("The pass key is " + passkey_key(0, 2048, 0, 2)),
            std::string::npos);
  // the default grid keeps its one-key settings (resumed samples files still match)
  TaskOptions d;
  d.tok = &stories_tok();
  d.n_ctx = 2048;
  auto t1 = make_task("passkey", d);
  EXPECT_EQ(t1->size(), 10);
  EXPECT_FALSE(t1->settings().contains("keys_per_cell"));
  EXPECT_EQ(t1->settings().at("keys").at("ctx 1024 depth 0%"), "94537");
}

TEST(Passkey, BadGridOptions) {
  TaskOptions o;
  o.tok = &stories_tok();
  o.n_ctx = 2048;
  o.passkey_lengths = {4096};
  EXPECT_THROW(make_task("passkey", o), Error);  // past the context
  o.passkey_lengths = {50};
  EXPECT_THROW(make_task("passkey", o), Error);  // too short for the question and the answer
  o.passkey_lengths = {1024};
  o.passkey_keys = 0;
  EXPECT_THROW(make_task("passkey", o), Error);
  o.passkey_keys = 17;
  EXPECT_THROW(make_task("passkey", o), Error);
}
