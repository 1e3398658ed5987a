#include "serve/scheduler.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "tokenize/tokenizer.h"
#include "util/error.h"
#include "util/timer.h"

namespace h1bkv {

Scheduler::Scheduler(Model& model, const Tokenizer& tok, SchedulerConfig cfg)
    : model_(model), tok_(tok), cfg_(std::move(cfg)),
      caches_for_ctx_(cfg_.prompt_cache > 0 && !cache_type(cfg_.cache.type).context_sized),
      kept_(cfg_.prompt_cache) {
  check(cfg_.n_ctx > 0 && cfg_.max_sequences > 0 && cfg_.max_queue > 0 && cfg_.kv_budget > 0 &&
            cfg_.prompt_cache >= 0,
        "scheduler: context, sequences, queue and budget must be positive (prompt cache >= 0)");
  make_cache(cfg_.cache, model_.cache_geometry(1), cfg_.calib);  // a bad spec or file fails here
}

Scheduler::~Scheduler() { stop(); }

double Scheduler::formula_bytes(int64_t n_tokens) const {
  const CacheGeometry g = model_.cache_geometry(n_tokens);
  return cache_bytes_per_token(cfg_.cache, g) * (double)n_tokens + cache_fixed_bytes(cfg_.cache, g);
}

double Scheduler::reservation_bytes(int64_t n_tokens) const { return formula_bytes(n_tokens); }

void Scheduler::submit(const std::shared_ptr<Sequence>& s) {
  const int64_t n = (int64_t)s->prompt.size() + s->max_tokens;
  check(!s->prompt.empty() && s->max_tokens > 0 && n <= cfg_.n_ctx, "scheduler: invalid sequence");
  const double need = reservation_bytes(n);
  if (need > cfg_.kv_budget) {
    const CacheGeometry g = model_.cache_geometry(n);
    throw ApiError(400, "the request needs " + std::to_string((int64_t)need) + " bytes of KV cache (" +
                            std::to_string(s->prompt.size()) + " prompt + " +
                            std::to_string(s->max_tokens) + " max_tokens = " + std::to_string(n) +
                            " tokens x " + std::to_string(cache_bytes_per_token(cfg_.cache, g)) +
                            " bytes/token + " + std::to_string(cache_fixed_bytes(cfg_.cache, g)) +
                            " fixed, cache " + cfg_.cache.str() +
                            "), more than the whole budget of " +
                            std::to_string((int64_t)cfg_.kv_budget) +
                            " bytes (--kv-budget); lower max_tokens or the prompt");
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_) throw ApiError(503, "the server is shutting down", "server_error");
    if ((int)queue_.size() >= cfg_.max_queue)
      throw ApiError(503, "the queue is full (" + std::to_string(cfg_.max_queue) +
                              " requests waiting); retry later", "server_error");
    s->need_ = need;
    queue_.push_back(s);
    stats_.queued = (int64_t)queue_.size();
  }
  wake_.notify_all();
}

// Before the sequence's last event: a client that has its answer sees the bytes freed (or, kept,
// moved from its reservation to the prompt cache's).
void Scheduler::release(Sequence& s, bool keep) {
  const double held = s.cache_ ? (double)s.cache_->bytes() : 0.0;  // as the last step counted it
  std::unique_ptr<KvCache> cache = std::move(s.cache_);             // freed after the lock
  std::vector<int32_t> tokens;
  keep = keep && cache && caches_prompt(s);
  if (keep) {
    tokens.reserve(s.prompt.size() + s.ran_.size());
    tokens.insert(tokens.end(), s.prompt.begin(), s.prompt.end());
    tokens.insert(tokens.end(), s.ran_.begin(), s.ran_.end());
    keep = (int64_t)tokens.size() == cache->n_tokens();
  }
  std::vector<float>().swap(s.logits_);
  std::vector<int32_t>().swap(s.ran_);
  std::lock_guard<std::mutex> lk(mu_);
  stats_.kv_bytes_reserved -= s.reserved_;
  stats_.kv_bytes_held = std::max(0.0, stats_.kv_bytes_held - held);
  s.reserved_ = 0;
  if (keep) {
    const double before = kept_.bytes();
    kept_.put(std::move(cache), std::move(tokens));  // may drop the oldest entry
    stats_.kv_bytes_reserved += kept_.bytes() - before;
    stats_.kv_bytes_held += kept_.bytes() - before;
  }
}

bool Scheduler::admit_front(std::vector<std::shared_ptr<Sequence>>& admitted) {
  if (queue_.empty() || (int64_t)(active_.size() + admitted.size()) >= cfg_.max_sequences) return false;
  Sequence& s = *queue_.front();
  const int64_t n = (int64_t)s.prompt.size() + s.max_tokens;
  const PromptCache::Match m = s.cache_prompt ? kept_.best(s.prompt, n) : PromptCache::Match{};
  // The pool's bytes are reserved: m's become s's reservation, the others may be dropped for it.
  const double without_pool = stats_.kv_bytes_reserved - kept_.bytes();
  if (without_pool + s.need_ > cfg_.kv_budget) return false;
  while (stats_.kv_bytes_reserved - m.bytes + s.need_ > cfg_.kv_budget) {
    const double b = kept_.drop_oldest(&m);
    if (b <= 0) break;
    stats_.kv_bytes_reserved -= b;
    stats_.kv_bytes_held = std::max(0.0, stats_.kv_bytes_held - b);
  }
  if (m.entry) {
    s.taken_ = kept_.take(m);
    stats_.kv_bytes_reserved -= m.bytes;
    stats_.kv_bytes_held = std::max(0.0, stats_.kv_bytes_held - m.bytes);
  }
  s.reserved_ = s.need_;
  stats_.kv_bytes_reserved += s.need_;
  admitted.push_back(std::move(queue_.front()));
  queue_.pop_front();
  return true;
}

void Scheduler::finish(Sequence& s, const std::string& reason, const std::string& error) {
  s.text_.finish();
  SequenceEvent e;
  e.text = s.text_.take_ready();
  e.done = true;
  e.finish_reason = error.empty() ? reason : "";
  e.error = error;
  e.usage = {(int64_t)s.prompt.size(), s.generated_, s.cached_};
  release(s, error.empty());
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++(error.empty() ? stats_.finished : stats_.failed);
  }
  s.emit(std::move(e));
}

bool Scheduler::step() {
  const int32_t nv = model_.config().n_vocab;
  std::vector<std::shared_ptr<Sequence>> admitted;
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto it = queue_.begin(); it != queue_.end();) {
      if ((*it)->cancelled()) {
        ++stats_.cancelled;
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    while (admit_front(admitted)) {
    }
    stats_.queued = (int64_t)queue_.size();
  }
  for (auto& s : admitted) {  // their prompts run in the batches from this step on
    try {
      const int64_t n = (int64_t)s->prompt.size() + s->max_tokens;
      if (std::unique_ptr<KvCache> c = std::move(s->taken_.cache)) {
        try {
          c->truncate(s->taken_.reuse);
          s->cache_ = std::move(c);
          s->cached_ = s->prefilled_ = s->taken_.reuse;
          s->pos_ = (int32_t)s->taken_.reuse;
        } catch (const Error&) {
          // the cache cannot rewind that far (h1b's window, KIVI's residual): a fresh one
        }
        std::lock_guard<std::mutex> lk(mu_);
        stats_.prompt_cache_hits += s->cached_ > 0;
        stats_.prompt_tokens_cached += s->cached_;
      }
      if (!s->cache_)
        s->cache_ = make_cache(cfg_.cache, model_.cache_geometry(caches_for_ctx_ ? cfg_.n_ctx : n), cfg_.calib);
      s->logits_.assign(nv, 0.0f);
      active_.push_back(s);
    } catch (const std::exception& e) {
      finish(*s, "", e.what());
    }
  }
  if (active_.empty()) return !admitted.empty();

  // Sample every sequence whose prompt has run; those that go on are the decode rows. The
  // sequences still prefilling stay, in admission order.
  std::vector<std::shared_ptr<Sequence>> rows, prefilling, kept;
  rows_tok_.clear();
  for (auto& s : active_) {
    if (s->cancelled()) {
      release(*s);
      std::lock_guard<std::mutex> lk(mu_);
      ++stats_.cancelled;
      continue;
    }
    if (s->prefilled_ < (int64_t)s->prompt.size()) {
      prefilling.push_back(s);
      kept.push_back(s);
      continue;
    }
    const int32_t t = s->sampler_.sample(s->logits_.data(), nv);
    if (tok_.is_eog(t)) {
      finish(*s, "stop", "");
      continue;
    }
    ++s->generated_;
    {  // counted before finish() below, so stats never show a sequence finished without its last token
      std::lock_guard<std::mutex> lk(mu_);
      ++stats_.generated_tokens;
    }
    if (s->text_.add(tok_.token_to_piece(t))) {
      finish(*s, "stop", "");
      continue;
    }
    if (s->generated_ >= s->max_tokens) {
      finish(*s, "length", "");
      continue;
    }
    if (std::string ready = s->text_.take_ready(); !ready.empty()) {
      SequenceEvent e;
      e.text = std::move(ready);
      s->emit(std::move(e));
    }
    rows.push_back(s);
    kept.push_back(s);
    rows_tok_.push_back(t);
    if (caches_prompt(*s)) s->ran_.push_back(t);
  }
  active_ = std::move(kept);

  // The batch: the decode rows, then prompt chunks while the step's prompt-token budget lasts.
  spans_.clear();
  for (size_t i = 0; i < rows.size(); ++i)
    spans_.push_back({&rows_tok_[i], 1, rows[i]->pos_, rows[i]->cache_.get()});
  int64_t budget = cfg_.prefill_chunk;
  std::vector<std::shared_ptr<Sequence>> chunked;
  for (auto& s : prefilling) {
    const int64_t left = (int64_t)s->prompt.size() - s->prefilled_;
    const int64_t take = cfg_.prefill_chunk > 0 ? std::min(budget, left) : left;
    spans_.push_back({s->prompt.data() + s->prefilled_, take, (int32_t)s->prefilled_, s->cache_.get()});
    chunked.push_back(s);
    budget -= take;
    if (budget <= 0) break;  // prefill_chunk 0: one whole prompt per step
  }

  double seconds = 0;
  int64_t prompt_run = 0;
  if (!spans_.empty()) {
    const int64_t ns = (int64_t)spans_.size(), nr = (int64_t)rows.size();
    rows_logits_.resize((size_t)ns * nv);
    Timer t;
    bool ok = true;
    try {
      model_.forward_batch(spans_.data(), ns, rows_logits_.data());
    } catch (const std::exception& e) {
      ok = false;
      for (auto& s : rows) finish(*s, "", e.what());
      for (auto& s : chunked) finish(*s, "", e.what());
      std::erase_if(active_, [](const auto& s) { return !s->cache_; });
    }
    seconds = t.seconds();
    // a chunk's exact copies (h1b's window, kivi's residual) go back to what the formula counts
    for (int64_t i = 0; ok && i < ns; ++i) spans_[i].cache->settle();
    for (int64_t i = 0; ok && i < ns; ++i) {
      const float* l = rows_logits_.data() + i * nv;
      if (i < nr) {
        std::memcpy(rows[i]->logits_.data(), l, sizeof(float) * nv);
        ++rows[i]->pos_;
        continue;
      }
      Sequence& s = *chunked[i - nr];
      s.prefilled_ += spans_[i].n;
      s.pos_ = (int32_t)s.prefilled_;
      prompt_run += spans_[i].n;
      if (s.prefilled_ == (int64_t)s.prompt.size()) std::memcpy(s.logits_.data(), l, sizeof(float) * nv);
    }
    if (!ok) rows.clear(), chunked.clear();
  }
  double held = 0;
  int64_t still_prefilling = 0;
  for (auto& s : active_) {
    held += (double)s->cache_->bytes();
    still_prefilling += s->prefilled_ < (int64_t)s->prompt.size();
  }
  std::lock_guard<std::mutex> lk(mu_);
  held += kept_.bytes();
  stats_.prompt_tokens += prompt_run;
  stats_.active = (int64_t)active_.size();
  stats_.prefilling = still_prefilling;
  stats_.most_active = std::max(stats_.most_active, stats_.active);
  stats_.kv_bytes_held = held;
  stats_.step_seconds += seconds;
  if (!rows.empty() && seconds > 0) {
    stats_.step_tokens_per_s = (double)rows.size() / seconds;
    if (chunked.empty()) {
      stats_.decode_seconds += seconds;
      stats_.decode_tokens += (int64_t)rows.size();
    }
  }
  return true;
}

void Scheduler::start() {
  check(!thread_.joinable(), "scheduler: already started");
  const int team = omp_get_max_threads();  // -t, as set on the calling thread
  thread_ = std::thread([this, team] {
    omp_set_num_threads(team);
    for (;;) {
      {
        std::lock_guard<std::mutex> lk(mu_);
        if (stopping_) return;
      }
      if (step()) continue;
      std::unique_lock<std::mutex> lk(mu_);
      wake_.wait_for(lk, std::chrono::milliseconds(50), [&] { return stopping_ || !queue_.empty(); });
    }
  });
}

void Scheduler::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::deque<std::shared_ptr<Sequence>> waiting;
  {
    std::lock_guard<std::mutex> lk(mu_);
    waiting.swap(queue_);
    stats_.queued = 0;
  }
  for (auto& s : waiting) finish(*s, "", "the server is shutting down");
  for (auto& s : active_) finish(*s, "", "the server is shutting down");
  active_.clear();
  std::lock_guard<std::mutex> lk(mu_);
  kept_.clear();
  stats_.active = 0;
  stats_.kv_bytes_held = 0;
  stats_.kv_bytes_reserved = 0;
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  SchedulerStats s = stats_;
  s.prompt_cache_entries = (int64_t)kept_.size();
  s.prompt_cache_bytes = kept_.bytes();
  return s;
}

}  // namespace h1bkv
