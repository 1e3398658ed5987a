// The prompt cache (src/serve/prompt_cache.h): which kept cache a prompt takes and what it reuses,
// and, in the scheduler on stories260K, that a reused prefix gives the text a fresh cache gives,
// for the caches that can rewind that far and for those that cannot (h1b's window: a fresh one).
#include <gtest/gtest.h>

#include <chrono>

#include "serve/prompt_cache.h"
#include "serve_fixture.h"

using namespace h1bkv;
using namespace h1bkv::test;

namespace {

// An f16 cache of context n_ctx holding n_tok tokens (their keys and values are zero).
std::unique_ptr<KvCache> cache_holding(size_t n_tok, int64_t n_ctx) {
  CacheGeometry g;
  g.n_layer = 1, g.n_head = 1, g.n_kv_head = 1, g.head_dim = 4, g.n_ctx = n_ctx;
  auto c = make_cache(parse_cache_spec("f16"), g, "");
  std::vector<float> kv(n_tok * 4, 0.0f);
  std::vector<int32_t> pos(n_tok);
  for (size_t i = 0; i < n_tok; ++i) pos[i] = (int32_t)i;
  if (n_tok > 0) c->layer(0).append((int64_t)n_tok, pos.data(), kv.data(), kv.data());
  return c;
}

TEST(PromptCache, TakesTheLongestCommonPrefixShortOfTheLastPromptToken) {
  PromptCache pc(4);
  pc.put(cache_holding(3, 64), {1, 2, 3});
  pc.put(cache_holding(5, 64), {1, 2, 9, 9, 9});
  pc.put(cache_holding(4, 64), {1, 2, 3, 4});
  EXPECT_EQ(pc.size(), 3u);
  EXPECT_GT(pc.bytes(), 0);

  PromptCache::Match m = pc.best({1, 2, 3, 4, 5, 6}, 10);
  EXPECT_EQ(m.reuse, 4);  // {1,2,3,4}
  // the whole prompt is held: the last token runs again for its logits
  EXPECT_EQ(pc.best({1, 2, 3, 4}, 10).reuse, 3);
  EXPECT_EQ(pc.best({1, 2, 9, 9, 9, 9}, 10).reuse, 5);
  // ties go to the older entry: {1,2,3} was kept first
  EXPECT_EQ(pc.best({1, 2, 3, 7}, 10).entry, pc.best({1, 2, 3, 8, 8}, 10).entry);
  EXPECT_EQ(pc.best({7, 1, 2}, 10).entry, nullptr);  // nothing in common
  EXPECT_EQ(pc.best({1}, 10).entry, nullptr);        // one prompt token: it must run
  EXPECT_EQ(pc.best({1, 2, 3, 4, 5}, 65).entry, nullptr);  // no kept context holds 65 tokens

  const double before = pc.bytes();
  PromptCache::Taken t = pc.take(m);
  ASSERT_TRUE(t.cache);
  EXPECT_EQ(t.cache->n_tokens(), 4);
  EXPECT_EQ(t.reuse, 4);
  EXPECT_EQ(pc.size(), 2u);
  EXPECT_DOUBLE_EQ(pc.bytes(), before - m.bytes);
}

TEST(PromptCache, KeepsAtMostItsEntriesAndDropsTheOldestFirst) {
  PromptCache pc(2);
  pc.put(cache_holding(2, 64), {1, 2});
  pc.put(cache_holding(2, 64), {3, 4});
  pc.put(cache_holding(2, 64), {5, 6});  // {1,2} goes
  EXPECT_EQ(pc.size(), 2u);
  EXPECT_EQ(pc.best({1, 2, 0}, 10).entry, nullptr);
  const PromptCache::Match keep = pc.best({3, 4, 0}, 10);
  ASSERT_NE(keep.entry, nullptr);
  EXPECT_GT(pc.drop_oldest(&keep), 0);  // {3,4} is the oldest but spared: {5,6} goes
  EXPECT_EQ(pc.size(), 1u);
  EXPECT_EQ(pc.best({5, 6, 0}, 10).entry, nullptr);
  EXPECT_EQ(pc.drop_oldest(&keep), 0);  // only the spared one is left
  EXPECT_GT(pc.drop_oldest(), 0);
  EXPECT_EQ(pc.size(), 0u);
  EXPECT_EQ(pc.bytes(), 0);

  PromptCache off(0);
  off.put(cache_holding(2, 64), {1, 2});
  EXPECT_EQ(off.size(), 0u);
  EXPECT_THROW(pc.put(cache_holding(2, 64), {1, 2, 3}), Error);  // not the cache's tokens
}

class PromptReuse : public StoriesTest {
 protected:
  // Runs one greedy sequence of prompt to its end on sched; returns its text and usage.
  std::string run(Scheduler& sched, const std::vector<int32_t>& prompt, int64_t max_tokens, Usage* u) {
    SamplerParams p;
    p.temp = 0;
    auto s = std::make_shared<Sequence>(prompt, max_tokens, p, std::vector<std::string>{});
    sched.submit(s);
    std::string text;
    SequenceEvent e;
    for (int steps = 0; steps < 1000; ++steps) {
      sched.step();
      while (s->next(e, std::chrono::milliseconds(0))) {
        EXPECT_TRUE(e.error.empty()) << e.error;
        text += e.text;
        if (e.done) {
          *u = e.usage;
          return text;
        }
      }
    }
    ADD_FAILURE() << "the sequence did not end";
    return text;
  }
};

// The next turn of a conversation: the first request's prompt and reply, then more text. The
// kept cache holds all of it (the reply's tokens as generated), so no cache type has to rewind.
TEST_F(PromptReuse, NextTurnReusesTheWholeFirstTurnAndGivesTheFreshText) {
  for (const std::string cache : {"f16", "h1b:bits=64,sink=2,window=4", "kivi:bits=2,group=8,residual=8"}) {
    SchedulerConfig sc = small_config(cache);
    sc.prompt_cache = 2;
    Scheduler kept(*model, *tok, sc);
    const std::vector<int32_t> first = tok->encode("Lily and Tom went to the park.", true, true);
    Usage u1, u2, u3;
    const std::string reply = run(kept, first, 12, &u1);
    EXPECT_EQ(u1.cached_tokens, 0) << cache;
    EXPECT_EQ(kept.stats().prompt_cache_entries, 1) << cache;
    // first + the reply's 12 tokens (the cache holds the 11 that ran) + the new text
    std::vector<int32_t> second = tok->encode("Lily and Tom went to the park." + reply + " Then they", true, true);
    ASSERT_GT(second.size(), first.size() + 11) << cache;
    const int64_t common = std::mismatch(second.begin(), second.end(),
                                         tok->encode("Lily and Tom went to the park." + reply, true, true).begin())
                               .first - second.begin();
    const std::string again = run(kept, second, 16, &u2);
    // what the kept cache held that the second prompt starts with: the first prompt + the reply's
    // first 11 tokens when the reply's text encodes back to them (then all 11 + first)
    EXPECT_GE(u2.cached_tokens, (int64_t)first.size()) << cache;
    EXPECT_LE(u2.cached_tokens, std::min<int64_t>(common, (int64_t)first.size() + 11)) << cache;
    EXPECT_EQ(kept.stats().prompt_cache_hits, 1) << cache;
    EXPECT_EQ(kept.stats().prompt_tokens_cached, u2.cached_tokens) << cache;
    EXPECT_EQ(kept.stats().prompt_tokens, (int64_t)(first.size() + second.size()) - u2.cached_tokens) << cache;

    sc.prompt_cache = 0;
    Scheduler fresh(*model, *tok, sc);
    EXPECT_EQ(run(fresh, second, 16, &u3), again) << cache;
    EXPECT_EQ(u3.cached_tokens, 0) << cache;
    EXPECT_EQ(fresh.stats().prompt_cache_entries, 0) << cache;
  }
}

// A prompt that shares only a prefix: f16 rewinds the kept cache into it; h1b cannot rewind past
// its exact window, so it takes a fresh cache. The text is the fresh text either way.
TEST_F(PromptReuse, SharedPrefixRewindsWhereTheCacheCanElseStartsFresh) {
  const std::vector<int32_t> a = tok->encode("Once upon a time there was a little girl named Lily.", true, true);
  const std::vector<int32_t> b = tok->encode("Once upon a time there was a big dog.", true, true);
  int64_t common = std::mismatch(a.begin(), a.end(), b.begin()).first - a.begin();
  ASSERT_GT(common, 4);
  for (const std::string cache : {"f16", "h1b:bits=64,sink=2,window=4"}) {
    SchedulerConfig sc = small_config(cache);
    sc.prompt_cache = 1;
    Scheduler kept(*model, *tok, sc);
    Usage u;
    run(kept, a, 10, &u);
    const std::string text = run(kept, b, 20, &u);
    EXPECT_EQ(u.cached_tokens, cache == "f16" ? common : 0) << cache;
    sc.prompt_cache = 0;
    Scheduler fresh(*model, *tok, sc);
    EXPECT_EQ(run(fresh, b, 20, &u), text) << cache;
  }
}

// Kept caches hold bytes inside the budget; an admission that needs them drops them.
TEST_F(PromptReuse, KeptCachesGiveWayToAnAdmissionThatNeedsTheBudget) {
  SchedulerConfig sc = small_config("f16");
  sc.prompt_cache = 4;
  sc.n_ctx = 128;
  Scheduler probe(*model, *tok, sc);
  sc.kv_budget = probe.reservation_bytes(100) * 1.2;  // one sequence of 100 tokens at a time
  Scheduler sched(*model, *tok, sc);
  Usage u;
  const std::vector<int32_t> a = tok->encode("Lily had a red ball.", true, true);
  run(sched, a, 40, &u);
  SchedulerStats st = sched.stats();
  EXPECT_EQ(st.prompt_cache_entries, 1);
  EXPECT_GT(st.prompt_cache_bytes, 0);
  EXPECT_DOUBLE_EQ(st.kv_bytes_reserved, st.prompt_cache_bytes);
  EXPECT_DOUBLE_EQ(st.kv_bytes_held, st.prompt_cache_bytes);
  const std::vector<int32_t> b = tok->encode("Tom saw a cat.", false, true);  // no BOS: nothing in common
  // b with 100 - |b| max_tokens does not fit beside the kept cache: the kept one goes
  run(sched, b, 100 - (int64_t)b.size(), &u);
  EXPECT_EQ(u.cached_tokens, 0);
  st = sched.stats();
  EXPECT_EQ(st.prompt_cache_hits, 0);
  EXPECT_EQ(st.prompt_cache_entries, 1);  // b's own cache, kept after it ended
  EXPECT_DOUBLE_EQ(st.kv_bytes_reserved, st.prompt_cache_bytes);
  // a request with cache_prompt false neither takes nor leaves an entry
  SamplerParams p;
  p.temp = 0;
  auto c = std::make_shared<Sequence>(b, 5, p, std::vector<std::string>{});
  c->cache_prompt = false;
  sched.submit(c);
  for (int i = 0; i < 50; ++i) sched.step();
  st = sched.stats();
  EXPECT_EQ(st.prompt_cache_hits, 0);
  EXPECT_EQ(st.prompt_cache_entries, 1);
}

}  // namespace
