// Weight types: dequantization of GGUF blocks. Block layouts follow ggml-common.h.
#pragma once
#include <cstdint>

namespace h1bkv {

// True for the weight types the matmul kernels support:
// F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q6_K.
bool weight_type_supported(uint32_t type);

// Dequantizes n values (n a multiple of the type's block size) from src to dst.
void dequantize_row(uint32_t type, const void* src, float* dst, int64_t n);

}  // namespace h1bkv
