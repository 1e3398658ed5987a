// gsm8k, humaneval and passkey through the task interface (registry, select, score, settings) on
// stories260K: what is checked is the plumbing and determinism, not the tiny model's accuracy.
#include <gtest/gtest.h>

#include "eval/sandbox.h"
#include "eval/session.h"
#include "eval/tasks/task.h"
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
  TaskOptions options() const {
    TaskOptions o;
    o.tok = tok.get();
    o.data_dir = shared_dir() + "/data";
    o.seed = 3;
    o.n_ctx = model->config().n_ctx_train;
    return o;
  }
};

}  // namespace

TEST(GenerativeTasks, PasskeyGridOnAShortModel) {
  Stories s;
  TaskOptions o = s.options();
  o.n_ctx = 2048;  // lengths 1024 and 2048
  EXPECT_EQ(make_task("passkey", o)->size(), 10);
  EXPECT_EQ(make_task("passkey", o)->ctx_needed(), 2048);
  // when no length of the grid fits the context: one row at the context length
  const int64_t n_ctx = 600;
  o.n_ctx = n_ctx;
  auto task = make_task("passkey", o);
  EXPECT_EQ(task->size(), 5);
  EXPECT_EQ(task->select(0, false).size(), 5u);
  EXPECT_EQ(task->ctx_needed(), n_ctx);
  const nlohmann::json st = task->settings();
  EXPECT_EQ(st["lengths"], nlohmann::json::array({n_ctx}));
  EXPECT_EQ(st["keys"].size(), 5u);
  auto cache = make_cache(parse_cache_spec("f32"), s.model->cache_geometry(task->ctx_needed()));
  EvalSession session(*s.model, *cache);
  std::vector<ItemResult> first;
  for (int64_t i : task->select(0, false)) first.push_back(task->score(session, i));
  EXPECT_EQ(first[0].group, "ctx " + std::to_string(n_ctx) + " depth 100%");
  EXPECT_EQ(first[4].group, "ctx " + std::to_string(n_ctx) + " depth 0%");
  for (const ItemResult& r : first) {
    EXPECT_LE(r.sums.at("prompt_tokens"), (double)n_ctx - 12);
    EXPECT_GE(r.sums.at("prompt_tokens"), 0.95 * (double)(n_ctx - 16));
  }
  // the depths share the filler before the key: the session reused a prefix
  EXPECT_GT(session.stats().tokens_reused, 0);
  // scoring again in another order gives the same results
  for (int64_t i = 4; i >= 0; --i) EXPECT_EQ(task->score(session, i).correct, first[(size_t)i].correct);
}

TEST(GenerativeTasks, HumanEvalItemRunsItsTests) {
  if (python3_path().empty()) GTEST_SKIP() << "python3 not found under /usr on PATH";
  Stories s;
  auto task = make_task("humaneval", s.options());
  EXPECT_EQ(task->size(), 164);
  EXPECT_EQ(task->standard_size(), 164);
  auto cache = make_cache(parse_cache_spec("f32"), s.model->cache_geometry(s.model->config().n_ctx_train));
  EvalSession session(*s.model, *cache);
  const ItemResult r = task->score(session, 2);  // truncate_number: a short prompt
  EXPECT_FALSE(r.correct);  // a story model writes no Python
  EXPECT_GT(r.sums.at("generated_tokens"), 0);
  EXPECT_EQ(r.sums.at("timed_out"), 0);
  EXPECT_EQ(r.sums.at("sandboxed"), 1);
  EXPECT_EQ(task->settings()["stop"].size(), 6u);
  EXPECT_EQ(task->settings()["unsafe_exec"], false);
}

TEST(GenerativeTasks, Gsm8kExcludesItsExemplars) {
  Stories s;
  TaskOptions o = s.options();
  o.shots = 4;
  auto task = make_task("gsm8k", o);
  EXPECT_EQ(task->size(), 1319 - 4);
  EXPECT_EQ(task->standard_size(), 100);
  const nlohmann::json st = task->settings();
  EXPECT_EQ(st["shots"], 4);
  EXPECT_EQ(st["exemplar_lines"].size(), 4u);
  o.shots = 1319;
  EXPECT_THROW(make_task("gsm8k", o), Error);
}
