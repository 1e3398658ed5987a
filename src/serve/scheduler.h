// The sequence pool and its scheduler: one cache per sequence, admission by memory, a bounded
// queue, and continuous batching with chunked prefill. Each step admits waiting sequences (FIFO)
// while the budget and the slot count allow, samples one token for every sequence whose prompt
// has run, then runs those tokens and the next chunk of the prompts still running (at most
// prefill_chunk prompt tokens in all, oldest sequence first) through one Model::forward_batch.
// Finished and cancelled sequences free their cache and their reservation within the step; a
// finished sequence's cache may instead stay in the prompt cache (prompt_cache.h) for a later
// request that starts with its tokens.
#pragma once
#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kv/registry.h"
#include "model/model.h"
#include "serve/prompt_cache.h"
#include "serve/sequence.h"

namespace h1bkv {

class Tokenizer;

struct SchedulerConfig {
  CacheSpec cache;
  std::string calib;        // calibration file for the cache type ("" = none)
  int64_t n_ctx = 2048;     // most tokens of one sequence (prompt + max_tokens)
  int max_sequences = 4;    // active at once
  double kv_budget = 1e9;   // bytes of KV cache all admitted sequences may reserve
  int max_queue = 32;       // waiting sequences; more is 503
  int64_t prefill_chunk = 64;  // prompt tokens run per step, all sequences; 0 = one whole prompt
  int prompt_cache = 0;        // finished sequences' caches kept for prompt reuse; 0 = off
  // Rows one step may run, which Model::forward_batch's workspace grows to.
  int64_t most_step_rows() const {
    return (prefill_chunk > 0 ? std::min(prefill_chunk, n_ctx) : n_ctx) + max_sequences;
  }
};

struct SchedulerStats {
  int64_t queued = 0, active = 0, most_active = 0;
  double kv_bytes_held = 0;      // codes held by the active sequences' and the prompt cache's caches
  double kv_bytes_reserved = 0;  // reservations of the active sequences + the prompt cache's bytes
  int64_t prompt_tokens = 0, generated_tokens = 0;
  int64_t finished = 0, cancelled = 0, failed = 0;
  int64_t prefilling = 0;        // active sequences whose prompt has not all run yet
  int64_t prompt_tokens_cached = 0;  // prompt tokens taken from the prompt cache instead of run
  int64_t prompt_cache_hits = 0;     // admissions that took a kept cache
  int64_t prompt_cache_entries = 0;  // caches kept now (their bytes are in held and reserved)
  double prompt_cache_bytes = 0;
  double step_seconds = 0;       // time in Model::forward_batch, all steps
  double decode_seconds = 0;     // of which in steps that ran decode rows only (no prompt chunk)
  int64_t decode_tokens = 0;     // rows of those steps
  double step_tokens_per_s = 0;  // decode rows / seconds of the last step that had them
};

class Scheduler {
 public:
  // Throws Error when the cache type cannot be built (bad calibration file).
  Scheduler(Model& model, const Tokenizer& tok, SchedulerConfig cfg);
  ~Scheduler();

  // Bytes a sequence of n tokens reserves: the cache formula `info` prints, per-token bytes x n
  // plus the fixed full-precision bytes, for a cache of n_ctx = n. Each step settles the caches
  // it ran (KvCache::settle), so what they hold between steps stays within it for any chunk.
  double reservation_bytes(int64_t n_tokens) const;
  // Queues s. Throws ApiError 400 (with the numbers) when it can never fit the budget, 503 when
  // the queue is full or the scheduler is stopping.
  void submit(const std::shared_ptr<Sequence>& s);
  // One step; false when there was nothing to do. The thread of start() calls it; tests may
  // call it directly instead.
  bool step();
  void start();
  // Ends the thread; every queued and active sequence gets a final error event.
  void stop();

  SchedulerStats stats() const;
  const SchedulerConfig& config() const { return cfg_; }

 private:
  void finish(Sequence& s, const std::string& reason, const std::string& error);
  void release(Sequence& s, bool keep = false);  // frees the cache (keep: into the prompt cache) and the reservation
  // Admits the queue's front when a slot and the budget allow, taking its best prompt-cache
  // entry and dropping the oldest others while the budget needs the room. Under mu_.
  bool admit_front(std::vector<std::shared_ptr<Sequence>>& admitted);
  double formula_bytes(int64_t n_tokens) const;
  // Whether s may take and leave a prompt-cache entry.
  bool caches_prompt(const Sequence& s) const { return s.cache_prompt && cfg_.prompt_cache > 0; }

  Model& model_;
  const Tokenizer& tok_;
  const SchedulerConfig cfg_;
  // The context of a new sequence's cache: -c while the prompt cache is on (a kept cache can then
  // take a longer request), else its own prompt + max_tokens; evict's keeps its own (context_sized).
  const bool caches_for_ctx_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Sequence>> queue_;
  std::vector<std::shared_ptr<Sequence>> active_;  // the scheduler thread's; stats under mu_
  PromptCache kept_;                                // under mu_
  SchedulerStats stats_;
  bool stopping_ = false;
  std::thread thread_;

  std::vector<int32_t> rows_tok_;  // the decode rows' tokens (spans point into it)
  std::vector<BatchSpan> spans_;
  std::vector<float> rows_logits_;
};

}  // namespace h1bkv
