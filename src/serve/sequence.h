// One request's generation, shared by the HTTP thread that waits for its events and the
// scheduler thread that produces them. The scheduler never blocks on a client: events queue
// here (at most one per generated token) and the client reads them at its own pace.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kv/cache.h"
#include "model/sampler.h"
#include "serve/api.h"
#include "serve/prompt_cache.h"
#include "serve/text_stream.h"

namespace h1bkv {

struct SequenceEvent {
  std::string text;           // final text since the previous event
  bool done = false;          // the last event of the sequence
  std::string finish_reason;  // "stop" or "length" when done without error
  std::string error;          // when done by an error (the server stopping, a failed step)
  Usage usage;                // when done
};

class Sequence {
 public:
  Sequence(std::vector<int32_t> prompt, int64_t max_tokens, const SamplerParams& sampling,
           std::vector<std::string> stop);

  // HTTP side. next: the next event, waiting up to `wait`; false on timeout.
  bool next(SequenceEvent& e, std::chrono::milliseconds wait);
  // The client is gone: the scheduler frees the sequence at its next step.
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

  const std::vector<int32_t> prompt;
  const int64_t max_tokens;
  bool cache_prompt = true;  // may take and leave a prompt-cache entry (set before submit)

 private:
  friend class Scheduler;
  void emit(SequenceEvent e);

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<SequenceEvent> events_;
  std::atomic<bool> cancelled_{false};

  // Scheduler state (its thread only).
  Sampler sampler_;
  TextStream text_;
  std::unique_ptr<KvCache> cache_;
  std::vector<float> logits_;  // [n_vocab] of the last token run
  int32_t pos_ = 0;            // position of the next token to run
  int64_t prefilled_ = 0;      // prompt tokens run (== prompt.size(): logits_ are the prompt's)
  int64_t generated_ = 0;
  std::vector<int32_t> ran_;   // generated tokens run through the cache (after the prompt)
  PromptCache::Taken taken_;   // the prompt-cache entry admission chose (cache null: none)
  int64_t cached_ = 0;         // prompt tokens taken from it
  double need_ = 0;            // bytes it reserves once admitted (Scheduler::reservation_bytes)
  double reserved_ = 0;        // need_ while admitted, else 0
};

}  // namespace h1bkv
