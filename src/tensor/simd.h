// Internal: the AVX2 helpers of tensor/simd-body.h for code compiled for the build's baseline
// (kv/calib/h1b_record.cpp, under #if __AVX2__). The dispatched kernels use their per-target
// copy, tensor/simd-inl.h.
#pragma once
#if defined(__AVX2__)
#include <immintrin.h>

#include <cstdint>

namespace h1bkv::detail {
#include "tensor/simd-body.h"
}  // namespace h1bkv::detail
#endif  // __AVX2__
