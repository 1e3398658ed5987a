// One buffer holding every trainable tensor contiguously, its gradient beside it (same layout),
// AdamW (Loshchilov & Hutter 2019, decoupled weight decay), gradient-norm clipping and a cosine
// learning-rate schedule with linear warmup.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace h1bkv::train {

struct ParamTensor {
  std::string name;            // adapter name, e.g. "blk.3.logit_mult"
  std::vector<int64_t> shape;  // row-major, outermost first
  size_t offset = 0, size = 0;
  bool trainable = true;       // frozen tensors keep their value; their gradient is ignored
  float lr_scale = 1.0f;       // AdamW's step for this tensor: lr x lr_scale
};

class ParamBuffer {
 public:
  // Appends a tensor filled with `init`; returns its index. Throws Error on a repeated name.
  size_t add(const std::string& name, std::vector<int64_t> shape, float init, bool trainable);
  const std::vector<ParamTensor>& tensors() const { return tensors_; }
  const ParamTensor* find(const std::string& name) const;  // nullptr when absent
  void set_lr_scale(size_t i, float s) { tensors_[i].lr_scale = s; }
  float* value(size_t i) { return value_.data() + tensors_[i].offset; }
  float* grad(size_t i) { return grad_.data() + tensors_[i].offset; }
  std::vector<float>& values() { return value_; }
  const std::vector<float>& values() const { return value_; }
  std::vector<float>& grads() { return grad_; }
  void zero_grad();
  // L2 norm of the trainable tensors' gradient.
  double grad_norm() const;
  size_t n_trainable() const;

 private:
  std::vector<ParamTensor> tensors_;
  std::vector<float> value_, grad_;
};

struct AdamWOptions {
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
};

class AdamW {
 public:
  explicit AdamW(AdamWOptions o = {}) : o_(o) {}
  // One update of the trainable tensors with learning rate lr (x each tensor's lr_scale):
  //   m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, t += 1
  //   x -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) + lr wd x
  void step(ParamBuffer& p, float lr);
  int64_t t() const { return t_; }
  // State for checkpoints.
  std::vector<float>& m() { return m_; }
  std::vector<float>& v() { return v_; }
  const std::vector<float>& m() const { return m_; }
  const std::vector<float>& v() const { return v_; }
  void set_t(int64_t t) { t_ = t; }

 private:
  AdamWOptions o_;
  std::vector<float> m_, v_;
  int64_t t_ = 0;
};

// Scales the trainable gradient to norm max_norm when it is larger; returns the norm before.
double clip_grad_norm(ParamBuffer& p, double max_norm);

// lr at step s of `total` (0-based): lr_max (s + 1) / warmup during warmup, then a cosine from
// lr_max down to lr_min at s = total - 1.
float cosine_lr(int64_t s, int64_t total, int64_t warmup, float lr_max, float lr_min);

}  // namespace h1bkv::train
