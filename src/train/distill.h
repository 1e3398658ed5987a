// Self-distillation of the h1b cache (the paper's "lightweight finetuning", issue 10 stage 2):
// the student is the model whose attention beyond the exact sinks/window runs on h1b sketches
// (train/attention.h), the teacher the same model with an f16 cache; the loss is the mean over
// tokens of KL(p_teacher || p_student) of the next-token distributions. Model weights are frozen;
// the trainable tensors are named as the adapter file names them (kv/calib/adapter.h):
//   temperature [1]                    global T (hamming: the cache's T; qjl: a divisor, init 1)
//   blk.L.logit_mult [n_head]          per-head multiplier on compressed-key logits
//   blk.L.v_scale, blk.L.v_bias [n_head][hd]  affine map of each head's attention output
//   blk.L.k_mean [n_kv][hd]            mu: keys are sketched as sign(R (k - mu))
//   blk.L.k_proj [n_kv][b][hd]         R (proj=layer: the layer's matrix repeated per KV head)
//   blk.L.q_proj [n_kv][b][hd]         A, the query decoder (qjl: init sqrt(pi/2)/b R, the cache's;
//                                      its lr_scale is that factor, so Adam moves A as much as R)
// R starts as the cache's (sketch_projection: seeded, orth blocks); an adapter (DistillOptions::init,
// stage 0/1: centering, ITQ, ridge) replaces what it holds, so the student starts as that cache.
// Exact-key layers (exact_layers, exact) attend with f16/q4_0 round-trip keys (their sketch tensors unused).
// LoRA (lora_rank > 0, or the initial adapter's): blk.L.attn_q.lora_a [r][n_embd] (init N(0, 1/n_embd),
// seeded), blk.L.attn_q.lora_b [n_head*hd][r] (init 0), attn_k likewise with [n_kv*hd][r]:
// q = Wq x + B (A x) (model/lora.h), through the hook's project_qk; trainable with lora_rank > 0.
// The student's activations come from Model::forward through its ForwardHook; the backward runs
// through the frozen (quantized) weights with train/ops.h and train/matmul_frozen.h.
// Memory per sequence of n tokens: per layer 2 n_embd + 2 n_ff + q/k/v/out floats per token, plus
// n_head n^2 attention probabilities per layer; three [n][n_vocab] logit buffers.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "kv/calib/adapter.h"
#include "kv/caches/h1b.h"
#include "model/model.h"
#include "train/attention.h"
#include "train/params.h"

namespace h1bkv::train {

struct DistillOptions {
  bool train_temperature = true;
  bool train_value_affine = false;
  bool train_logit_mult = false;
  bool train_sketch = false;  // mu, R and A
  float beta = 0;             // 0: sign + straight-through; > 0: tanh(beta y)
  AttentionConfig::Ste ste = AttentionConfig::Ste::scaled;
  bool quantize_values = true;  // int4 values as the cache (off: a smooth loss, for gradient tests)
  int lora_rank = 0;             // > 0: train LoRA of this rank on Wq and Wk
  const Adapter* init = nullptr;  // initial tensors (checked against the spec; needed by center/itq/ridge)
  std::string init_path;          // init's file, for messages
};

class Distiller : public ForwardHook {
 public:
  // spec: an h1b cache specification (h1b_options); throws Error for another type.
  Distiller(Model& model, const CacheSpec& spec, const DistillOptions& o);
  ~Distiller() override;
  ParamBuffer& params() { return params_; }
  Model& model() { return model_; }
  const std::string& spec() const { return spec_; }
  // Teacher logits [n][n_vocab] of tokens [n] from position 0 (f16 cache).
  void teacher_logits(const int32_t* tokens, int64_t n, float* logits);
  // Mean KL over the n positions; with grad_weight != 0 adds grad_weight x its gradient to the
  // parameter gradients.
  double step(const int32_t* tokens, int64_t n, const float* teacher, float grad_weight);
  // The student's logits [n][n_vocab] of tokens [n] from position 0 (no gradient).
  void student_logits(const int32_t* tokens, int64_t n, float* logits);
  // Whether tensor i (params() index) was set from the initial adapter.
  bool from_adapter(size_t i) const { return i < from_adapter_.size() && from_adapter_[i]; }
  bool exact_key_layer(int il) const { return h1b_exact_key_layer(h1b_, il); }

  void record(int il, Stage s, const float* x, int64_t n, int64_t cols) override;
  bool attend(int il, int64_t n, const int32_t* pos, const float* q, const float* k, const float* v,
              float scale, float* out) override;
  void project_qk(int il, int64_t n, const float* xb, float* q, float* k) override;
  int lora_rank() const { return lora_rank_; }

 private:
  AttentionTensors<float> tensors(int il, bool grad);
  void backward(int64_t n, std::vector<float>& dlogits);
  // LoRA's gradients from dq, dk (before RoPE) of layer il; adds A^T B^T dq (and dk) to dxb
  void lora_backward(int il, int64_t n, const float* dq, const float* dk, float* dxb);

  Model& model_;
  std::string spec_;
  H1bOptions h1b_;
  DistillOptions o_;
  ParamBuffer params_;
  size_t temperature_;
  std::vector<size_t> first_;  // index of blk.L's first tensor (logit_mult, v_scale, v_bias, k_mean, k_proj, q_proj)
  std::vector<SketchAttention<float>> att_;
  std::vector<std::vector<float>> x_in_, x_mid_, gate_, up_;  // recorded, [n_layer][n * cols]
  std::vector<float> x_out_, logits_;
  std::vector<bool> from_adapter_;  // per tensor
  int lora_rank_ = 0;
  std::vector<size_t> lora_first_;                   // [n_layer]: attn_q.lora_a, attn_q.lora_b, attn_k.lora_a, attn_k.lora_b
  std::vector<std::vector<float>> xb_, uq_, uk_;      // recorded: normed input [n][n_embd], A x [n][r]
};

}  // namespace h1bkv::train
