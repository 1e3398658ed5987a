// A model + cache pair that remembers which tokens the cache holds, so a task harness can ask
// for the logits after any token sequence and only the part past the longest common prefix is
// computed: choices share their context, MMLU items share the 5-shot prefix of their subject,
// GSM8K items their exemplars. Rewinding uses KvCache::truncate; a cache that cannot rewind that
// far (eviction, h1b's exact window beyond the last batch) is cleared and refilled instead, so
// results never depend on what was evaluated before (every cache here evaluates a sequence the
// same in one batch or token by token).
#pragma once
#include <cstdint>
#include <vector>

namespace h1bkv {

class Model;
class KvCache;

struct SessionStats {
  int64_t tokens_computed = 0;  // tokens run through the model
  int64_t tokens_reused = 0;    // tokens served from the cache's common prefix
  int64_t rewinds = 0, refills = 0;
  SessionStats& operator+=(const SessionStats& o) {
    tokens_computed += o.tokens_computed, tokens_reused += o.tokens_reused;
    rewinds += o.rewinds, refills += o.refills;
    return *this;
  }
};

class EvalSession {
 public:
  EvalSession(Model& model, KvCache& cache, int64_t n_batch = 512);

  // Makes the cache hold exactly `tokens` (reusing the common prefix) and returns the logits
  // [n][n_vocab] of the last n = want_logits positions (1 <= want_logits <= tokens.size(); every
  // one of them is recomputed if it lies in the reused prefix). Throws Error when tokens is empty
  // or longer than the cache's n_ctx.
  const std::vector<float>& eval(const std::vector<int32_t>& tokens, int64_t want_logits = 1);
  // Appends one token to what the cache holds and returns its logits [n_vocab] (decoding).
  const std::vector<float>& push(int32_t token);
  // push() for several sessions of one model (distinct caches) in one Model::forward_batch:
  // appends tokens[i] to sessions[i]; each session's logits() then holds its row, [n_vocab], the
  // same values push(tokens[i]) alone gives.
  static void push_batch(EvalSession* const* sessions, const int32_t* tokens, int64_t n);
  const std::vector<float>& logits() const { return logits_; }  // of the last eval/push

  const std::vector<int32_t>& held() const { return held_; }
  const SessionStats& stats() const { return stats_; }
  int32_t n_vocab() const;
  Model& model() { return model_; }
  KvCache& cache() { return cache_; }
  void reset();  // clears the cache

 private:
  void rewind_to(int64_t n);  // held_ = first n tokens, by truncate or by clear + refill
  void run(const int32_t* toks, int64_t n, bool logits_for_all, int64_t keep_last);

  Model& model_;
  KvCache& cache_;
  int64_t n_batch_;
  std::vector<int32_t> held_;
  std::vector<float> logits_, step_;
  SessionStats stats_;
};

}  // namespace h1bkv
