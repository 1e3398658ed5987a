// Matrix-vector and matrix-matrix products on quantized weights, working on the blocks directly
// (activations are quantized to the weight type's dot-product partner, as ggml does:
// Q4_0/Q5_0/Q8_0 -> Q8_0, Q4_1/Q5_1 -> Q8_1, Q4_K/Q6_K -> Q8_K; F16/BF16/F32 use float dots).
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>

namespace h1bkv {

// A weight matrix W: [rows][cols] in GGUF order (ne[0] = cols is contiguous), each row
// row_bytes bytes of `type`. Memory is owned elsewhere (the mmap).
struct WeightView {
  uint32_t type = 0;
  int64_t rows = 0;
  int64_t cols = 0;
  size_t row_bytes = 0;
  const uint8_t* data = nullptr;
  // The full 16-row groups repacked for the active path's kernels (tensor/pack.h), or null;
  // owned elsewhere (the model). matmul uses it where its kernel path has packed kernels.
  const uint8_t* packed = nullptr;
};

// y[n][rows] = x[n][cols] . W^T. x, y f32 row-major. Parallel over rows (util/thread_pool.h: -t threads),
// with the kernels of the active path (tensor/isa.h).
void matmul(const WeightView& w, const float* x, float* y, int64_t n);

// Several products of the same x (a layer's Q/K/V, gate/up): y_k[n][w_k.rows] = x . W_k^T.
// Weights of one type and width share one activation quantization and one thread-pool job
// (one barrier instead of one per weight at decode); others run one matmul each. Results equal
// those of separate matmul calls bit for bit.
struct MatmulOut {
  const WeightView* w;
  float* y;
};
constexpr int kMaxMatmulMany = 4;
void matmul_many(std::initializer_list<MatmulOut> outs, const float* x, int64_t n);

// Same result computed by the scalar reference kernels (tests compare against it).
void matmul_ref(const WeightView& w, const float* x, float* y, int64_t n);

}  // namespace h1bkv
