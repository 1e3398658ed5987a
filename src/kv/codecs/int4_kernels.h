// Internal: the int4 value accumulation (int4.h's int4_accumulate_group), compiled per Highway
// target and dispatched on the kernel path (tensor/isa.h). Value layout as in int4.h.
#pragma once
#include <cstdint>

#include "tensor/isa.h"

namespace h1bkv::detail {

// acc[g][e] += sum_t w[g][t] * decode(vals_t)[e], g < ng (any ng), t < n, head dim d, value
// groups of `group` elements (0 = d). Per path, each head's floats do not depend on ng or on the
// other heads; scalar = int4_accumulate_ref per head.
void int4_group_sums(Isa isa, const float* const* w, int ng, const uint8_t* vals, int64_t n, int d,
                     int group, float* const* acc);

// Tokens per piece of the integer arithmetic: one 16-bit factor unit per piece and value group
// (int4_kernels.cpp's x86 paths and int4.cpp's int4_accumulate_q16_ref).
constexpr int kInt4Piece = 64;

// Whether int4_group_sums on `isa` takes int4.h's integer arithmetic (int4_accumulate_q16_ref).
bool int4_integer_sums(Isa isa, int d, int group);

}  // namespace h1bkv::detail
