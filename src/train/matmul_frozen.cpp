#include "train/matmul_frozen.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "tensor/quant.h"

namespace h1bkv::train {

void matmul_forward(const WeightView& w, const float* x, float* y, int64_t n) {
  matmul(w, x, y, n);
}

void matmul_backward_x(const WeightView& w, const float* dy, float* dx, int64_t n) {
  const int64_t rows = w.rows, cols = w.cols;
#pragma omp parallel if (n * rows * cols > (1 << 20))
  {
    // each thread owns a token range and dequantizes every row chunk itself
    const int nt = omp_get_num_threads(), it = omp_get_thread_num();
    const int64_t t0 = n * it / nt, t1 = n * (it + 1) / nt;
    std::vector<float> buf((size_t)kRowChunk * cols);
    for (int64_t r0 = 0; r0 < rows && t0 < t1; r0 += kRowChunk) {
      const int64_t m = std::min<int64_t>(kRowChunk, rows - r0);
      for (int64_t r = 0; r < m; ++r)
        dequantize_row(w.type, w.data + (size_t)(r0 + r) * w.row_bytes, buf.data() + r * cols, cols);
      for (int64_t t = t0; t < t1; ++t) {
        float* d = dx + t * cols;
        const float* g = dy + t * rows + r0;
        for (int64_t r = 0; r < m; ++r) {
          const float a = g[r];
          if (a == 0) continue;
          const float* row = buf.data() + r * cols;
          for (int64_t j = 0; j < cols; ++j) d[j] += a * row[j];
        }
      }
    }
  }
}

}  // namespace h1bkv::train
