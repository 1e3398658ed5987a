// Matrix-vector and matrix-matrix products on quantized weights, working on the blocks directly
// (activations are quantized to the weight type's dot-product partner, as ggml does:
// Q4_0/Q5_0/Q8_0 -> Q8_0, Q4_1/Q5_1 -> Q8_1, Q4_K/Q6_K -> Q8_K; F16/BF16/F32 use float dots).
#pragma once
#include <cstddef>
#include <cstdint>

namespace h1bkv {

// A weight matrix W: [rows][cols] in GGUF order (ne[0] = cols is contiguous), each row
// row_bytes bytes of `type`. Memory is owned elsewhere (the mmap).
struct WeightView {
  uint32_t type = 0;
  int64_t rows = 0;
  int64_t cols = 0;
  size_t row_bytes = 0;
  const uint8_t* data = nullptr;
};

// y[n][rows] = x[n][cols] . W^T. x, y f32 row-major. Parallel over rows (util/thread_pool.h: -t threads),
// with the kernels of the active path (tensor/isa.h).
void matmul(const WeightView& w, const float* x, float* y, int64_t n);

// Same result computed by the scalar reference kernels (tests compare against it).
void matmul_ref(const WeightView& w, const float* x, float* y, int64_t n);

}  // namespace h1bkv
