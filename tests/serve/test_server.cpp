// The server end to end in-process on stories260K: the OpenAI shapes, streaming == non-streaming,
// stop strings, usage, continuous batching's equality with single requests, metrics.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "serve_fixture.h"

using namespace h1bkv;
using namespace h1bkv::test;
using nlohmann::json;

namespace {

class Serve : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(stories_path())) GTEST_SKIP() << stories_path() << " not found";
  }
};

json post_json(httplib::Client& c, const std::string& path, const json& body, int expect = 200) {
  auto r = c.Post(path.c_str(), body.dump(), "application/json");
  EXPECT_TRUE(r) << "no response from " << path;
  if (!r) return {};
  EXPECT_EQ(r->status, expect) << r->body;
  return json::parse(r->body);
}

TEST_F(Serve, ChatAndCompletionShapesAndUsage) {
  LiveServer s(small_config(), {});
  auto c = s.client();
  const json chat = post_json(c, "/v1/chat/completions",
                              {{"model", "stories260K.gguf"}, {"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                               {"max_tokens", 12}, {"temperature", 0}});
  EXPECT_EQ(chat["object"], "chat.completion");
  EXPECT_EQ(chat["model"], "stories260K.gguf");
  EXPECT_EQ(chat["choices"][0]["message"]["role"], "assistant");
  EXPECT_TRUE(chat["choices"][0]["message"]["content"].is_string());
  const int64_t chat_prompt =
      (int64_t)s.tok->encode("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", false, true).size();
  EXPECT_EQ(chat["usage"]["prompt_tokens"], chat_prompt);
  const int64_t gen = chat["usage"]["completion_tokens"];
  EXPECT_GE(gen, 1);
  EXPECT_LE(gen, 12);
  EXPECT_EQ(chat["usage"]["total_tokens"], chat_prompt + gen);

  const json comp = post_json(c, "/v1/completions",
                              {{"prompt", "Once upon a time"}, {"max_tokens", 20}, {"temperature", 0}});
  EXPECT_EQ(comp["object"], "text_completion");
  EXPECT_EQ(comp["usage"]["prompt_tokens"], (int64_t)s.tok->encode("Once upon a time", true, true).size());
  // stories260K tells a story for more than 20 tokens: the budget ends it
  EXPECT_EQ(comp["usage"]["completion_tokens"], 20);
  EXPECT_EQ(comp["choices"][0]["finish_reason"], "length");
  EXPECT_FALSE(comp["choices"][0]["text"].get<std::string>().empty());

  auto models = c.Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(json::parse(models->body)["data"][0]["id"], "stories260K.gguf");
  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(json::parse(health->body)["cache"], "f16");
}

TEST_F(Serve, StreamingEqualsNonStreamingForGreedy) {
  LiveServer s(small_config("h1b:bits=64"), {});
  auto c = s.client();
  for (bool chat : {false, true}) {
    json body = {{"max_tokens", 40}, {"temperature", 0}};
    if (chat) body["messages"] = {{{"role", "user"}, {"content", "Tell me a story"}}};
    else body["prompt"] = "Lily went";
    const std::string path = chat ? "/v1/chat/completions" : "/v1/completions";
    const json whole = post_json(c, path, body);
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
    auto r = c.Post(path.c_str(), body.dump(), "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
    bool done = false;
    const auto events = sse_events(r->body, &done);
    EXPECT_TRUE(done) << "the stream ends with data: [DONE]";
    ASSERT_GE(events.size(), 3u);
    const std::string text = chat ? whole["choices"][0]["message"]["content"] : whole["choices"][0]["text"];
    EXPECT_EQ(sse_text(events), text) << (chat ? "chat" : "completion");
    EXPECT_EQ(events[events.size() - 2]["choices"][0]["finish_reason"], whole["choices"][0]["finish_reason"]);
    for (const char* k : {"prompt_tokens", "completion_tokens", "total_tokens"})
      EXPECT_EQ(events.back()["usage"][k], whole["usage"][k]) << k;
    // the same prompt again: all of it but the last token comes from the kept cache
    EXPECT_EQ(whole["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    EXPECT_EQ(events.back()["usage"]["prompt_tokens_details"]["cached_tokens"],
              whole["usage"]["prompt_tokens"].get<int64_t>() - 1);
    if (chat) {
      EXPECT_EQ(events[0]["choices"][0]["delta"]["role"], "assistant");
    }
  }
}

TEST_F(Serve, StopStringEndsTheTextBeforeIt) {
  LiveServer s(small_config(), {});
  auto c = s.client();
  const json base = {{"prompt", "Once upon a time"}, {"max_tokens", 60}, {"temperature", 0}};
  const std::string full = post_json(c, "/v1/completions", base)["choices"][0]["text"];
  ASSERT_GT(full.size(), 30u);
  const std::string stop = full.substr(20, 4);
  const size_t at = full.find(stop);
  json body = base;
  body["stop"] = {stop};
  for (bool stream : {false, true}) {
    body["stream"] = stream;
    auto r = c.Post("/v1/completions", body.dump(), "application/json");
    ASSERT_TRUE(r);
    bool done = false;
    const std::string text =
        stream ? sse_text(sse_events(r->body, &done)) : json::parse(r->body)["choices"][0]["text"].get<std::string>();
    EXPECT_EQ(text, full.substr(0, at)) << "stream " << stream << ", stop '" << stop << "'";
    if (!stream) {
      EXPECT_EQ(json::parse(r->body)["choices"][0]["finish_reason"], "stop");
    }
  }
}

// Eight clients at once: all are admitted in one step (the scheduler waits until all eight are
// queued), decode as one batch, and each gets the text it gets alone.
TEST_F(Serve, EightConcurrentClientsEachGetTheirSingleClientOutput) {
  const std::vector<std::string> prompts = {"Once upon a time", "The dog", "Lily and Tom", "One day",
                                            "Tim had a red ball", "The sun", "Mom said", "A little bird"};
  auto body = [&](size_t i) {
    return json{{"prompt", prompts[i]}, {"max_tokens", 24 + 4 * (int)i}, {"temperature", 0}}.dump();
  };
  std::vector<std::string> alone(prompts.size());
  {
    LiveServer s(small_config("q8_0"), {});
    auto c = s.client();
    for (size_t i = 0; i < prompts.size(); ++i) {
      auto r = c.Post("/v1/completions", body(i), "application/json");
      ASSERT_TRUE(r);
      alone[i] = json::parse(r->body)["choices"][0]["text"];
    }
    EXPECT_EQ(s.sched->stats().most_active, 1);
  }
  LiveServer s(small_config("q8_0"), {}, false);
  std::vector<std::string> together(prompts.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < prompts.size(); ++i)
    clients.emplace_back([&, i] {
      auto c = s.client();
      auto r = c.Post("/v1/completions", body(i), "application/json");
      if (r) together[i] = json::parse(r->body)["choices"][0]["text"];
    });
  for (int wait = 0; wait < 24000 && s.sched->stats().queued < (int64_t)prompts.size(); ++wait)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(s.sched->stats().queued, (int64_t)prompts.size());
  s.sched->start();
  for (auto& t : clients) t.join();
  EXPECT_EQ(s.sched->stats().most_active, (int64_t)prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(together[i], alone[i]) << "client " << i;
  // what stays is the prompt cache's: the last 2 finished sequences' caches
  const SchedulerStats st = s.sched->stats();
  EXPECT_EQ(st.prompt_cache_entries, 2);
  EXPECT_GT(st.prompt_cache_bytes, 0);
  EXPECT_DOUBLE_EQ(st.kv_bytes_reserved, st.prompt_cache_bytes);
  EXPECT_DOUBLE_EQ(st.kv_bytes_held, st.prompt_cache_bytes);
}

TEST_F(Serve, MetricsAreRequestsTokensQueueAndBytes) {
  LiveServer s(small_config("q4_0"), {});
  auto c = s.client();
  post_json(c, "/v1/completions", {{"prompt", "Hi"}, {"max_tokens", 5}, {"temperature", 0}});
  post_json(c, "/v1/completions", {{"prompt", ""}}, 400);
  auto r = c.Get("/metrics");
  ASSERT_TRUE(r);
  const std::string& m = r->body;
  EXPECT_NE(m.find("h1bkv_requests_total{status=\"200\"} 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("h1bkv_requests_total{status=\"400\"} 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("h1bkv_generated_tokens_total 5\n"), std::string::npos) << m;
  EXPECT_NE(m.find("h1bkv_kv_budget_bytes{cache=\"q4_0\"} 1000000000\n"), std::string::npos) << m;
  EXPECT_NE(m.find("h1bkv_queue_length 0\n"), std::string::npos) << m;
  EXPECT_NE(m.find("# TYPE h1bkv_kv_bytes_held gauge"), std::string::npos) << m;
}

// The info formula, nothing more: the chunked prefill's exact copies are settled every step
// (Scheduling.HeldBytesStayWithinTheReservationsAtEveryStep).
TEST_F(Serve, ReservationIsTheInfoFormula) {
  for (const std::string cache : {"f16", "h1b:bits=256,sink=4,window=16", "kivi:bits=2,residual=8"}) {
    LiveServer s(small_config(cache), {});
    const CacheSpec spec = parse_cache_spec(cache);
    const CacheGeometry g = s.model->cache_geometry(100);
    EXPECT_DOUBLE_EQ(s.sched->reservation_bytes(100), cache_bytes_per_token(spec, g) * 100 + cache_fixed_bytes(spec, g))
        << cache;
  }
}

}  // namespace
