// libFuzzer target for the server's request parser (serve/api.h): any body, for either endpoint,
// must parse or throw ApiError with status 400; a parsed request has a prompt or messages,
// max_tokens -1 or >= 1, and its reply and chunk JSON serialize (invalid UTF-8 replaced).
#include <cstddef>
#include <cstdint>
#include <string>

#include "serve/api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  for (bool chat : {false, true}) {
    h1bkv::CompletionRequest r;
    try {
      r = h1bkv::parse_completion_request(body, chat);
    } catch (const h1bkv::ApiError& e) {
      if (e.status() != 400) __builtin_trap();
      continue;
    }
    if (chat ? r.messages.empty() : r.prompt.empty()) __builtin_trap();
    if (r.max_tokens != -1 && r.max_tokens < 1) __builtin_trap();
    const std::string text = chat ? r.messages.back().content : r.prompt;
    h1bkv::dump_json(h1bkv::completion_json(r, "id", 0, r.model, text, "stop", {1, 2}));
    h1bkv::dump_json(h1bkv::chunk_json(r, "id", 0, r.model, text, ""));
  }
  return 0;
}
