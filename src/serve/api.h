// The OpenAI request and response shapes of /v1/chat/completions and /v1/completions: parsing
// with every field checked (a one-line ApiError otherwise), and the JSON of replies and stream
// chunks.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/sampler.h"
#include "util/error.h"

namespace h1bkv {

// An error for the client: HTTP status and an OpenAI error object.
class ApiError : public Error {
 public:
  ApiError(int status, const std::string& msg, std::string type = "invalid_request_error")
      : Error(msg), status_(status), type_(std::move(type)) {}
  int status() const { return status_; }
  const std::string& type() const { return type_; }

 private:
  int status_;
  std::string type_;
};

// {"error": {"message", "type", "param": null, "code": status}}
nlohmann::json error_object(const std::string& message, const std::string& type, int code);

struct ChatMessage {
  std::string role, content;
};

struct CompletionRequest {
  bool chat = false;
  std::string model;                  // "" when the request names none
  std::vector<ChatMessage> messages;  // chat
  std::string prompt;                 // completion
  int64_t max_tokens = -1;            // -1: up to the context
  SamplerParams sampling;
  bool seeded = false;                // "seed" given
  std::vector<std::string> stop;
  bool stream = false, include_usage = false;
  bool cache_prompt = true;           // llama-server's extension: false skips the prompt cache
};

// Parses a request body; chat selects the endpoint's shape. Throws ApiError 400 naming the field
// on malformed JSON, a missing or empty prompt/messages, a value of the wrong type or out of range.
CompletionRequest parse_completion_request(const std::string& body, bool chat);

struct Usage {
  int64_t prompt_tokens = 0, completion_tokens = 0;
  int64_t cached_tokens = 0;  // prompt tokens taken from the prompt cache (prompt_tokens_details)
};

nlohmann::json usage_json(const Usage& u);
// A whole reply (stream: false).
nlohmann::json completion_json(const CompletionRequest& r, const std::string& id, int64_t created,
                               const std::string& model, const std::string& text,
                               const std::string& finish_reason, const Usage& u);
// One stream chunk: text (or, for chat, the opening role delta when role_delta), or the last one
// with finish_reason (text empty).
nlohmann::json chunk_json(const CompletionRequest& r, const std::string& id, int64_t created,
                          const std::string& model, const std::string& text,
                          const std::string& finish_reason, bool role_delta = false);
// The usage chunk of stream_options.include_usage: no choices.
nlohmann::json usage_chunk_json(const CompletionRequest& r, const std::string& id, int64_t created,
                                const std::string& model, const Usage& u);

// JSON text with invalid UTF-8 (a token cut inside a character) replaced by U+FFFD.
std::string dump_json(const nlohmann::json& j);

}  // namespace h1bkv
