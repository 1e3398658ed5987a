#include "serve/prompt_cache.h"

#include <algorithm>

#include "util/error.h"

namespace h1bkv {

void PromptCache::put(std::unique_ptr<KvCache> cache, std::vector<int32_t> tokens) {
  check(cache && cache->n_tokens() == (int64_t)tokens.size(), "prompt cache: the tokens are not the cache's");
  if (max_ <= 0 || tokens.empty()) return;
  while ((int)entries_.size() >= max_) drop_oldest();
  Entry e;
  e.bytes = (double)cache->bytes();
  e.cache = std::move(cache);
  e.tokens = std::move(tokens);
  bytes_ += e.bytes;
  entries_.push_back(std::move(e));
}

PromptCache::Match PromptCache::best(const std::vector<int32_t>& prompt, int64_t n) const {
  Match m;
  const int64_t most = (int64_t)prompt.size() - 1;
  for (const Entry& e : entries_) {
    if (e.cache->n_ctx() < n) continue;
    const int64_t k = std::min<int64_t>(most, (int64_t)e.tokens.size());
    if (k <= 0) continue;
    const int64_t len = std::mismatch(prompt.begin(), prompt.begin() + k, e.tokens.begin()).first - prompt.begin();
    if (len > m.reuse) m = {&e, len, e.bytes};
  }
  return m;
}

PromptCache::Taken PromptCache::take(const Match& m) {
  Taken t;
  auto it = std::find_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return &e == m.entry; });
  check(it != entries_.end(), "prompt cache: the entry to take is gone");
  t.cache = std::move(it->cache);
  t.reuse = m.reuse;
  bytes_ -= it->bytes;
  entries_.erase(it);
  if (entries_.empty()) bytes_ = 0;  // no rounding left behind
  return t;
}

double PromptCache::drop_oldest(const Match* except) {
  auto it = entries_.begin();
  if (except && it != entries_.end() && &*it == except->entry) ++it;
  if (it == entries_.end()) return 0;
  const double b = it->bytes;
  entries_.erase(it);
  bytes_ = entries_.empty() ? 0 : bytes_ - b;
  return b;
}

}  // namespace h1bkv
