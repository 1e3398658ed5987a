// Dot products and weighted accumulation over f32 / f16 head vectors on the kernel path
// (tensor/isa.h), and the scalar references the tests compare them with. n is the head dimension
// (any n; the vector paths handle 8 at a time).
#pragma once
#include <cstddef>
#include <cstdint>

namespace h1bkv {

float dot_f32(const float* a, const float* b, int n);
float dot_f32_f16(const float* a, const uint16_t* b, int n);
void axpy_f32(float w, const float* x, float* out, int n);     // out += w * x
void axpy_f16(float w, const uint16_t* x, float* out, int n);  // out += w * x

// Grouped kernels for the attention loop: G query heads (any G) sharing one KV head, n f16 rows
// at v + t * stride (stride in uint16_t). The arithmetic of each (head, token) does not depend
// on n, on G or on the token's place in the run, so any split of a token range into runs gives
// the same results (the exact tier and the f16 codec share these kernels).
//   scores: out[g][t] = q[g] . k_t as one 8-lane FMA chain over d, lanes summed as
//           ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7))
//   values: acc[g][e] += w[g][t] * v_t[e] for t in order (one FMA per element and token)
// d not a multiple of 8: dot_f32_f16 / axpy_f16 per token.
void dot_f32_f16_group(const float* const* q, int G, const uint16_t* k, size_t stride, int64_t n,
                       int d, float* const* out);
void axpy_f16_group(const float* const* w, int G, const uint16_t* v, size_t stride, int64_t n,
                    int d, float* const* acc);

float dot_f32_ref(const float* a, const float* b, int n);
float dot_f32_f16_ref(const float* a, const uint16_t* b, int n);
void axpy_f32_ref(float w, const float* x, float* out, int n);
void axpy_f16_ref(float w, const uint16_t* x, float* out, int n);
void dot_f32_f16_group_ref(const float* const* q, int G, const uint16_t* k, size_t stride, int64_t n,
                           int d, float* const* out);
void axpy_f16_group_ref(const float* const* w, int G, const uint16_t* v, size_t stride, int64_t n,
                        int d, float* const* acc);

}  // namespace h1bkv
