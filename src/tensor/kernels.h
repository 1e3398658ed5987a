// Internal: per-type dot kernels and activation quantizers used by matmul.cpp.
#pragma once
#include <cstddef>
#include <cstdint>

namespace h1bkv::detail {

// Dot products of one weight row (`cols` values of the row's type, blocks as in GGUF) with
// nt (1..kTile) activation rows: act = first activation row (quantized blocks, or f32 for the
// float types), act_stride = bytes between activation rows; out[nt] receives the dots.
// Every variant computes a token's dot with the same operation order whatever nt is, so the
// result for a token does not depend on how tokens are tiled.
constexpr int kTile = 4;
using RowKernel = void (*)(const uint8_t* w, const uint8_t* act, size_t act_stride, int nt,
                           int64_t cols, float* out);

// Activation formats a weight type is paired with (ggml's vec_dot_type).
enum class ActKind { F32, Q8_0, Q8_1, Q8_K };

// Quantizes one activation row of `cols` floats into dst ([cols/32] ActQ8_0 / ActQ8_1 or
// [cols/256] ActQ8_K). The AVX2 and scalar versions give bit-identical blocks.
void quantize_act_row(ActKind kind, const float* x, uint8_t* dst, int64_t cols, bool simd);
size_t act_row_bytes(ActKind kind, int64_t cols);

// Kernels: *_avx2 are the fast paths, *_ref the scalar references.
#define H1BKV_DECLARE_KERNEL(name)                                                       \
  void name##_avx2(const uint8_t*, const uint8_t*, size_t, int, int64_t, float*);        \
  void name##_ref(const uint8_t*, const uint8_t*, size_t, int, int64_t, float*);
H1BKV_DECLARE_KERNEL(dot_q4_0)  // x Q8_0
H1BKV_DECLARE_KERNEL(dot_q4_1)  // x Q8_1
H1BKV_DECLARE_KERNEL(dot_q5_0)  // x Q8_0
H1BKV_DECLARE_KERNEL(dot_q5_1)  // x Q8_1
H1BKV_DECLARE_KERNEL(dot_q8_0)  // x Q8_0
H1BKV_DECLARE_KERNEL(dot_q4_k)  // x Q8_K
H1BKV_DECLARE_KERNEL(dot_q6_k)  // x Q8_K
H1BKV_DECLARE_KERNEL(dot_f32)   // x f32
H1BKV_DECLARE_KERNEL(dot_f16)   // x f32
H1BKV_DECLARE_KERNEL(dot_bf16)  // x f32
#undef H1BKV_DECLARE_KERNEL

}  // namespace h1bkv::detail
