// Central finite differences in double: the relative error of an analytic gradient g of
// loss() over the entries of x, ||g - fd|| / max(||g||, ||fd||, 1e-30), with step h.
#pragma once
#include <cmath>
#include <functional>
#include <random>
#include <vector>

inline double fd_rel_error(const std::function<double()>& loss, double* x, const double* g, size_t n,
                           double h = 1e-5) {
  double num = 0, ng = 0, nf = 0;
  for (size_t i = 0; i < n; ++i) {
    const double x0 = x[i];
    x[i] = x0 + h;
    const double lp = loss();
    x[i] = x0 - h;
    const double lm = loss();
    x[i] = x0;
    const double fd = (lp - lm) / (2 * h);
    num += (g[i] - fd) * (g[i] - fd), ng += g[i] * g[i], nf += fd * fd;
  }
  return std::sqrt(num) / std::max({std::sqrt(ng), std::sqrt(nf), 1e-30});
}

inline std::vector<double> randn_d(size_t n, uint32_t seed, double sd = 1.0) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd(0.0, sd);
  std::vector<double> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

inline double dotv(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}
