#include "serve/sequence.h"

namespace h1bkv {

Sequence::Sequence(std::vector<int32_t> prompt_ids, int64_t max_new, const SamplerParams& sampling,
                   std::vector<std::string> stop)
    : prompt(std::move(prompt_ids)), max_tokens(max_new), sampler_(sampling), text_(std::move(stop)) {}

bool Sequence::next(SequenceEvent& e, std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> lk(mu_);
  if (!cv_.wait_for(lk, wait, [&] { return !events_.empty(); })) return false;
  e = std::move(events_.front());
  events_.pop_front();
  return true;
}

void Sequence::emit(SequenceEvent e) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

}  // namespace h1bkv
