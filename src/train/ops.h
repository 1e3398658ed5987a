// Row operations of the forward pass, each forward next to its backward (llm.c style), templated
// on the scalar so the tests can check every backward against finite differences in double.
// Backwards accumulate (+=) into their input gradients. Norm weights are frozen: no dw.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace h1bkv::train {

// y = x / sqrt(mean(x^2) + eps) * w, one row of n (tensor/ops.h's rmsnorm).
template <class T>
void rmsnorm_forward(const T* x, const float* w, T* y, int64_t n, float eps) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += (double)x[i] * x[i];
  const T r = (T)(1.0 / std::sqrt(ss / n + eps));
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * r * (T)w[i];
}
// dx_i += r w_i dy_i - x_i r^3 / n * sum_j dy_j w_j x_j
template <class T>
void rmsnorm_backward(const T* x, const float* w, const T* dy, T* dx, int64_t n, float eps) {
  double ss = 0, dot = 0;
  for (int64_t i = 0; i < n; ++i) ss += (double)x[i] * x[i], dot += (double)dy[i] * w[i] * x[i];
  const double r = 1.0 / std::sqrt(ss / n + eps), c = dot * r * r * r / n;
  for (int64_t i = 0; i < n; ++i) dx[i] += (T)(r * w[i] * dy[i] - x[i] * c);
}

// Rotary embedding of one vector [n_head][head_dim] at position pos, in place (tensor/ops.h's
// rope): neox=false rotates pairs (2i, 2i+1) (llama GGUF), neox=true pairs (i, i + n_rot/2)
// (qwen2). backward = true applies the transposed (inverse) rotation: the gradient's map.
template <class T>
void rope_apply(T* x, int n_head, int head_dim, int n_rot, int32_t pos, float base, bool neox,
                bool backward) {
  const int half = n_rot / 2;
  for (int i = 0; i < half; ++i) {
    const double theta = (double)pos * std::pow((double)base, -2.0 * i / n_rot);
    const T c = (T)(float)std::cos(theta), s = (T)(float)std::sin(theta) * (backward ? -1 : 1);
    const int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
    for (int h = 0; h < n_head; ++h) {
      T* v = x + (int64_t)h * head_dim;
      const T x0 = v[a], x1 = v[b];
      v[a] = x0 * c - x1 * s;
      v[b] = x0 * s + x1 * c;
    }
  }
}

// a = silu(g) u, silu(g) = g sigmoid(g)
template <class T>
void swiglu_forward(const T* g, const T* u, T* a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
}
// silu'(g) = sig (1 + g (1 - sig))
template <class T>
void swiglu_backward(const T* g, const T* u, const T* da, T* dg, T* du, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T sig = 1 / (1 + std::exp(-g[i]));
    dg[i] += da[i] * u[i] * sig * (1 + g[i] * (1 - sig));
    du[i] += da[i] * g[i] * sig;
  }
}

// p = softmax(z) over n, in double for the sums.
template <class T>
void softmax_row(const T* z, T* p, int64_t n) {
  T mx = z[0];
  for (int64_t i = 1; i < n; ++i) mx = z[i] > mx ? z[i] : mx;
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += (double)(p[i] = std::exp(z[i] - mx));
  for (int64_t i = 0; i < n; ++i) p[i] = (T)(p[i] / s);
}

// KL(p_t || softmax(z)) of one row, p_t = softmax(teacher) (fixed); adds weight * dKL/dz =
// weight * (softmax(z) - p_t) to dz when dz is not null. Returns the KL. p, pt: [n] scratch.
template <class T>
double kl_row(const float* teacher, const T* z, T* dz, T weight, int64_t n, T* p, T* pt) {
  softmax_row(z, p, n);
  for (int64_t i = 0; i < n; ++i) pt[i] = (T)teacher[i];
  softmax_row(pt, pt, n);
  double kl = 0;
  for (int64_t i = 0; i < n; ++i)
    if (pt[i] > 0) kl += (double)pt[i] * (std::log((double)pt[i]) - std::log(std::max((double)p[i], 1e-300)));
  if (dz)
    for (int64_t i = 0; i < n; ++i) dz[i] += weight * (p[i] - pt[i]);
  return kl;
}

// -log softmax(z)[target] of one row; adds weight * (softmax(z) - onehot) to dz when not null.
template <class T>
double cross_entropy_row(const T* z, int32_t target, T* dz, T weight, int64_t n, T* p) {
  softmax_row(z, p, n);
  if (dz) {
    for (int64_t i = 0; i < n; ++i) dz[i] += weight * p[i];
    dz[target] -= weight;
  }
  return -std::log(std::max((double)p[target], 1e-300));
}

}  // namespace h1bkv::train
