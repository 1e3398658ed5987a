// Causal softmax attention with GQA over one sequence (query i sees tokens t <= i), where keys
// outside the exact tiers are h1b sketches (kv/caches/h1b.h, kv/codecs/sketch.h), forward and
// backward. A token t is exact for query i when t < sink or pos_t > pos_i - window (the tiered
// cache's rule); bits = 0 makes every token exact (plain attention). For KV head g, head h:
//   y_t = R_g (k_t - mu_g), s_t = sign(y_t) (or tanh(beta y_t)), |k_t - mu_g| kept
//   exact       z = scale q.k
//   qjl         z = mult_h / T * scale * |k_t - mu_g| * <A_g q, s_t> + scale q.mu_g
//   hamming     z = mult_h / T * <sign(A_g q), s_t> / b
//   exact_keys  z = scale q.rt(k_t), rt = the f16 or q4_0 round trip (no sketch, mult or T)
//   out = v_scale_h * sum_t softmax(z)_t val_t + v_bias_h, val_t = v_t exact, int4(v_t) else
// These are the h1b cache's formulas with an adapter's tensors (kv/codecs/sketch.h,
// kv/calib/adapter.h): A in the cache's convention (the uncalibrated cache has A = sqrt(pi/2)/b R),
// mu = 0 adds nothing. With mu = 0, A as above, mult = 1, v_scale = 1, v_bias = 0 (and T = 1 for
// qjl) this is what the uncalibrated h1b cache attends; with R = sketch_projection (orth) and an
// adapter's tensors, what that cache attends. sign's backward is a straight-through estimator, by default with the slope
// of E[sign(y)] for Gaussian rows: d sign(y_i)/dy_i ~ sqrt(2/pi) / rms(y) (rms over the b entries
// of that key's or query's projection); tanh's is its derivative; int4 rounding is
// straight-through for v, the exact_keys round trip for k.
#pragma once
#include <cstdint>
#include <vector>

#include "kv/codecs/sketch.h"

namespace h1bkv::train {

struct AttentionConfig {
  int n_head = 0, n_kv_head = 0, head_dim = 0;
  float scale = 0;  // 1 / sqrt(head_dim)
  int bits = 0;     // sketch bits; 0 = all tokens exact
  SketchEst est = SketchEst::qjl;
  int64_t sink = 0, window = 0;
  float beta = 0;               // 0: sign + straight-through; > 0: tanh(beta y) relaxation
  enum class Ste { none, scaled, identity } ste = Ste::scaled;  // sign's backward slope (beta = 0)
  bool quantize_values = true;  // int4 round trip of compressed tokens' values
  int value_group = 0;          // int4 group (0 = whole head)
  // h1b's exact_layers: this layer's compressed keys are an f16 or q4_0 round trip, not a sketch
  enum class ExactKeys { none, f16, q4 } exact_keys = ExactKeys::none;
};

// The trainable tensors of one layer, named as the adapter file (kv/calib/adapter.h) names them.
template <class T>
struct AttentionTensors {
  T* temperature = nullptr;  // [1]
  T* logit_mult = nullptr;   // [n_head]
  T* v_scale = nullptr;      // [n_head][hd]
  T* v_bias = nullptr;       // [n_head][hd]
  T* k_mean = nullptr;       // [n_kv][hd] mu
  T* k_proj = nullptr;       // [n_kv][b][hd] R
  T* q_proj = nullptr;       // [n_kv][b][hd] A (query decoder)
};

template <class T>
class SketchAttention {
 public:
  explicit SketchAttention(const AttentionConfig& c) : c_(c) {}
  const AttentionConfig& config() const { return c_; }
  // q: [n][n_head][hd], k, v: [n][n_kv][hd] post-RoPE; pos: [n] increasing; out: [n][n_head][hd].
  // Keeps what backward needs (O(n^2 n_head) probabilities).
  void forward(const AttentionTensors<T>& p, int64_t n, const int32_t* pos, const T* q, const T* k,
               const T* v, T* out);
  // Adds the gradients of the last forward's inputs (dq, dk, dv) and of the tensors (grad).
  void backward(const AttentionTensors<T>& p, const AttentionTensors<T>& grad, const T* dout, T* dq,
                T* dk, T* dv) const;

 private:
  bool exact(int64_t i, int64_t t) const {
    return c_.bits == 0 || t < c_.sink || pos_[t] > pos_[i] - c_.window;
  }
  AttentionConfig c_;
  int64_t n_ = 0;
  std::vector<int32_t> pos_;
  bool sketched() const { return c_.bits > 0 && c_.exact_keys == AttentionConfig::ExactKeys::none; }
  std::vector<T> q_, k_, v_, vq_;  // inputs; vq: values as the compressed tier returns them
  std::vector<T> kq_;              // exact_keys: keys as the compressed tier returns them
  std::vector<T> qmu_;             // [n][n_head] scale q.mu (qjl)
  std::vector<T> km_, nrm_, y_, s_;  // [n][n_kv][hd], [n][n_kv], [n][n_kv][b] x2
  std::vector<T> aq_, sq_;           // [n][n_head][b]: A q and its sign (hamming)
  std::vector<T> yrms_, aqrms_;      // [n][n_kv], [n][n_head]: rms of y and of A q
  std::vector<T> prob_, opre_;       // [n_head][n][n], [n][n_head][hd] before the value affine
};

}  // namespace h1bkv::train
