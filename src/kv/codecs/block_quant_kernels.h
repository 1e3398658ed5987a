// Internal: the q8_0 / q4_0 kernels of block_quant.h compiled per Highway target
// (block_quant_kernels.cpp); the copy for the CPU's best allowed target (tensor/isa.h). The scalar
// path does not come here: block_quant.cpp calls the references.
#pragma once
#include <cstdint>

#include "kv/codecs/block_quant.h"

namespace h1bkv::detail {

void block_quant_score_simd(BlockQuant t, const float* q, const uint8_t* keys, int64_t n, int d, float* out);
void block_quant_accumulate_simd(BlockQuant t, const float* w, const uint8_t* vals, int64_t n, int d,
                                 float* out);
void block_quant_score_group_simd(BlockQuant t, const float* const* q, int G, const uint8_t* keys,
                                  int64_t n, int d, float* const* out);
void block_quant_accumulate_group_simd(BlockQuant t, const float* const* w, int G, const uint8_t* vals,
                                       int64_t n, int d, float* const* out);

}  // namespace h1bkv::detail
