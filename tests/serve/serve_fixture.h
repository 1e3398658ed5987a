// An in-process server on stories260K at a free loopback port, and an HTTP client for it.
#pragma once
#include <gtest/gtest.h>
#include <httplib.h>
#include <omp.h>

#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "kv/registry.h"
#include "model/model.h"
#include "serve/scheduler.h"
#include "serve/server.h"
#include "tokenize/tokenizer.h"
#include "util/paths.h"

namespace h1bkv::test {

inline std::string stories_path() { return shared_dir() + "/models/stories260K.gguf"; }

// Tests stepping a scheduler on stories260K themselves, with one thread: its matmuls are too
// small to share, and on a loaded machine each parallel region's barrier costs more than the
// work (results do not depend on it).
class StoriesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(stories_path())) GTEST_SKIP() << stories_path() << " not found";
    model = Model::load(stories_path());
    tok = Tokenizer::from_gguf(model->gguf());
    threads = omp_get_max_threads();
    omp_set_num_threads(1);
  }
  void TearDown() override { omp_set_num_threads(threads); }
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tok;
  int threads = 1;
};

struct LiveServer {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<Scheduler> sched;
  std::unique_ptr<Server> server;
  std::thread listener;
  int port = 0;

  // run_scheduler = false: the test calls sched->step() itself.
  LiveServer(SchedulerConfig sc, ServerConfig cfg, bool run_scheduler = true) {
    model = Model::load(stories_path());
    tok = Tokenizer::from_gguf(model->gguf());
    sched = std::make_unique<Scheduler>(*model, *tok, sc);
    cfg.port = 0;
    cfg.model_id = "stories260K.gguf";
    server = std::make_unique<Server>(*tok, *sched, cfg);
    port = server->bind();
    if (run_scheduler) sched->start();
    listener = std::thread([this] { server->listen(); });
  }
  ~LiveServer() {
    server->stop();
    sched->stop();
    listener.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60);
    return c;
  }
};

inline SchedulerConfig small_config(const std::string& cache = "f16") {
  SchedulerConfig sc;
  sc.cache = parse_cache_spec(cache);
  sc.n_ctx = 256;
  sc.max_sequences = 8;
  sc.kv_budget = 1e9;
  sc.max_queue = 16;
  sc.prefill_chunk = 16;  // the chat prompts take 2 steps or more
  sc.prompt_cache = 2;     // as serve's default (--parallel): repeated prompts take kept caches
  return sc;
}

// The JSON objects of an SSE body's "data: " lines, [DONE] excluded; done: whether it came last.
inline std::vector<nlohmann::json> sse_events(const std::string& body, bool* done) {
  std::vector<nlohmann::json> out;
  *done = false;
  size_t at = 0;
  while (at < body.size()) {
    size_t end = body.find("\n\n", at);
    if (end == std::string::npos) end = body.size();
    const std::string ev = body.substr(at, end - at);
    at = end + 2;
    if (ev.rfind("data: ", 0) != 0) continue;
    if (ev == "data: [DONE]") {
      *done = true;
      continue;
    }
    out.push_back(nlohmann::json::parse(ev.substr(6)));
  }
  return out;
}

// The text of a stream: delta contents (chat) or texts (completions).
inline std::string sse_text(const std::vector<nlohmann::json>& events) {
  std::string text;
  for (const auto& e : events) {
    if (!e.contains("choices") || e["choices"].empty()) continue;
    const auto& c = e["choices"][0];
    if (c.contains("delta") && c["delta"].contains("content")) text += c["delta"]["content"].get<std::string>();
    if (c.contains("text")) text += c["text"].get<std::string>();
  }
  return text;
}

}  // namespace h1bkv::test
