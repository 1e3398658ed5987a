#include "tensor/bandwidth.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <new>

namespace h1bkv {

double stream_read_gbps(int threads, size_t bytes, int passes) {
  threads = std::max(1, threads);
  const size_t n = bytes / sizeof(float), per = n / threads / 64 * 64;
  struct Free {
    void operator()(float* p) const { ::operator delete(p, std::align_val_t(64)); }
  };
  std::unique_ptr<float, Free> buf(static_cast<float*>(::operator new(n * sizeof(float), std::align_val_t(64))));
  float* p = buf.get();
#pragma omp parallel for schedule(static) num_threads(threads)
  for (size_t i = 0; i < n; ++i) p[i] = (float)(i & 1023) * 1e-3f;
  double best = 0;
  volatile float sink = 0;
  for (int k = 0; k < passes; ++k) {
    const auto t0 = std::chrono::steady_clock::now();
    float total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    total += stream_sum(p + (size_t)omp_get_thread_num() * per, per);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    sink = sink + total;
    best = std::max(best, (double)per * threads * sizeof(float) / s / 1e9);
  }
  return best;
}

}  // namespace h1bkv
