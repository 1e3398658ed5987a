#include "kv/calib/sym_eigen.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "util/error.h"

namespace h1bkv {

SymEigen symmetric_eigen(std::vector<double> a, int n) {
  check(n >= 1 && a.size() == (size_t)n * n, "symmetric_eigen: matrix is not n x n");
  for (double x : a) check(std::isfinite(x), "symmetric_eigen: non-finite matrix entry");
  for (int p = 0; p < n; ++p)  // exact symmetry: mirror the upper triangle
    for (int q = p + 1; q < n; ++q) a[(size_t)q * n + p] = a[(size_t)p * n + q];
  std::vector<double> v((size_t)n * n, 0.0);  // [n][n] columns = eigenvectors (A = V D V^T)
  for (int i = 0; i < n; ++i) v[(size_t)i * n + i] = 1.0;
  auto A = [&](int i, int j) -> double& { return a[(size_t)i * n + j]; };
  auto V = [&](int i, int j) -> double& { return v[(size_t)i * n + j]; };

  double total = 0;
  for (double x : a) total += x * x;
  SymEigen r;
  for (; r.sweeps < 100; ++r.sweeps) {
    double off = 0;
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q) off += A(p, q) * A(p, q);
    if (off <= 1e-30 * total || off == 0) break;
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q) {
        const double apq = A(p, q);
        if (apq == 0) continue;
        // rotation J (J_pp = J_qq = c, J_pq = s, J_qp = -s) with (J^T A J)_pq = 0:
        // t = tan = the smaller root of t^2 + 2 theta t - 1 = 0, theta = (a_qq - a_pp) / (2 a_pq)
        const double theta = (A(q, q) - A(p, p)) / (2 * apq);
        const double t = std::abs(theta) > 1e150 ? 0.5 / theta
                                                 : std::copysign(1.0, theta) /
                                                       (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (int k = 0; k < n; ++k) {  // A <- A J (columns p, q)
          const double akp = A(k, p), akq = A(k, q);
          A(k, p) = c * akp - s * akq;
          A(k, q) = s * akp + c * akq;
        }
        for (int k = 0; k < n; ++k) {  // A <- J^T A (rows p, q)
          const double apk = A(p, k), aqk = A(q, k);
          A(p, k) = c * apk - s * aqk;
          A(q, k) = s * apk + c * aqk;
        }
        A(p, q) = A(q, p) = 0;
        for (int k = 0; k < n; ++k) {  // V <- V J
          const double vkp = V(k, p), vkq = V(k, q);
          V(k, p) = c * vkp - s * vkq;
          V(k, q) = s * vkp + c * vkq;
        }
      }
  }
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int i, int j) { return A(i, i) > A(j, j); });
  r.values.resize(n);
  r.vectors.resize((size_t)n * n);
  for (int j = 0; j < n; ++j) {
    r.values[j] = A(order[j], order[j]);
    for (int k = 0; k < n; ++k) r.vectors[(size_t)j * n + k] = V(k, order[j]);
  }
  return r;
}

}  // namespace h1bkv
