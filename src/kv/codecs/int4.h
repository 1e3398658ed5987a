// Value codec "int4" (H1B-KV values, arXiv 2510.05529 sec. 3): 4-bit affine codes, round to
// nearest, one fp16 scale and fp16 minimum per group of `group` elements (0 = whole head).
// Vector layout: [d/2] nibble bytes, then [n_groups] x {fp16 scale, fp16 min}. Within group g
// (G elements, G/2 bytes) byte i holds element g*G+i (low nibble) and g*G+i+G/2 (high nibble),
// so 8 bytes expand to two runs of 8 consecutive elements.
// Decoded value = min + scale * code; min is rounded down and scale up to fp16 so every element
// lies in [min, min + 15 scale] and the round-trip error is <= scale / 2.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "kv/codecs/codec.h"
#include "tensor/isa.h"

namespace h1bkv {

size_t int4_bytes(int d, int group);  // d/2 + 4 * n_groups
void int4_encode(const float* v, int d, int group, uint8_t* dst);
void int4_decode(const uint8_t* src, int d, int group, float* out);
// out[e] += sum_t w[t] * decode(vals_t)[e] over n consecutive vectors (fused, on the codes).
void int4_accumulate(const float* w, const uint8_t* vals, int64_t n, int d, int group, float* out);
void int4_accumulate_ref(const float* w, const uint8_t* vals, int64_t n, int d, int group, float* out);
// The x86 paths' arithmetic (AVX2 and AVX-512, int4_kernels.cpp), the reference they equal
// up to the order of the minima's sum: per piece of 64 tokens from the first and value group,
// factors a_t = w_t s_t rounded to integers in units of max |a_t| / 32767, their exact integer
// sums with the codes times the unit; sum_t w_t m_t added at the end. Each factor is off by at
// most half a unit, so the result is within 15 / 2 units per token of int4_accumulate_ref's.
void int4_accumulate_q16_ref(const float* w, const uint8_t* vals, int64_t n, int d, int group, float* out);
// Whether the kernels of `isa` use that integer arithmetic for this head dim and group.
bool int4_integer_path(Isa isa, int d, int group);
// acc[g][e] += sum_t w[g][t] * decode(vals_t)[e] for G weight rows over the same n vectors (codes
// decoded once for the group); each row bit-identical to int4_accumulate, which is G = 1.
void int4_accumulate_group(const float* const* w, int G, const uint8_t* vals, int64_t n, int d,
                           int group, float* const* acc);
// The codec "int4" (codec.h's factory; h1b's values); group 0 = whole head.
std::unique_ptr<ValueCodec> make_int4_value(int head_dim, int group = 0);

}  // namespace h1bkv
