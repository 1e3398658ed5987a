// The scheduler without HTTP, stepped by the test on stories260K: chunked prefill gives the
// greedy text of whole-prompt prefill, and a running sequence keeps getting a token every step
// while a long prompt is admitted beside it.
#include <gtest/gtest.h>

#include <chrono>

#include "serve_fixture.h"

using namespace h1bkv;
using namespace h1bkv::test;

namespace {

class Scheduling : public StoriesTest {
 protected:
  std::shared_ptr<Sequence> greedy(const std::string& prompt, int64_t max_tokens) const {
    SamplerParams p;
    p.temp = 0;
    return std::make_shared<Sequence>(tok->encode(prompt, true, true), max_tokens, p,
                                      std::vector<std::string>{});
  }
};

// Every event's text until the last; fails the test when the sequence has no event ready.
std::string drain(Sequence& s, bool* done) {
  std::string text;
  SequenceEvent e;
  *done = false;
  while (!*done && s.next(e, std::chrono::milliseconds(0))) {
    EXPECT_TRUE(e.error.empty()) << e.error;
    text += e.text;
    *done = e.done;
  }
  return text;
}

std::string long_prompt() {
  std::string text;
  for (int i = 0; i < 10; ++i) text += "Lily and Tom went to the park. They saw a big red ball. ";
  return text;
}

TEST_F(Scheduling, ChunkedPrefillGivesTheWholePromptText) {
  for (const std::string cache : {"f16", "h1b:bits=64,sink=2,window=4", "kivi:bits=2,residual=8"}) {
    std::string texts[2];
    for (int64_t chunk : {0, 13}) {
      SchedulerConfig sc = small_config(cache);
      sc.prefill_chunk = chunk;
      Scheduler sched(*model, *tok, sc);
      auto s = greedy(long_prompt(), 30);
      ASSERT_GT(s->prompt.size(), 100u);
      sched.submit(s);
      bool done = false;
      std::string& text = texts[chunk > 0];
      for (int steps = 0; !done && steps < 200; ++steps) {
        sched.step();
        text += drain(*s, &done);
      }
      EXPECT_TRUE(done) << cache;
      // whole: 1 step for the prompt; chunked: ceil(prompt / 13)
      EXPECT_EQ(sched.stats().prompt_tokens, (int64_t)s->prompt.size());
    }
    EXPECT_FALSE(texts[0].empty()) << cache;
    EXPECT_EQ(texts[1], texts[0]) << cache;
  }
}

// Reservations are the info formula alone (Scheduler::reservation_bytes): after every step, the
// caches hold no more. Without settle, h1b's ring kept window - 1 + chunk f16 tokens of a's
// cache (15 more than the formula's window at chunk 16: 9600 bytes, past both sequences' slack).
TEST_F(Scheduling, HeldBytesStayWithinTheReservationsAtEveryStep) {
  for (const std::string cache : {"f16", "h1b:bits=64,sink=2,window=4", "kivi:bits=2,group=8,residual=8"}) {
    for (int64_t chunk : {1, 7, 16, 0}) {
      SchedulerConfig sc = small_config(cache);
      sc.prefill_chunk = chunk;
      Scheduler sched(*model, *tok, sc);
      auto a = greedy(long_prompt(), 2), b = greedy("Once upon a time", 20);
      sched.submit(b);
      sched.submit(a);
      bool done_a = false, done_b = false;
      for (int steps = 0; !(done_a && done_b) && steps < 400; ++steps) {
        sched.step();
        const SchedulerStats st = sched.stats();
        ASSERT_LE(st.kv_bytes_held, st.kv_bytes_reserved) << cache << " chunk " << chunk << " step " << steps;
        if (!done_a) drain(*a, &done_a);
        if (!done_b) drain(*b, &done_b);
      }
      EXPECT_TRUE(done_a && done_b) << cache << " chunk " << chunk;
    }
  }
}

TEST_F(Scheduling, RunningSequenceGetsATokenEveryStepWhileALongPromptIsAdmitted) {
  SchedulerConfig sc = small_config("f16");  // "Once upon a time" runs 240 tokens without an end
  sc.prefill_chunk = 16;
  Scheduler sched(*model, *tok, sc);
  auto running = greedy("Once upon a time", 200);
  sched.submit(running);
  while (sched.stats().generated_tokens < 3) sched.step();
  auto late = greedy(long_prompt(), 20);
  const int64_t n = (int64_t)late->prompt.size();
  sched.submit(late);
  int steps = 0;
  SchedulerStats before = sched.stats();
  do {
    sched.step();
    ++steps;
    const SchedulerStats now = sched.stats();
    EXPECT_EQ(now.generated_tokens, before.generated_tokens + 1) << "step " << steps;  // `running`'s
    EXPECT_EQ(now.prompt_tokens, before.prompt_tokens + std::min<int64_t>(16, n - 16 * (steps - 1)));
    EXPECT_EQ(now.active, 2);
    before = now;
  } while (before.prefilling > 0 && steps < 100);
  EXPECT_EQ(steps, (n + 15) / 16);
  bool done = false;
  std::string text;
  for (int i = 0; !done && i < 100; ++i) {
    sched.step();
    text += drain(*late, &done);
  }
  ASSERT_TRUE(done);
  // the same text as when it runs alone
  Scheduler alone(*model, *tok, sc);
  auto solo = greedy(long_prompt(), 20);
  alone.submit(solo);
  std::string solo_text;
  done = false;
  for (int i = 0; !done && i < 100; ++i) {
    alone.step();
    solo_text += drain(*solo, &done);
  }
  EXPECT_EQ(text, solo_text);
}

}  // namespace
