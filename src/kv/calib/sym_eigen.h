// Eigen-decomposition of a small real symmetric matrix by the cyclic Jacobi method
// (Golub & Van Loan, Matrix Computations, 4th ed., sec. 8.5.2): sweeps of plane rotations, each
// zeroing one off-diagonal pair, until the off-diagonal mass is negligible. O(n^3) per sweep; meant
// for head dimensions (n <= a few hundred), where it is simple and accurate to the last bits.
#pragma once
#include <vector>

namespace h1bkv {

struct SymEigen {
  std::vector<double> values;   // [n] eigenvalues, descending
  std::vector<double> vectors;  // [n][n] row j = unit eigenvector of values[j]; rows orthonormal
  int sweeps = 0;               // Jacobi sweeps used
};

// a: [n][n] symmetric (only symmetry up to rounding is assumed; the upper triangle is mirrored).
// Throws Error when n < 1, a has the wrong size or a non-finite entry.
SymEigen symmetric_eigen(std::vector<double> a, int n);

}  // namespace h1bkv
