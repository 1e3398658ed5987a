#include "serve/server.h"

#include <httplib.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <ctime>
#include <filesystem>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "serve/api.h"
#include "serve/scheduler.h"
#include "tokenize/chat.h"
#include "tokenize/tokenizer.h"
#include "util/error.h"

namespace h1bkv {

using nlohmann::json;

namespace {

void send_error(httplib::Response& res, int status, const std::string& message,
                const std::string& type = "invalid_request_error") {
  res.status = status;
  if (status == 503) res.set_header("Retry-After", "1");
  res.set_content(dump_json(error_object(message, type, status)), "application/json");
}

// Constant-time comparison, so the key cannot be guessed byte by byte from response times.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() != b.size();
  for (size_t i = 0; i < a.size(); ++i) diff |= (unsigned char)(a[i] ^ b[i % (b.empty() ? 1 : b.size())]);
  return diff == 0 && !b.empty();
}

std::string prom_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

// host (numeric) and port of a socket's own (local) or peer address; false when not a socket.
bool socket_address(int fd, bool local, std::string& host, int& port) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  if ((local ? getsockname(fd, (sockaddr*)&a, &len) : getpeername(fd, (sockaddr*)&a, &len)) != 0) return false;
  char h[NI_MAXHOST], p[NI_MAXSERV];
  if (getnameinfo((sockaddr*)&a, len, h, sizeof h, p, sizeof p, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    return false;
  host = h;
  port = std::atoi(p);
  return true;
}

// The socket a request came on, or -1. httplib 0.11 does not expose it (later versions have
// Request::is_connection_closed), so it is found by the connection's local and peer addresses,
// unique among open sockets; httplib closes it only after the handler returns.
int connection_socket(const httplib::Request& req) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    const int fd = std::atoi(e.path().filename().c_str());
    std::string host;
    int port = 0;
    if (socket_address(fd, false, host, port) && port == req.remote_port && host == req.remote_addr &&
        socket_address(fd, true, host, port) && port == req.local_port && host == req.local_addr)
      return fd;
  }
  return -1;
}

// Whether the peer has closed the connection: readable with nothing to read (httplib's later
// is_connection_closed makes the same test). Bytes waiting (a pipelined request) mean it is there.
bool peer_closed(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, 0) <= 0) return false;
  if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) return true;
  char c;
  const ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

}  // namespace

struct Server::Impl {
  const Tokenizer& tok;
  Scheduler& sched;
  ServerConfig cfg;
  httplib::Server http;
  std::atomic<int64_t> next_id{1};
  std::mutex status_mu;
  std::map<int, int64_t> status_count;
  std::mt19937_64 seeds{std::random_device{}()};
  std::mutex seeds_mu;
  std::mutex run_mu;
  bool stop_requested = false, listening = false;
  std::atomic<bool> listen_returned{false};

  Impl(const Tokenizer& t, Scheduler& s, ServerConfig c) : tok(t), sched(s), cfg(std::move(c)) {}

  void routes();
  void completion(const httplib::Request& req, httplib::Response& res, bool chat);
  std::string metrics();
  json health();
};

void Server::Impl::routes() {
  // Enough threads that every slot and every queued request can wait on its own, plus a few for
  // /health, /metrics and requests being refused.
  const size_t threads = (size_t)sched.config().max_sequences + sched.config().max_queue + 8;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_payload_max_length(cfg.max_body);
  http.set_read_timeout(10);
  http.set_write_timeout(10);  // a client that reads nothing for 10 s is dropped (and its slot freed)
  http.set_keep_alive_timeout(2);
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    const bool guarded = req.path.rfind("/v1/", 0) == 0 || req.path == "/metrics";
    if (!cfg.api_key.empty() && guarded &&
        !same_secret(req.get_header_value("Authorization"), "Bearer " + cfg.api_key)) {
      send_error(res, 401, "invalid or missing API key (send 'Authorization: Bearer KEY')");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 413)
      send_error(res, 413, "the request body is over the limit of " + std::to_string(cfg.max_body) + " bytes");
    else if (res.status == 404)
      send_error(res, 404, "no such endpoint: " + req.method + " " + req.path);
    else
      send_error(res, res.status, "HTTP error " + std::to_string(res.status));
  });
  // Counted before the response is written (the logger runs after it, so a client could read
  // /metrics before its own last request was counted).
  http.set_post_routing_handler([this](const httplib::Request&, httplib::Response& res) {
    std::lock_guard<std::mutex> lk(status_mu);
    ++status_count[res.status];
  });
  auto guard = [](auto fn) {
    return [fn](const httplib::Request& req, httplib::Response& res) {
      try {
        fn(req, res);
      } catch (const ApiError& e) {
        send_error(res, e.status(), e.what(), e.type());
      } catch (const Error& e) {  // the tokenizer's (invalid UTF-8) and other input errors
        send_error(res, 400, e.what());
      } catch (const std::exception& e) {
        send_error(res, 500, std::string("internal error: ") + e.what(), "server_error");
      }
    };
  };
  http.Post("/v1/chat/completions", guard([this](const auto& q, auto& r) { completion(q, r, true); }));
  http.Post("/v1/completions", guard([this](const auto& q, auto& r) { completion(q, r, false); }));
  http.Get("/v1/models", guard([this](const auto&, auto& r) {
    const json m = {{"id", cfg.model_id}, {"object", "model"}, {"created", 0}, {"owned_by", "h1bkv"},
                    {"meta", {{"cache", sched.config().cache.str()}, {"n_ctx", sched.config().n_ctx}}}};
    r.set_content(dump_json({{"object", "list"}, {"data", json::array({m})}}), "application/json");
  }));
  http.Get("/health", guard([this](const auto&, auto& r) {
    r.set_content(dump_json(health()), "application/json");
  }));
  http.Get("/metrics", guard([this](const auto&, auto& r) {
    r.set_content(metrics(), "text/plain; version=0.0.4");
  }));
  http.Get("/", guard([](const auto&, auto& r) { r.set_content(chat_page_html(), "text/html; charset=utf-8"); }));
}

void Server::Impl::completion(const httplib::Request& req, httplib::Response& res, bool chat) {
  CompletionRequest r = parse_completion_request(req.body, chat);
  if (!r.model.empty() && r.model != cfg.model_id)
    throw ApiError(400, "unknown model '" + r.model + "'; this server serves '" + cfg.model_id + "'");
  if (chat && !cfg.chatml)
    throw ApiError(400, "this model's chat template is not ChatML, the only one supported; use /v1/completions");
  std::vector<int32_t> prompt;
  if (chat) {
    std::vector<std::pair<std::string, std::string>> turns;
    for (const ChatMessage& m : r.messages) turns.emplace_back(m.role, m.content);
    prompt = tok.encode(chatml_conversation(turns), false, true);  // ChatML: no BOS
  } else {
    prompt = tok.encode(r.prompt, true, true);
  }
  const int64_t n_ctx = sched.config().n_ctx, n = (int64_t)prompt.size();
  if (n == 0) throw ApiError(400, "the prompt has no tokens");
  if (n >= n_ctx)
    throw ApiError(400, "the prompt has " + std::to_string(n) + " tokens; the context (-c) holds " +
                            std::to_string(n_ctx) + " with room for at least one generated token");
  if (r.max_tokens < 0) r.max_tokens = n_ctx - n;
  if (n + r.max_tokens > n_ctx)
    throw ApiError(400, "prompt (" + std::to_string(n) + " tokens) + max_tokens " +
                            std::to_string(r.max_tokens) + " exceeds the context of " +
                            std::to_string(n_ctx) + " tokens (-c)");
  if (!r.seeded) {
    std::lock_guard<std::mutex> lk(seeds_mu);
    r.sampling.seed = seeds();
  }
  auto seq = std::make_shared<Sequence>(std::move(prompt), r.max_tokens, r.sampling, r.stop);
  seq->cache_prompt = r.cache_prompt;
  sched.submit(seq);  // ApiError 400 (never fits) or 503 (queue full)
  const std::string id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(next_id++);
  const int64_t created = (int64_t)std::time(nullptr);

  if (!r.stream) {
    // A client that leaves is found within 100 ms and its sequence dropped at the next step.
    const int sock = connection_socket(req);
    std::string text;
    SequenceEvent e;
    // The peer is looked at after every event and every 100 ms without one (tokens may come
    // faster than that, so a check only on the timeout would never run).
    for (;;) {
      const bool got = seq->next(e, std::chrono::milliseconds(100));
      if (got && e.done) {
        text += e.text;
        break;
      }
      if (sock >= 0 && peer_closed(sock)) {
        seq->cancel();
        send_error(res, 499, "the client closed the connection");  // nginx's code; nobody reads it
        return;
      }
      if (got) text += e.text;
    }
    if (!e.error.empty()) throw ApiError(500, e.error, "server_error");
    res.set_content(dump_json(completion_json(r, id, created, cfg.model_id, text, e.finish_reason, e.usage)),
                    "application/json");
    return;
  }
  res.set_header("Cache-Control", "no-cache");
  auto started = std::make_shared<bool>(false);
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, seq, r, id, created, started](size_t, httplib::DataSink& sink) {
        auto send = [&](const json& j) {
          const std::string line = "data: " + dump_json(j) + "\n\n";
          return sink.write(line.data(), line.size());
        };
        if (!*started) {
          *started = true;
          if (r.chat && !send(chunk_json(r, id, created, cfg.model_id, "", "", true))) return false;
        }
        SequenceEvent e;
        if (!seq->next(e, std::chrono::seconds(1))) {  // a comment line finds a client that left
          static const std::string ping = ": waiting\n\n";
          return sink.write(ping.data(), ping.size());
        }
        if (!e.text.empty() && !send(chunk_json(r, id, created, cfg.model_id, e.text, ""))) return false;
        if (!e.done) return true;
        if (!e.error.empty()) {
          if (!send(error_object(e.error, "server_error", 500))) return false;
        } else {
          if (!send(chunk_json(r, id, created, cfg.model_id, "", e.finish_reason))) return false;
          if (r.include_usage && !send(usage_chunk_json(r, id, created, cfg.model_id, e.usage))) return false;
        }
        static const std::string done = "data: [DONE]\n\n";
        if (!sink.write(done.data(), done.size())) return false;
        sink.done();
        return true;
      },
      [seq](bool) { seq->cancel(); });  // finished: a no-op; the client left: frees the slot
}

json Server::Impl::health() {
  const SchedulerStats s = sched.stats();
  const SchedulerConfig& c = sched.config();
  return {{"status", "ok"},
          {"model", cfg.model_id},
          {"cache", c.cache.str()},
          {"n_ctx", c.n_ctx},
          {"max_sequences", c.max_sequences},
          {"kv_budget_bytes", c.kv_budget},
          {"kv_bytes_held", s.kv_bytes_held},
          {"kv_bytes_reserved", s.kv_bytes_reserved},
          {"active", s.active},
          {"prefilling", s.prefilling},
          {"queued", s.queued},
          {"prompt_cache_entries", s.prompt_cache_entries},
          {"prompt_cache_bytes", s.prompt_cache_bytes},
          {"decode_tokens_per_second", s.step_tokens_per_s}};
}

std::string Server::Impl::metrics() {
  const SchedulerStats s = sched.stats();
  const SchedulerConfig& c = sched.config();
  const std::string cache = "{cache=\"" + prom_label(c.cache.str()) + "\"}";
  std::ostringstream o;
  o.precision(17);
  auto metric = [&](const char* name, const char* type, const char* help, const std::string& labels,
                    double v) {
    o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n'
      << name << labels << ' ' << v << '\n';
  };
  o << "# HELP h1bkv_requests_total HTTP requests answered, by status code\n"
       "# TYPE h1bkv_requests_total counter\n";
  {
    std::lock_guard<std::mutex> lk(status_mu);
    for (const auto& [code, count] : status_count)
      o << "h1bkv_requests_total{status=\"" << code << "\"} " << count << '\n';
  }
  metric("h1bkv_prompt_tokens_total", "counter", "prompt tokens run", "", (double)s.prompt_tokens);
  metric("h1bkv_generated_tokens_total", "counter", "tokens generated", "", (double)s.generated_tokens);
  metric("h1bkv_prompt_tokens_cached_total", "counter", "prompt tokens taken from the prompt cache instead of run",
         "", (double)s.prompt_tokens_cached);
  metric("h1bkv_prompt_cache_hits_total", "counter", "requests that took a kept cache", "",
         (double)s.prompt_cache_hits);
  metric("h1bkv_step_seconds_total", "counter", "seconds in batched steps (decode rows and prompt chunks)",
         "", s.step_seconds);
  metric("h1bkv_decode_seconds_total", "counter", "seconds in steps that ran decode rows only", "",
         s.decode_seconds);
  metric("h1bkv_decode_tokens_total", "counter", "tokens generated in steps that ran decode rows only",
         "", (double)s.decode_tokens);
  metric("h1bkv_decode_tokens_per_second", "gauge", "decode rows per second of the last step that had them",
         "", s.step_tokens_per_s);
  metric("h1bkv_sequences_finished_total", "counter", "sequences that ended normally", "", (double)s.finished);
  metric("h1bkv_sequences_cancelled_total", "counter", "sequences whose client left", "", (double)s.cancelled);
  metric("h1bkv_sequences_failed_total", "counter", "sequences ended by an error", "", (double)s.failed);
  metric("h1bkv_queue_length", "gauge", "requests waiting for admission", "", (double)s.queued);
  metric("h1bkv_active_sequences", "gauge", "sequences admitted (prefilling or decoding)", cache,
         (double)s.active);
  metric("h1bkv_prefilling_sequences", "gauge", "admitted sequences whose prompt is still running", cache,
         (double)s.prefilling);
  metric("h1bkv_max_active_sequences", "gauge", "most sequences admitted at once so far", cache,
         (double)s.most_active);
  metric("h1bkv_kv_bytes_held", "gauge", "KV cache bytes held by active sequences and the prompt cache", cache, s.kv_bytes_held);
  metric("h1bkv_kv_bytes_reserved", "gauge", "KV cache bytes reserved by active sequences and the prompt cache", cache,
         s.kv_bytes_reserved);
  metric("h1bkv_kv_budget_bytes", "gauge", "KV cache budget (--kv-budget)", cache, c.kv_budget);
  metric("h1bkv_prompt_cache_entries", "gauge", "finished sequences' caches kept for prompt reuse", cache,
         (double)s.prompt_cache_entries);
  metric("h1bkv_prompt_cache_bytes", "gauge", "KV cache bytes of those (in held and reserved)", cache,
         s.prompt_cache_bytes);
  return o.str();
}

Server::Server(const Tokenizer& tok, Scheduler& sched, ServerConfig cfg)
    : impl_(std::make_unique<Impl>(tok, sched, std::move(cfg))) {
  impl_->routes();
}

Server::~Server() { stop(); }

int Server::bind() {
  const ServerConfig& c = impl_->cfg;
  int port = c.port;
  if (port == 0) port = impl_->http.bind_to_any_port(c.host);
  else if (!impl_->http.bind_to_port(c.host, port)) port = -1;
  check(port > 0, "cannot listen on " + c.host + ":" + std::to_string(c.port) +
                      " (in use, or not an address of this machine)");
  return port;
}

void Server::listen() {
  {
    std::lock_guard<std::mutex> lk(impl_->run_mu);
    if (impl_->stop_requested) return;
    impl_->listening = true;
  }
  impl_->http.listen_after_bind();
  impl_->listen_returned = true;
}

// httplib's stop() does nothing before listen_after_bind has started running: wait for that (or
// for listen to have returned), so a stop right after listen() was called is never lost.
void Server::stop() {
  {
    std::lock_guard<std::mutex> lk(impl_->run_mu);
    impl_->stop_requested = true;
    if (!impl_->listening) return;
  }
  while (!impl_->http.is_running() && !impl_->listen_returned)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  impl_->http.stop();
}

}  // namespace h1bkv
