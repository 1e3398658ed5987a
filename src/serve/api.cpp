#include "serve/api.h"

#include <cmath>
#include <limits>

namespace h1bkv {

using nlohmann::json;

json error_object(const std::string& message, const std::string& type, int code) {
  return {{"error", {{"message", message}, {"type", type}, {"param", nullptr}, {"code", code}}}};
}

namespace {

[[noreturn]] void bad(const std::string& msg) { throw ApiError(400, msg); }

double number_in(const json& j, const char* key, double lo, double hi) {
  const json& v = j.at(key);
  if (!v.is_number()) bad(std::string("'") + key + "' must be a number");
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi)
    bad(std::string("'") + key + "' is " + v.dump() + ", outside [" + json(lo).dump() + ", " +
        json(hi).dump() + "]");
  return x;
}

int64_t integer_in(const json& j, const char* key, int64_t lo, int64_t hi) {
  const json& v = j.at(key);
  if (!v.is_number_integer()) bad(std::string("'") + key + "' must be an integer");
  // non-negative literals parse as unsigned: compare those as unsigned (no wrap past int64)
  const bool out = v.is_number_unsigned()
                       ? v.get<uint64_t>() > (uint64_t)hi || (lo > 0 && v.get<uint64_t>() < (uint64_t)lo)
                       : v.get<int64_t>() < lo || v.get<int64_t>() > hi;
  if (out)
    bad(std::string("'") + key + "' is " + v.dump() + ", outside [" + std::to_string(lo) + ", " +
        std::to_string(hi) + "]");
  return v.get<int64_t>();
}

// A message's content: a string, or an array of {"type": "text", "text": ...} parts.
std::string content_text(const json& c, size_t i) {
  const std::string where = "messages[" + std::to_string(i) + "].content";
  if (c.is_string()) return c.get<std::string>();
  if (!c.is_array()) bad("'" + where + "' must be a string or an array of text parts");
  std::string out;
  for (const json& part : c) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
        !part["text"].is_string())
      bad("'" + where + "' has a part that is not {\"type\": \"text\", \"text\": string}");
    out += part["text"].get<std::string>();
  }
  return out;
}

}  // namespace

CompletionRequest parse_completion_request(const std::string& body, bool chat) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    bad(std::string("malformed JSON in the request body: ") + e.what());
  }
  if (!j.is_object()) bad("the request body must be a JSON object");
  CompletionRequest r;
  r.chat = chat;
  r.sampling = SamplerParams{1.0f, 0, 1.0f, 0};  // OpenAI's defaults: temperature 1, no top-k/p
  if (j.contains("model") && !j["model"].is_null()) {
    if (!j["model"].is_string()) bad("'model' must be a string");
    r.model = j["model"].get<std::string>();
  }
  if (chat) {
    if (!j.contains("messages")) bad("'messages' is missing");
    const json& m = j["messages"];
    if (!m.is_array()) bad("'messages' must be an array");
    if (m.empty()) bad("'messages' is empty");
    for (size_t i = 0; i < m.size(); ++i) {
      if (!m[i].is_object() || !m[i].contains("role") || !m[i]["role"].is_string())
        bad("'messages[" + std::to_string(i) + "]' must be an object with a string 'role'");
      const std::string role = m[i]["role"].get<std::string>();
      if (role != "system" && role != "user" && role != "assistant" && role != "developer")
        bad("'messages[" + std::to_string(i) + "].role' is '" + role +
            "'; expected system, developer, user or assistant");
      if (!m[i].contains("content")) bad("'messages[" + std::to_string(i) + "].content' is missing");
      r.messages.push_back({role == "developer" ? "system" : role, content_text(m[i]["content"], i)});
    }
  } else {
    if (!j.contains("prompt")) bad("'prompt' is missing");
    const json& p = j["prompt"];
    if (p.is_array() && p.size() == 1 && p[0].is_string()) r.prompt = p[0].get<std::string>();
    else if (p.is_string()) r.prompt = p.get<std::string>();
    else bad("'prompt' must be a string (or an array of one string)");
    if (r.prompt.empty()) bad("'prompt' is empty");
  }
  const int64_t kMax = std::numeric_limits<int32_t>::max();
  for (const char* key : {"max_tokens", "max_completion_tokens"})
    if (j.contains(key) && !j[key].is_null()) r.max_tokens = integer_in(j, key, 1, kMax);
  if (j.contains("temperature") && !j["temperature"].is_null())
    r.sampling.temp = (float)number_in(j, "temperature", 0, 2);
  if (j.contains("top_p") && !j["top_p"].is_null()) r.sampling.top_p = (float)number_in(j, "top_p", 0, 1);
  if (j.contains("top_k") && !j["top_k"].is_null()) r.sampling.top_k = (int)integer_in(j, "top_k", 0, kMax);
  if (j.contains("seed") && !j["seed"].is_null()) {
    const json& s = j["seed"];
    if (!s.is_number_integer()) bad("'seed' must be an integer");
    r.sampling.seed = s.is_number_unsigned() ? s.get<uint64_t>() : (uint64_t)s.get<int64_t>();
    r.seeded = true;
  }
  if (j.contains("n") && !j["n"].is_null() && integer_in(j, "n", 1, kMax) != 1)
    bad("'n' must be 1 (one choice per request)");
  if (j.contains("stop") && !j["stop"].is_null()) {
    const json& s = j["stop"];
    if (s.is_string()) {
      r.stop.push_back(s.get<std::string>());
    } else if (s.is_array() && s.size() <= 4) {
      for (const json& e : s) {
        if (!e.is_string()) bad("'stop' must be a string or an array of up to 4 strings");
        r.stop.push_back(e.get<std::string>());
      }
    } else {
      bad("'stop' must be a string or an array of up to 4 strings");
    }
    for (const std::string& s : r.stop)
      if (s.empty()) bad("'stop' has an empty string");
  }
  if (j.contains("stream") && !j["stream"].is_null()) {
    if (!j["stream"].is_boolean()) bad("'stream' must be true or false");
    r.stream = j["stream"].get<bool>();
  }
  if (j.contains("cache_prompt") && !j["cache_prompt"].is_null()) {
    if (!j["cache_prompt"].is_boolean()) bad("'cache_prompt' must be true or false");
    r.cache_prompt = j["cache_prompt"].get<bool>();
  }
  if (j.contains("stream_options") && j["stream_options"].is_object()) {
    const json& o = j["stream_options"];
    if (o.contains("include_usage")) {
      if (!o["include_usage"].is_boolean()) bad("'stream_options.include_usage' must be true or false");
      r.include_usage = o["include_usage"].get<bool>();
    }
  }
  return r;
}

json usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

namespace {

json finish_value(const std::string& f) { return f.empty() ? json(nullptr) : json(f); }

}  // namespace

json completion_json(const CompletionRequest& r, const std::string& id, int64_t created,
                     const std::string& model, const std::string& text,
                     const std::string& finish_reason, const Usage& u) {
  json choice = {{"index", 0}, {"finish_reason", finish_value(finish_reason)}};
  if (r.chat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
    choice["logprobs"] = nullptr;
  }
  return {{"id", id},
          {"object", r.chat ? "chat.completion" : "text_completion"},
          {"created", created},
          {"model", model},
          {"choices", json::array({choice})},
          {"usage", usage_json(u)}};
}

json chunk_json(const CompletionRequest& r, const std::string& id, int64_t created,
                const std::string& model, const std::string& text, const std::string& finish_reason,
                bool role_delta) {
  json choice = {{"index", 0}, {"finish_reason", finish_value(finish_reason)}};
  if (r.chat) {
    json delta = json::object();
    if (role_delta) delta = {{"role", "assistant"}, {"content", ""}};
    else if (finish_reason.empty()) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
    choice["logprobs"] = nullptr;
  }
  return {{"id", id},
          {"object", r.chat ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", model},
          {"choices", json::array({choice})}};
}

json usage_chunk_json(const CompletionRequest& r, const std::string& id, int64_t created,
                      const std::string& model, const Usage& u) {
  return {{"id", id},
          {"object", r.chat ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", model},
          {"choices", json::array()},
          {"usage", usage_json(u)}};
}

std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace h1bkv
