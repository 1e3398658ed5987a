// Log-likelihood scoring as lm-eval does it, and the eval harness's sums, on stories260K and on
// hand-built numbers.
#include <gtest/gtest.h>

#include <cmath>

#include "eval/eval_run.h"
#include "eval/session.h"
#include "eval/tasks/loglik.h"
#include "kv/registry.h"
#include "model/model.h"
#include "tokenize/tokenizer.h"
#include "util/error.h"
#include "util/paths.h"

using namespace h1bkv;

namespace {

struct Env {
  std::unique_ptr<Model> model = Model::load(shared_dir() + "/models/stories260K.gguf");
  std::unique_ptr<Tokenizer> tok = Tokenizer::from_gguf(model->gguf());
};

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

// A context ending in whitespace: the space moves to the continuation, so the pair equals the
// one without it, and continuation tokens are tokens(whole) past tokens(context).
TEST(TaskScoring, EncodePairMovesTrailingSpace) {
  Env e;
  const EncodedPair a = encode_pair(*e.tok, "Lily went to the ", "park");
  const EncodedPair b = encode_pair(*e.tok, "Lily went to the", " park");
  EXPECT_EQ(a.context, b.context);
  EXPECT_EQ(a.continuation, b.continuation);
  std::vector<int32_t> ctx = e.tok->encode("Lily went to the", false, false);
  if (e.tok->add_bos()) ctx.insert(ctx.begin(), e.tok->bos());
  EXPECT_EQ(a.context, ctx);
  EXPECT_EQ(concat(a.context, a.continuation), concat(e.tok->add_bos() ? std::vector<int32_t>{e.tok->bos()}
                                                                        : std::vector<int32_t>{},
                                                      e.tok->encode("Lily went to the park", false, false)));
  EXPECT_THROW(encode_pair(*e.tok, "Lily", ""), Error);
}

TEST(TaskScoring, LogProbAndArgmax) {
  const float logits[3] = {0.0f, std::log(2.0f), 0.0f};
  bool top = false;
  EXPECT_NEAR(log_prob(logits, 3, 1, &top), std::log(0.5), 1e-6);
  EXPECT_TRUE(top);
  EXPECT_NEAR(log_prob(logits, 3, 0, &top), std::log(0.25), 1e-6);
  EXPECT_FALSE(top);
}

// The summed log-probability read off the session equals the one from a single fresh forward pass
// over the whole sequence (row alignment: the logits of position i predict token i + 1).
TEST(TaskScoring, ContinuationLoglikMatchesFreshForward) {
  Env e;
  auto cache = make_cache(parse_cache_spec("f32"), e.model->cache_geometry(256));
  EvalSession s(*e.model, *cache);
  const EncodedPair p = encode_pair(*e.tok, "Once upon a time, there was a little girl named", " Lily who liked cats");
  const ContinuationScore c = score_continuation(s, p);
  const std::vector<int32_t> all = concat(p.context, p.continuation);
  const int64_t n = (int64_t)all.size(), V = e.model->config().n_vocab;
  auto fresh = make_cache(parse_cache_spec("f32"), e.model->cache_geometry(256));
  std::vector<float> logits((size_t)(n * V));
  e.model->forward(all.data(), n, 0, *fresh, logits.data(), true);
  double want = 0;
  bool greedy = true;
  for (int64_t i = (int64_t)p.context.size(); i < n; ++i) {
    bool top = false;
    want += log_prob(logits.data() + (i - 1) * V, V, all[(size_t)i], &top);
    greedy = greedy && top;
  }
  EXPECT_EQ(c.n_tokens, (int64_t)p.continuation.size());
  EXPECT_NEAR(c.loglik, want, 1e-3);
  EXPECT_EQ(c.greedy, greedy);
  EXPECT_LT(c.loglik, 0);
}

// A story continuation beats letter salad; the shared context is computed once.
TEST(TaskScoring, MultipleChoicePicksTheStoryContinuation) {
  Env e;
  auto cache = make_cache(parse_cache_spec("f16"), e.model->cache_geometry(256));
  EvalSession s(*e.model, *cache);
  const std::string ctx = "Once upon a time, there was a little girl named Lily. She loved to play";
  const std::vector<std::string> choices = {"xq zv qqj kkz wpf.", "outside with her friends.", "zzq vvx jjq."};
  const ItemResult r = score_multiple_choice(s, *e.tok, ctx, choices, 1);
  EXPECT_TRUE(r.correct);
  EXPECT_TRUE(r.correct_norm);
  EXPECT_FALSE(score_multiple_choice(s, *e.tok, ctx, choices, 0).correct);
  // context tokens reused by the second and third choice (and by the repeated item)
  EXPECT_GT(s.stats().tokens_reused, 4 * (int64_t)e.tok->encode(ctx, false, false).size());
}

// acc picks the highest sum, acc_norm the highest sum per character: they differ here.
TEST(TaskScoring, AccNormDiffersFromAcc) {
  const McPick p = pick_choice({-10.0, -12.0}, {5.0, 20.0});  // per char: -2.0 vs -0.6
  EXPECT_EQ(p.by_sum, 0);
  EXPECT_EQ(p.by_norm, 1);
  const McPick tie = pick_choice({-3.0, -3.0}, {1.0, 1.0});  // first index on ties, as np.argmax
  EXPECT_EQ(tie.by_sum, 0);
  EXPECT_EQ(tie.by_norm, 0);
  EXPECT_EQ(utf8_length("café"), 4);  // characters, not bytes (lm-eval's len(choice))
}

TEST(TaskScoring, BinomialStandardError) {
  EXPECT_DOUBLE_EQ(binomial_se(0.5, 100), 0.05);
  EXPECT_NEAR(binomial_se(0.2, 5), std::sqrt(0.2 * 0.8 / 5), 1e-15);
  EXPECT_DOUBLE_EQ(binomial_se(1.0, 10), 0.0);
  EXPECT_DOUBLE_EQ(binomial_se(0.3, 0), 0.0);
}

namespace {

// Correct on even items, group "g<i%3>", one summed number: checks the harness's bookkeeping.
class FakeTask : public Task {
 public:
  std::string name() const override { return "fake"; }
  int64_t size() const override { return 10; }
  int64_t standard_size() const override { return 6; }
  bool has_norm() const override { return true; }
  int64_t ctx_needed() const override { return 64; }
  ItemResult score(EvalSession& s, int64_t item) override {
    s.eval({1, 2, 3, (int32_t)(4 + item)});
    ItemResult r;
    r.correct = item % 2 == 0;
    r.correct_norm = item < 3;
    r.group = "g" + std::to_string(item % 3);
    r.sums["x"] = (double)item;
    return r;
  }
  nlohmann::json settings() const override { return {{"shots", 0}}; }
  std::vector<std::pair<std::string, double>> summarize(const std::map<std::string, double>& sums,
                                                        int64_t n) const override {
    return {{"mean_x", sums.at("x") / (double)n}};
  }
};

}  // namespace

TEST(TaskScoring, HarnessSumsItemsPerCache) {
  Env e;
  FakeTask t;
  EvalParams p;
  const auto caches = parse_cache_list("f16;q8_0");
  const EvalResult r = run_eval(*e.model, {&t}, caches, p);
  ASSERT_EQ(r.rows.size(), 2u);
  for (const EvalRow& row : r.rows) {
    EXPECT_EQ(row.n, 6);  // the standard subset: items 0-5
    EXPECT_DOUBLE_EQ(row.acc, 0.5);
    EXPECT_DOUBLE_EQ(row.acc_se, binomial_se(0.5, 6));
    EXPECT_DOUBLE_EQ(row.acc_norm, 0.5);
    ASSERT_EQ(row.metrics.size(), 1u);
    EXPECT_DOUBLE_EQ(row.metrics[0].second, 2.5);  // (0+1+..+5)/6
    ASSERT_EQ(row.groups.size(), 3u);
    EXPECT_EQ(row.groups[0].name, "g0");
    EXPECT_EQ(row.groups[0].n, 2);
    EXPECT_EQ(row.groups[0].correct, 1);  // items 0 (even) and 3
    EXPECT_EQ(row.n_ctx, 64);
    EXPECT_EQ(row.stats.tokens_reused, 5 * 3);  // each item after the first reuses {1,2,3}
  }
  EXPECT_EQ(r.rows[0].spec, "f16");
  EXPECT_GT(r.rows[0].bytes_per_token, r.rows[1].bytes_per_token);
  p.limit = 4;
  EXPECT_EQ(run_eval(*e.model, {&t}, caches, p).rows[0].n, 4);
  p.full = true;
  EXPECT_EQ(run_eval(*e.model, {&t}, caches, p).rows[0].n, 10);
  const nlohmann::json j = eval_json(r);
  EXPECT_EQ(j["rows"].size(), 2u);
  EXPECT_EQ(j["tasks"]["fake"]["items"], 6);
  EXPECT_NE(eval_markdown(r).find("| fake | q8_0 |"), std::string::npos);
  EXPECT_NE(eval_svg(r, "t").find("</svg>"), std::string::npos);
}
