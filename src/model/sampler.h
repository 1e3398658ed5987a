// Token sampling: greedy at temp <= 0, else temperature, top-k and top-p (nucleus) in that order,
// as llama.cpp's default chain does; randomness from std::mt19937_64 seeded by --seed.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace h1bkv {

struct SamplerParams {
  float temp = 0.8f;
  int top_k = 40;     // 0 = off
  float top_p = 0.95f;  // 1 = off
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& p);
  // logits: [n_vocab]
  int32_t sample(const float* logits, int32_t n_vocab);

 private:
  SamplerParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;
};

int32_t argmax(const float* logits, int32_t n);

}  // namespace h1bkv
