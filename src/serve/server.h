// The HTTP front of `h1bkv serve` (cpp-httplib): the OpenAI endpoints, /health, /metrics and the
// chat page at /. Requests are parsed and tokenized on the HTTP threads and handed to the
// Scheduler; nothing on disk is ever served.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

namespace h1bkv {

class Tokenizer;
class Scheduler;

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 8080;             // 0: any free port (bind() returns it)
  std::string model_id;        // what /v1/models lists; a request naming another model is a 400
  std::string api_key;         // "" = none; else /v1/* and /metrics need "Authorization: Bearer KEY"
  size_t max_body = 1 << 20;   // bytes of a request body; more is 413
  bool chatml = true;          // false: the model's template is not ChatML (chat requests 400)
};

class Server {
 public:
  Server(const Tokenizer& tok, Scheduler& sched, ServerConfig cfg);
  ~Server();
  // Binds the listening socket; returns the port. Throws Error when it cannot.
  int bind();
  void listen();  // serves until stop()
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The chat page served at / (plain HTML and JavaScript, no external resources).
const char* chat_page_html();

}  // namespace h1bkv
