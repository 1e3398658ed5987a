// LoRA (Hu et al. 2021) on the query and key projections, from an adapter file
// (kv/calib/adapter.h: blk.L.attn_q.lora_a [r][n_embd], blk.L.attn_q.lora_b [n_head*hd][r], the
// same for attn_k with [n_kv*hd][r]): q = Wq x + B_q (A_q x), k = Wk x + B_k (A_k x), x the normed
// layer input, before biases and RoPE. Applied through Model's ForwardHook (the model knows
// nothing of caches or adapters): set_forward_hook(&hook) while the model runs.
#pragma once
#include <string>
#include <vector>

#include "kv/calib/adapter.h"
#include "model/model.h"

namespace h1bkv {

// y[n][out] += B[out][r] (A[r][in] x[n][in]) row by row; u: [r] scratch per row (A x kept in
// ax[n][r] when ax != nullptr).
void lora_add(const float* A, const float* B, int r, int in, int out, const float* x, int64_t n, float* y,
              float* ax = nullptr);

// Whether a has a LoRA tensor on any layer.
bool adapter_has_lora(const Adapter& a);

class LoraHook : public ForwardHook {
 public:
  // Checks the shapes against c (rank 1..64, both halves of a pair present); throws Error "PATH: ...".
  LoraHook(const ModelConfig& c, const Adapter& a, const std::string& path);
  void record(int, Stage, const float*, int64_t, int64_t) override {}
  bool attend(int, int64_t, const int32_t*, const float*, const float*, const float*, float, float*) override {
    return false;
  }
  void project_qk(int il, int64_t n, const float* xb, float* q, float* k) override;

 private:
  ModelConfig c_;
  struct Pair {
    int r = 0;  // 0: none
    std::vector<float> a, b;
  };
  std::vector<Pair> q_, k_;  // [n_layer]
};

}  // namespace h1bkv
