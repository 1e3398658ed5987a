// eval --parallel: several generations decoded in one batch give what generate_greedy gives one
// at a time (stories260K, caches with and without a recent window), through generate_parallel
// and through run_eval with a samples file.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "eval/eval_run.h"
#include "eval/generate.h"
#include "eval/generate_parallel.h"
#include "eval/samples_file.h"
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
};

// Seven requests: different prompts, budgets (one of 0), stop strings that end some early.
std::vector<GenRequest> requests(const Tokenizer& tok) {
  const char* texts[] = {"Once upon a time", "The cat sat", "Lily went to the park and",
                         "One day, a big dog", "Tom had a red ball.", "The sun was", "Once upon a time there"};
  const int64_t budgets[] = {40, 25, 0, 60, 33, 1, 50};
  std::vector<GenRequest> out;
  for (int i = 0; i < 7; ++i) {
    GenRequest r;
    r.prompt = tok.encode(texts[i], true, false);
    r.opt.max_new_tokens = budgets[i];
    if (i % 2 == 1) r.opt.stop = {".", "!"};
    out.push_back(r);
  }
  return out;
}

}  // namespace

class GenerateParallel : public ::testing::TestWithParam<const char*> {};

TEST_P(GenerateParallel, SameGenerationsAsOneAtATime) {
  Stories s;
  const std::vector<GenRequest> reqs = requests(*s.tok);
  const int64_t n_ctx = 256;
  auto one_cache = make_cache(parse_cache_spec(GetParam()), s.model->cache_geometry(n_ctx));
  EvalSession one(*s.model, *one_cache);
  std::vector<Generation> want;
  for (const GenRequest& r : reqs) want.push_back(generate_greedy(one, *s.tok, r.prompt, r.opt));

  std::vector<std::unique_ptr<KvCache>> caches;
  std::vector<std::unique_ptr<EvalSession>> owned;
  std::vector<EvalSession*> sessions;
  for (int i = 0; i < 3; ++i) {
    caches.push_back(make_cache(parse_cache_spec(GetParam()), s.model->cache_geometry(n_ctx)));
    owned.push_back(std::make_unique<EvalSession>(*s.model, *caches.back()));
    sessions.push_back(owned.back().get());
  }
  std::vector<Generation> got(reqs.size());
  std::vector<RequestCost> costs(reqs.size());
  std::vector<int> order;
  generate_parallel(
      sessions, *s.tok, (int64_t)reqs.size(), [&](int64_t i) { return reqs[(size_t)i]; },
      [&](int64_t i, Generation&& g, const RequestCost& c) {
        got[(size_t)i] = std::move(g);
        costs[(size_t)i] = c;
        order.push_back((int)i);
      });
  ASSERT_EQ(order.size(), reqs.size());
  EXPECT_NE(order, std::vector<int>({0, 1, 2, 3, 4, 5, 6}));  // they did overlap
  for (size_t i = 0; i < reqs.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    EXPECT_EQ(got[i].text, want[i].text);
    EXPECT_EQ(got[i].tokens, want[i].tokens);
    EXPECT_EQ(got[i].reason, want[i].reason);
    if (reqs[i].opt.max_new_tokens > 0) {
      EXPECT_GT(costs[i].seconds, 0);
      // the last token generated is never pushed
      EXPECT_EQ(costs[i].tokens, (int64_t)(reqs[i].prompt.size() + got[i].tokens.size()) -
                                     (got[i].reason == StopReason::kEndOfGeneration ? 0 : 1));
    }
  }
  EXPECT_EQ(want[2].tokens.size(), 0u);
  EXPECT_EQ(want[5].tokens.size(), 1u);
  EXPECT_EQ(want[1].reason, StopReason::kStopString);
}

INSTANTIATE_TEST_SUITE_P(Caches, GenerateParallel,
                         ::testing::Values("f32", "kivi:bits=2,group=16,residual=16",
                                           "h1b:bits=128,sink=4,window=8"));

TEST(GenerateParallelErrors, PromptPastTheContextThrows) {
  Stories s;
  auto c0 = make_cache(parse_cache_spec("f32"), s.model->cache_geometry(16));
  auto c1 = make_cache(parse_cache_spec("f32"), s.model->cache_geometry(16));
  EvalSession a(*s.model, *c0), b(*s.model, *c1);
  GenRequest r;
  r.prompt.assign(17, 1);
  r.opt.max_new_tokens = 4;
  EXPECT_THROW(generate_parallel({&a, &b}, *s.tok, 2, [&](int64_t) { return r; },
                                 [](int64_t, Generation&&, const RequestCost&) {}),
               Error);
}

TEST(GenerateParallelEval, SamplesMatchOneAtATime) {
  Stories s;
  TaskOptions o;
  o.tok = s.tok.get();
  o.data_dir = shared_dir() + "/data";
  o.shots = 1;
  o.n_ctx = s.model->config().n_ctx_train;
  auto task = make_task("gsm8k", o);
  const std::vector<CacheListEntry> caches = parse_cache_list("f16");
  auto run = [&](int parallel) {
    const std::string path = ::testing::TempDir() + "/parallel" + std::to_string(parallel) + ".jsonl";
    std::remove(path.c_str());
    SamplesFile samples(path);
    EvalParams p;
    p.limit = 5;
    p.n_ctx = 1024;
    p.parallel = parallel;
    p.samples = &samples;
    const EvalResult r = run_eval(*s.model, {task.get()}, caches, p);
    std::vector<nlohmann::json> lines;
    std::ifstream in(path);
    for (std::string l; std::getline(in, l);) lines.push_back(nlohmann::json::parse(l));
    return std::make_pair(r, lines);
  };
  const auto [r1, l1] = run(1);
  const auto [r3, l3] = run(3);
  ASSERT_EQ(l1.size(), 5u);
  ASSERT_EQ(l3.size(), 5u);
  std::map<int64_t, nlohmann::json> by_item;
  for (const auto& j : l1) by_item[j["item"].get<int64_t>()] = j;
  for (const auto& j : l3) {
    const nlohmann::json& one = by_item.at(j["item"].get<int64_t>());
    EXPECT_EQ(j["sample"], one["sample"]);
    EXPECT_EQ(j["tokens"], one["tokens"]);
    EXPECT_EQ(j["settings"], one["settings"]);  // --parallel does not change the samples key
    EXPECT_EQ(j["parallel"], 3);
    EXPECT_FALSE(one.contains("parallel"));
  }
  ASSERT_EQ(r1.rows.size(), 1u);
  ASSERT_EQ(r3.rows.size(), 1u);
  EXPECT_EQ(r3.rows[0].acc, r1.rows[0].acc);
  EXPECT_EQ(r3.rows[0].metrics, r1.rows[0].metrics);
  // every prompt token and every pushed token is counted once, over the three sessions
  EXPECT_EQ(r3.rows[0].stats.tokens_computed + r3.rows[0].stats.tokens_reused,
            r1.rows[0].stats.tokens_computed + r1.rows[0].stats.tokens_reused);
}
