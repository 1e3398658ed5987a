#include "eval/session.h"

#include <algorithm>
#include <cstring>

#include "kv/cache.h"
#include "model/model.h"
#include "util/error.h"

namespace h1bkv {

EvalSession::EvalSession(Model& model, KvCache& cache, int64_t n_batch)
    : model_(model), cache_(cache), n_batch_(std::max<int64_t>(1, n_batch)) {
  cache_.clear();
}

int32_t EvalSession::n_vocab() const { return model_.config().n_vocab; }

void EvalSession::reset() {
  cache_.clear();
  held_.clear();
}

void EvalSession::rewind_to(int64_t n) {
  if (n == (int64_t)held_.size()) return;
  try {
    cache_.truncate(n);
    held_.resize((size_t)n);
    ++stats_.rewinds;
  } catch (const Error&) {  // the policy cannot rewind this far: start over
    reset();
    ++stats_.refills;
  }
}

// Runs toks [n] after held_; the logits of the last keep_last of them end in logits_
// ([keep_last][n_vocab]).
void EvalSession::run(const int32_t* toks, int64_t n, bool logits_for_all, int64_t keep_last) {
  const int64_t V = n_vocab();
  logits_.assign((size_t)(keep_last * V), 0.0f);
  for (int64_t i = 0; i < n; i += n_batch_) {
    const int64_t m = std::min(n_batch_, n - i);
    const int64_t first_kept = n - keep_last;  // index of the first token whose logits we keep
    const bool want_rows = i + m > first_kept;
    const bool all = want_rows && (logits_for_all || keep_last > 1);
    step_.resize((size_t)((all ? m : 1) * V));
    model_.forward(toks + i, m, (int32_t)held_.size(), cache_, step_.data(), all);
    held_.insert(held_.end(), toks + i, toks + i + m);
    stats_.tokens_computed += m;
    if (!want_rows) continue;
    for (int64_t j = std::max(i, first_kept); j < i + m; ++j) {
      const float* src = all ? step_.data() + (j - i) * V : step_.data();
      if (!all && j != i + m - 1) continue;
      std::memcpy(logits_.data() + (j - first_kept) * V, src, (size_t)V * sizeof(float));
    }
  }
}

const std::vector<float>& EvalSession::eval(const std::vector<int32_t>& tokens, int64_t want) {
  const int64_t n = (int64_t)tokens.size();
  check(n > 0, "nothing to evaluate (empty token sequence)");
  check(n <= cache_.n_ctx(), "sequence of " + std::to_string(n) + " tokens exceeds the context size " +
                                 std::to_string(cache_.n_ctx()));
  check(want >= 1 && want <= n, "asked for the logits of " + std::to_string(want) + " of " +
                                    std::to_string(n) + " tokens");
  int64_t common = 0;
  const int64_t lim = std::min<int64_t>(n - want, (int64_t)held_.size());
  while (common < lim && held_[(size_t)common] == tokens[(size_t)common]) ++common;
  rewind_to(common);
  const int64_t start = (int64_t)held_.size();  // == common, or 0 after a refill
  stats_.tokens_reused += start;
  run(tokens.data() + start, n - start, false, want);
  return logits_;
}

const std::vector<float>& EvalSession::push(int32_t token) {
  check((int64_t)held_.size() < cache_.n_ctx(),
        "context full: " + std::to_string(cache_.n_ctx()) + " tokens");
  run(&token, 1, false, 1);
  return logits_;
}

void EvalSession::push_batch(EvalSession* const* s, const int32_t* tokens, int64_t n) {
  if (n == 0) return;
  Model& model = s[0]->model_;
  std::vector<int32_t> pos((size_t)n);
  std::vector<KvCache*> caches((size_t)n);
  for (int64_t i = 0; i < n; ++i) {
    check(&s[i]->model_ == &model, "push_batch: sessions of different models");
    check((int64_t)s[i]->held_.size() < s[i]->cache_.n_ctx(),
          "context full: " + std::to_string(s[i]->cache_.n_ctx()) + " tokens");
    pos[(size_t)i] = (int32_t)s[i]->held_.size();
    caches[(size_t)i] = &s[i]->cache_;
  }
  const int64_t V = s[0]->n_vocab();
  thread_local std::vector<float> rows;  // [n][n_vocab]
  rows.resize((size_t)(n * V));
  model.forward_batch(tokens, pos.data(), caches.data(), n, rows.data());
  for (int64_t i = 0; i < n; ++i) {
    s[i]->held_.push_back(tokens[i]);
    ++s[i]->stats_.tokens_computed;
    s[i]->logits_.assign(rows.begin() + i * V, rows.begin() + (i + 1) * V);
  }
}

}  // namespace h1bkv
