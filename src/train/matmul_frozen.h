// Matmul with a frozen weight W [rows][cols] in its stored (quantized) type.
// Forward is tensor/matmul's y = x W^T (the inference kernel, so training sees what inference
// computes). Backward gives only dx = dy W, since W is frozen: rows are dequantized to f32 in
// chunks of kRowChunk per thread and streamed, so no f32 copy of the weights is kept
// (memory: kRowChunk x cols floats per thread; the dequantization is repeated per call).
#pragma once
#include <cstdint>

#include "tensor/matmul.h"

namespace h1bkv::train {

constexpr int kRowChunk = 32;

// y[n][rows] = x[n][cols] W^T
void matmul_forward(const WeightView& w, const float* x, float* y, int64_t n);
// dx[n][cols] += dy[n][rows] W
void matmul_backward_x(const WeightView& w, const float* dy, float* dx, int64_t n);

}  // namespace h1bkv::train
