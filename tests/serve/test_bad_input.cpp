// Bad input and abuse against the in-process server: each answer is an OpenAI error object with
// the right status, and no slot or byte of budget is left behind.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "serve_fixture.h"

using namespace h1bkv;
using namespace h1bkv::test;
using nlohmann::json;

namespace {

class ServeBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(stories_path())) GTEST_SKIP() << stories_path() << " not found";
  }
};

// Status and error message of a POST; the body must be an OpenAI error object.
std::pair<int, std::string> post_error(httplib::Client& c, const std::string& path, const std::string& body,
                                       const httplib::Headers& headers = {}) {
  auto r = c.Post(path.c_str(), headers, body, "application/json");
  EXPECT_TRUE(r);
  if (!r) return {0, ""};
  const json j = json::parse(r->body, nullptr, false);
  EXPECT_TRUE(j.is_object() && j.contains("error") && j["error"]["message"].is_string()) << r->body;
  if (!j.is_object() || !j.contains("error")) return {r->status, r->body};
  EXPECT_EQ(j["error"]["code"], r->status);
  return {r->status, j["error"]["message"].get<std::string>()};
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST_F(ServeBadInput, RequestErrorsAre400WithAMessage) {
  LiveServer s(small_config(), {});
  auto c = s.client();
  auto [st, msg] = post_error(c, "/v1/chat/completions", "{\"messages\": [");
  EXPECT_EQ(st, 400);
  EXPECT_TRUE(has(msg, "malformed JSON")) << msg;
  std::tie(st, msg) = post_error(c, "/v1/chat/completions", R"({"model":"stories260K.gguf"})");
  EXPECT_EQ(st, 400);
  EXPECT_TRUE(has(msg, "'messages' is missing")) << msg;
  std::tie(st, msg) = post_error(c, "/v1/chat/completions", R"({"messages":[]})");
  EXPECT_EQ(st, 400);
  EXPECT_TRUE(has(msg, "'messages' is empty")) << msg;
  std::tie(st, msg) = post_error(c, "/v1/completions", R"({"prompt":"Hi","max_tokens":0})");
  EXPECT_EQ(st, 400);
  EXPECT_TRUE(has(msg, "max_tokens")) << msg;
  std::tie(st, msg) = post_error(c, "/v1/completions", R"({"prompt":"Hi","max_tokens":300})");
  EXPECT_EQ(st, 400);
  EXPECT_TRUE(has(msg, "exceeds the context of 256 tokens")) << msg;
  std::tie(st, msg) = post_error(c, "/v1/completions", R"({"prompt":"Hi","model":"gpt-4"})");
  EXPECT_EQ(st, 400);
  EXPECT_TRUE(has(msg, "unknown model 'gpt-4'")) << msg;
  std::tie(st, msg) = post_error(c, "/v1/completions", "{\"prompt\":\"bad \xC3\x28 utf8\"}");
  EXPECT_EQ(st, 400);
  std::string long_prompt;
  for (int i = 0; i < 300; ++i) long_prompt += "the cat sat. ";
  std::tie(st, msg) = post_error(c, "/v1/completions", json{{"prompt", long_prompt}}.dump());
  EXPECT_EQ(st, 400);
  EXPECT_TRUE(has(msg, "the context (-c) holds 256")) << msg;
  EXPECT_EQ(s.sched->stats().kv_bytes_reserved, 0);
}

TEST_F(ServeBadInput, BodyOverTheLimitIs413) {
  ServerConfig cfg;
  cfg.max_body = 1000;
  LiveServer s(small_config(), cfg);
  auto c = s.client();
  auto [st, msg] = post_error(c, "/v1/completions", json{{"prompt", std::string(2000, 'a')}}.dump());
  EXPECT_EQ(st, 413);
  EXPECT_TRUE(has(msg, "over the limit of 1000 bytes")) << msg;
}

TEST_F(ServeBadInput, ApiKeyIsRequiredWhereSet) {
  ServerConfig cfg;
  cfg.api_key = "sesame";
  LiveServer s(small_config(), cfg);
  auto c = s.client();
  const std::string body = R"({"prompt":"Hi","max_tokens":2})";
  EXPECT_EQ(post_error(c, "/v1/completions", body).first, 401);
  EXPECT_EQ(post_error(c, "/v1/completions", body, {{"Authorization", "Bearer wrong"}}).first, 401);
  EXPECT_EQ(post_error(c, "/v1/completions", body, {{"Authorization", "Bearer sesame2"}}).first, 401);
  auto ok = c.Post("/v1/completions", {{"Authorization", "Bearer sesame"}}, body, "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  auto models = c.Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(models->status, 401);
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 401);
  auto health = c.Get("/health");  // liveness stays open
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

TEST_F(ServeBadInput, RequestThatCanNeverFitIs400WithTheNumbers) {
  SchedulerConfig sc = small_config();
  sc.kv_budget = 100000;  // stories260K f16: 5 layers x 4 KV heads... a few hundred tokens at most
  LiveServer s(sc, {});
  const double per_token = s.sched->reservation_bytes(1);
  auto c = s.client();
  auto [st, msg] = post_error(c, "/v1/completions", R"({"prompt":"Hi","max_tokens":250})");
  EXPECT_EQ(st, 400);
  EXPECT_TRUE(has(msg, "bytes of KV cache")) << msg;
  EXPECT_TRUE(has(msg, "budget of 100000 bytes")) << msg;
  EXPECT_TRUE(has(msg, std::to_string(per_token))) << msg;
}

TEST_F(ServeBadInput, FullQueueIs503WithRetryAfter) {
  SchedulerConfig sc = small_config();
  sc.max_sequences = 1;
  sc.max_queue = 2;
  LiveServer s(sc, {}, false);  // no scheduler thread: the two requests stay queued
  std::vector<std::thread> waiting;
  for (int i = 0; i < 2; ++i)
    waiting.emplace_back([&] {
      auto c = s.client();
      c.Post("/v1/completions", R"({"prompt":"Hi","max_tokens":3})", "application/json");
    });
  for (int w = 0; w < 24000 && s.sched->stats().queued < 2; ++w)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(s.sched->stats().queued, 2);
  auto c = s.client();
  auto r = c.Post("/v1/completions", R"({"prompt":"Hi","max_tokens":3})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->get_header_value("Retry-After"), "1");
  EXPECT_TRUE(has(r->body, "queue is full")) << r->body;
  s.sched->start();
  for (auto& t : waiting) t.join();
  EXPECT_EQ(s.sched->stats().finished, 2);
}

TEST_F(ServeBadInput, NoFileIsServed) {
  LiveServer s(small_config(), {});
  auto c = s.client();
  for (const char* path : {"/etc/passwd", "/../../../../etc/passwd", "/README.md", "/CMakeLists.txt",
                           "/index.html", "/v1/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd"}) {
    auto r = c.Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 404) << path;
    EXPECT_FALSE(has(r->body, "root:")) << path;
  }
  auto page = c.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_TRUE(has(page->body, "/v1/chat/completions"));
}

int raw_connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && connect(fd, (sockaddr*)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

std::string raw_request(const std::string& body) {
  return "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// A client that sends a streaming request and reads nothing: the scheduler does not wait for it
// (its tokens queue on its sequence); another client is answered meanwhile, and the silent one's
// sequence runs to its end.
TEST_F(ServeBadInput, SilentClientDoesNotStallOthers) {
  LiveServer s(small_config(), {});
  const int fd = raw_connect(s.port);
  ASSERT_GE(fd, 0);
  const std::string req =
      raw_request(R"({"prompt":"Once upon a time","max_tokens":240,"temperature":0,"stream":true})");
  ASSERT_EQ(write(fd, req.data(), req.size()), (ssize_t)req.size());
  auto c = s.client();
  auto r = c.Post("/v1/completions", R"({"prompt":"The dog","max_tokens":30,"temperature":0})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  for (int w = 0; w < 24000 && s.sched->stats().finished < 2; ++w)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const SchedulerStats st = s.sched->stats();
  EXPECT_EQ(st.finished, 2);
  EXPECT_EQ(st.generated_tokens, 240 + 30);
  close(fd);
}

// After the client of a 200-token request has hung up: stepping the scheduler cancels the
// sequence well before it could end, and frees its cache and reservation.
void expect_slot_freed_after_hang_up(Scheduler& sched) {
  int steps = 0;
  while (sched.stats().active > 0 && steps < 150) {  // 200 tokens would take 200 steps
    sched.step();
    ++steps;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const SchedulerStats st = sched.stats();
  EXPECT_EQ(st.active, 0);
  EXPECT_EQ(st.cancelled, 1);
  EXPECT_LT(st.generated_tokens, 150);
  EXPECT_EQ(st.kv_bytes_held, 0);
  EXPECT_EQ(st.kv_bytes_reserved, 0);
}

// A raw connection: sends a streaming request, reads until the first token arrives, hangs up.
TEST_F(ServeBadInput, ClientThatLeavesMidStreamFreesItsSlot) {
  LiveServer s(small_config(), {}, false);
  const int fd = raw_connect(s.port);
  ASSERT_GE(fd, 0);
  const std::string req =
      raw_request(R"({"prompt":"Once upon a time","max_tokens":200,"temperature":0,"stream":true})");
  ASSERT_EQ(write(fd, req.data(), req.size()), (ssize_t)req.size());
  for (int w = 0; w < 24000 && s.sched->stats().queued < 1; ++w)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::string got;
  char buf[4096];
  while (got.find("data: ") == std::string::npos) {
    s.sched->step();
    timeval tv{0, 20000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) got.append(buf, n);
  }
  EXPECT_EQ(s.sched->stats().active, 1);
  close(fd);
  expect_slot_freed_after_hang_up(*s.sched);
}

// The same for a non-streaming request: nothing is written to the client until the end, so the
// server looks at the connection itself while it waits.
TEST_F(ServeBadInput, NonStreamingClientThatLeavesFreesItsSlot) {
  LiveServer s(small_config(), {}, false);
  const int fd = raw_connect(s.port);
  ASSERT_GE(fd, 0);
  const std::string req = raw_request(R"({"prompt":"Once upon a time","max_tokens":200,"temperature":0})");
  ASSERT_EQ(write(fd, req.data(), req.size()), (ssize_t)req.size());
  for (int w = 0; w < 24000 && s.sched->stats().queued < 1; ++w)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  while (s.sched->stats().generated_tokens < 5) s.sched->step();
  EXPECT_EQ(s.sched->stats().active, 1);
  close(fd);
  expect_slot_freed_after_hang_up(*s.sched);
}

}  // namespace
