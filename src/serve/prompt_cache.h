// Caches of finished sequences, kept for their tokens (llama-server's `cache_prompt`): a request
// whose prompt starts with what a kept cache holds (the next turn of a conversation, a shared
// system prompt) takes that cache, rewound to the common prefix, and runs only the rest of its
// prompt. Entries are least-recently-used first out; their bytes count against the scheduler's
// KV budget, which drops them when an admission needs the room.
#pragma once
#include <cstdint>
#include <list>
#include <memory>
#include <vector>

#include "kv/cache.h"

namespace h1bkv {

class PromptCache {
 public:
  explicit PromptCache(int max_entries) : max_(max_entries) {}

  struct Match {
    const void* entry = nullptr;  // null: no entry matches
    int64_t reuse = 0;            // prompt tokens the entry holds: rewind it to this many
    double bytes = 0;             // what the entry holds
  };
  struct Taken {
    std::unique_ptr<KvCache> cache;  // still holding every token it was kept with
    int64_t reuse = 0;
  };

  // Keeps cache, which holds tokens (cache->n_tokens() == tokens.size()); with max_entries
  // entries already, the oldest goes first. Nothing is kept when max_entries is 0.
  void put(std::unique_ptr<KvCache> cache, std::vector<int32_t> tokens);
  // The entry sharing the longest common prefix with prompt, of at least one token, among those
  // whose context holds n tokens; reuse is that prefix, at most prompt.size() - 1 (the last
  // prompt token runs again for its logits). Ties: the older entry.
  Match best(const std::vector<int32_t>& prompt, int64_t n) const;
  // Takes m's entry (m from best(), no entry dropped since) out of the pool.
  Taken take(const Match& m);
  // Drops the least recently used entry other than except's; returns its bytes (0: none left).
  double drop_oldest(const Match* except = nullptr);
  void clear() { entries_.clear(), bytes_ = 0; }

  size_t size() const { return entries_.size(); }
  double bytes() const { return bytes_; }  // held by every entry now

 private:
  struct Entry {
    std::unique_ptr<KvCache> cache;
    std::vector<int32_t> tokens;  // [cache->n_tokens()] what it holds
    double bytes = 0;
  };
  int max_;
  std::list<Entry> entries_;  // oldest first
  double bytes_ = 0;
};

}  // namespace h1bkv
