// h1bkv serve: the OpenAI-compatible server (src/serve). Binds 127.0.0.1 unless --host says
// otherwise; SIGINT/SIGTERM stop it cleanly.
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli/commands.h"
#include "cli/common.h"
#include "io/gguf.h"
#include "model/model.h"
#include "serve/scheduler.h"
#include "serve/server.h"
#include "util/file.h"
#include "tokenize/chat.h"
#include "tokenize/tokenizer.h"
#include "util/error.h"

namespace h1bkv {

namespace {

struct ServeOptions {
  ModelOptions m;
  ServerConfig server;
  int max_sequences = 4;
  double kv_budget_mb = 1024;
  int max_queue = 32;
  int64_t prefill_chunk = 64;
  int64_t max_body_kb = 1024;
  int prompt_cache = -1;

  void add_to(CLI::App& app) {
    m.add_to(app, 2048);
    app.add_option("--host", server.host, "address to listen on")->capture_default_str();
    app.add_option("--port", server.port, "port (0 = any free one, printed at start)")
        ->capture_default_str()->check(int_range(0, 65535));
    app.add_option("--parallel", max_sequences, "most sequences decoding at once (also -np)")
        ->capture_default_str()->check(int_range(1, 4096));
    app.add_option("--kv-budget", kv_budget_mb, "MB (1e6 bytes) of KV cache all sequences may reserve")
        ->capture_default_str()->check(float_range(0.001, 1e9));
    app.add_option("--prefill-chunk", prefill_chunk,
                   "prompt tokens run per step beside the decoding sequences (0 = one whole prompt per step)")
        ->capture_default_str()->check(int_range(0, 1 << 20));
    app.add_option("--queue", max_queue, "requests that may wait for admission (more: 503)")
        ->capture_default_str()->check(int_range(1, 4096));
    app.add_option("--max-body", max_body_kb, "KB (1024 bytes) a request body may have (more: 413)")
        ->capture_default_str()->check(int_range(1, 1 << 20));
    app.add_option("--prompt-cache", prompt_cache,
                   "finished sequences whose caches are kept for a request that starts with their tokens "
                   "(the next turn of a chat); -1 = --parallel, 0 = off")
        ->capture_default_str()->check(int_range(-1, 4096));
    app.add_option("--api-key", server.api_key, "require 'Authorization: Bearer KEY' on /v1/* and /metrics");
  }
};

int serve(ServeOptions& o) {
  const CacheSpec spec = o.m.resolve();
  apply_threads(o.m.threads);
  Loaded l = load_model(o.m.model);
  SchedulerConfig sc;
  sc.cache = spec;
  sc.calib = o.m.calib;
  if (!sc.calib.empty()) check_regular_file(sc.calib), refuse_lora(sc.calib, "serve");
  sc.n_ctx = o.m.n_ctx;
  sc.max_sequences = o.max_sequences;
  sc.kv_budget = o.kv_budget_mb * 1e6;
  sc.max_queue = o.max_queue;
  sc.prefill_chunk = o.prefill_chunk;
  sc.prompt_cache = o.prompt_cache < 0 ? o.max_sequences : o.prompt_cache;
  check_memory("serve", sc.kv_budget, (double)l.model->workspace_bytes(sc.most_step_rows()),
               4.0 * l.model->config().n_vocab * (o.max_sequences + 1));
  Scheduler sched(*l.model, *l.tok, sc);
  o.server.model_id = std::filesystem::path(o.m.model).filename().string();
  o.server.max_body = (size_t)o.max_body_kb * 1024;
  // No template: ChatML, as llama.cpp's fallback; another template: chat requests are refused.
  const std::string tmpl = l.model->gguf().get_string("tokenizer.chat_template", "");
  o.server.chatml = tmpl.empty() || is_chatml_template(tmpl);

  // Signals go to one waiting thread (blocked here before any other thread starts).
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  Server server(*l.tok, sched, o.server);
  const int port = server.bind();
  sched.start();
  const CacheGeometry full = l.model->cache_geometry(sc.n_ctx);
  std::fprintf(stderr,
               "h1bkv serve: %s, cache %s (%.0f bytes/token + %.0f fixed; %.0f bytes at -c %lld), -np %d, "
               "--kv-budget %.0f bytes, --prefill-chunk %lld\n",
               o.server.model_id.c_str(), spec.str().c_str(), cache_bytes_per_token(spec, full),
               cache_fixed_bytes(spec, full), sched.reservation_bytes(sc.n_ctx),
               (long long)sc.n_ctx,
               sc.max_sequences, sc.kv_budget, (long long)sc.prefill_chunk);
  std::fprintf(stderr, "h1bkv serve: listening on http://%s:%d\n", o.server.host.c_str(), port);
  std::fflush(stderr);
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    server.stop();
  });
  server.listen();
  sched.stop();
  pthread_kill(waiter.native_handle(), SIGTERM);  // wakes sigwait when listen ended on its own
  waiter.join();
  std::fprintf(stderr, "h1bkv serve: stopped\n");
  return 0;
}

}  // namespace

Action register_serve(CLI::App& app) {
  auto* sub = app.add_subcommand("serve", "OpenAI-compatible HTTP server (chat, completions, metrics)");
  auto o = std::make_shared<ServeOptions>();
  o->add_to(*sub);
  return [o] { return serve(*o); };
}

}  // namespace h1bkv
