#include <gtest/gtest.h>

#include "eval/generate.h"
#include "eval/session.h"
#include "kv/registry.h"
#include "model/model.h"
#include "tokenize/tokenizer.h"
#include "util/error.h"
#include "util/paths.h"

using namespace h1bkv;

namespace {

struct Stories {
  std::unique_ptr<Model> model = Model::load(shared_dir() + "/models/stories260K.gguf");
  std::unique_ptr<Tokenizer> tok = Tokenizer::from_gguf(model->gguf());
  std::unique_ptr<KvCache> cache;
  std::unique_ptr<EvalSession> session;
  explicit Stories(int64_t n_ctx) {
    cache = make_cache(parse_cache_spec("f32"), model->cache_geometry(n_ctx));
    session = std::make_unique<EvalSession>(*model, *cache);
  }
  std::vector<int32_t> prompt() { return tok->encode("Once upon a time", true, false); }
  Generation run(int64_t max_new, std::vector<std::string> stop = {}) {
    GenerateOptions opt;
    opt.max_new_tokens = max_new;
    opt.stop = std::move(stop);
    return generate_greedy(*session, *tok, prompt(), opt);
  }
};

// stories260K's greedy continuation of "Once upon a time" (40 tokens, f32 cache).
const char* kGolden =
    ", there was a little girl named Lily. She loved to play outside in the park. One day, she "
    "saw a big, red ball.";

// The real vocabulary, with one chosen id declared end-of-generation.
struct EogAt : Tokenizer {
  const Tokenizer& base;
  int32_t eog;
  EogAt(const Tokenizer& b, int32_t id) : base(b), eog(id) {}
  std::vector<int32_t> encode(const std::string& t, bool a, bool p) const override { return base.encode(t, a, p); }
  std::string token_to_piece(int32_t id, bool special) const override { return base.token_to_piece(id, special); }
  int32_t n_vocab() const override { return base.n_vocab(); }
  int32_t bos() const override { return base.bos(); }
  int32_t eos() const override { return eog; }
  bool is_eog(int32_t id) const override { return id == eog; }
  bool add_bos() const override { return base.add_bos(); }
  std::string model_name() const override { return base.model_name(); }
  std::string pre_name() const override { return base.pre_name(); }
};

}  // namespace

TEST(Generate, GoldenGreedyText) {
  Stories s(256);
  const Generation g = s.run(40);
  EXPECT_EQ(g.text, kGolden);
  EXPECT_EQ(g.reason, StopReason::kMaxTokens);
  ASSERT_EQ(g.tokens.size(), 40u);
  std::string pieces;
  for (int32_t t : g.tokens) pieces += s.tok->token_to_piece(t);
  EXPECT_EQ(pieces, g.text);
  // a shorter budget gives a prefix of the same tokens, also when the session is reused
  const Generation h = s.run(7);
  EXPECT_EQ(h.tokens, std::vector<int32_t>(g.tokens.begin(), g.tokens.begin() + 7));
}

TEST(Generate, StopStringCutsTheText) {
  Stories s(256);
  // "Lily" ends the text before it, whichever tokens it spans
  Generation g = s.run(40, {"xyz", "Lily"});
  EXPECT_EQ(g.reason, StopReason::kStopString);
  EXPECT_EQ(g.text, ", there was a little girl named ");
  // the earliest of several stop strings wins; a stop string inside one token is found too
  g = s.run(40, {"park", "play"});
  EXPECT_EQ(g.text, ", there was a little girl named Lily. She loved to ");
  g = s.run(40, {"."});
  EXPECT_EQ(g.text, ", there was a little girl named Lily");
  // the tokens include the one that completed the stop string
  std::string pieces;
  for (int32_t t : g.tokens) pieces += s.tok->token_to_piece(t);
  EXPECT_EQ(pieces.rfind(", there was a little girl named Lily.", 0), 0u);
  EXPECT_LE(pieces.size() - g.text.size(), 8u);
}

TEST(Generate, EndOfGenerationTokenEndsWithoutItsText) {
  Stories s(256);
  const Generation g = s.run(40);
  const EogAt tok(*s.tok, g.tokens[5]);  // the 6th greedy token (first use of that id)
  int first = 0;
  while (g.tokens[(size_t)first] != g.tokens[5]) ++first;
  GenerateOptions opt;
  opt.max_new_tokens = 40;
  const Generation h = generate_greedy(*s.session, tok, s.prompt(), opt);
  EXPECT_EQ(h.reason, StopReason::kEndOfGeneration);
  EXPECT_EQ(h.tokens, std::vector<int32_t>(g.tokens.begin(), g.tokens.begin() + first));
  opt.stop_at_eog = false;
  EXPECT_EQ(generate_greedy(*s.session, tok, s.prompt(), opt).text, kGolden);
}

TEST(Generate, NeverPastTheContext) {
  Stories probe(256);
  const int64_t p = (int64_t)probe.prompt().size();
  Stories s(p + 5);
  const Generation g = s.run(40);
  EXPECT_EQ(g.reason, StopReason::kContextFull);
  // 5 free slots hold 5 generated tokens; the 6th comes from the last logits without a slot
  ASSERT_EQ(g.tokens.size(), 6u);
  EXPECT_EQ(g.tokens, std::vector<int32_t>(probe.run(6).tokens));
  EXPECT_EQ((int64_t)s.session->held().size(), p + 5);
  Stories full(p);
  EXPECT_EQ(full.run(40).tokens.size(), 1u);
  Stories small(p - 1);
  EXPECT_THROW(small.run(40), Error);
}
