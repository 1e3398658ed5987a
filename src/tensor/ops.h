// Elementwise and row operations of the forward pass (f32). Not bandwidth-critical; written as
// plain loops the compiler vectorises.
#pragma once
#include <cstdint>

namespace h1bkv {

// out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i], for one row of n values.
void rmsnorm(const float* x, const float* w, float* out, int64_t n, float eps);

// Rotary embedding of one vector of n_head heads: x [n_head][head_dim], in place, at position pos.
// The first n_rot dims of each head rotate; theta_i = pos * base^(-2i/n_rot).
// neox=false: pairs (x[2i], x[2i+1]) (llama GGUF files, whose Q/K weights the converter permuted);
// neox=true: pairs (x[i], x[i + n_rot/2]) (qwen2).
void rope(float* x, int n_head, int head_dim, int n_rot, int32_t pos, float base, bool neox);

// gate[i] = silu(gate[i]) * up[i]
void swiglu(float* gate, const float* up, int64_t n);

// In place softmax over n values; returns nothing. Subtracts the max for stability.
void softmax(float* x, int64_t n);

// out[i] += x[i]
void add_inplace(float* out, const float* x, int64_t n);

}  // namespace h1bkv
