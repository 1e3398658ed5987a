#include <gtest/gtest.h>

#include <cmath>

#include "eval/session.h"
#include "kv/registry.h"
#include "model/model.h"
#include "util/error.h"
#include "util/paths.h"

using namespace h1bkv;

namespace {

std::unique_ptr<Model> stories() { return Model::load(shared_dir() + "/models/stories260K.gguf"); }

// Logits of the last `want` tokens of toks from a fresh cache in one forward call.
std::vector<float> fresh(Model& m, const std::string& spec, const std::vector<int32_t>& toks, int64_t want) {
  auto cache = make_cache(parse_cache_spec(spec), m.cache_geometry(256));
  const int64_t n = (int64_t)toks.size(), V = m.config().n_vocab;
  std::vector<float> all((size_t)(n * V));
  m.forward(toks.data(), n, 0, *cache, all.data(), true);
  return std::vector<float>(all.end() - want * V, all.end());
}

float max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

}  // namespace

// Serving a sequence from a reused prefix gives the logits of a fresh evaluation.
TEST(EvalSession, PrefixReuseEqualsFreshEvaluation) {
  auto m = stories();
  for (const char* spec : {"f32", "h1b:window=8"}) {
    auto cache = make_cache(parse_cache_spec(spec), m->cache_geometry(256));
    EvalSession s(*m, *cache, 7);  // odd batch size: several forward calls per eval
    std::vector<int32_t> ctx;
    for (int i = 0; i < 40; ++i) ctx.push_back(1 + (i * 37) % 500);
    auto a = ctx, b = ctx;
    for (int i = 0; i < 5; ++i) a.push_back(100 + i), b.push_back(200 + i);
    EXPECT_LT(max_diff(s.eval(a, 6), fresh(*m, spec, a, 6)), 1e-4f) << spec;
    const int64_t computed = s.stats().tokens_computed;
    EXPECT_LT(max_diff(s.eval(b, 6), fresh(*m, spec, b, 6)), 1e-4f) << spec;
    // b shares 40 tokens with a, but the logits of its last 6 are recomputed: 39 reused
    // (when the policy can rewind 6 tokens: f32 always; h1b's window copies cover the last batch)
    EXPECT_EQ(s.stats().tokens_computed - computed, s.stats().refills ? 45 : 6) << spec;
    EXPECT_EQ(s.held(), b);
    // decoding one more token equals evaluating the longer sequence
    b.push_back(300);
    const auto pushed = s.push(300);
    EXPECT_LT(max_diff(pushed, fresh(*m, spec, b, 1)), 1e-4f) << spec;
  }
}

TEST(EvalSession, BadRequestsAreErrors) {
  auto m = stories();
  auto cache = make_cache(parse_cache_spec("f32"), m->cache_geometry(16));
  EvalSession s(*m, *cache);
  EXPECT_THROW(s.eval({}), Error);
  EXPECT_THROW(s.eval(std::vector<int32_t>(17, 1)), Error);
  EXPECT_THROW(s.eval({1, 2}, 3), Error);
}
