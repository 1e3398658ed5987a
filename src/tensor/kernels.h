// Internal: per-type dot kernels and activation quantizers used by matmul.cpp.
#pragma once
#include <cstddef>
#include <cstdint>

#include "tensor/isa.h"

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
// [cols/256] ActQ8_K). The dispatched (simd) and scalar versions give bit-identical blocks.
void quantize_act_row(ActKind kind, const float* x, uint8_t* dst, int64_t cols, bool simd);
size_t act_row_bytes(ActKind kind, int64_t cols);

// The row kernels of one kernel path. Each dot_*.cpp is compiled once per Highway target
// (foreach_target) and fills its entries for the path given: scalar = the references.
struct KernelSet {
  RowKernel q4_0, q4_1, q5_0, q5_1, q8_0;  // x Q8_0 (q4_0, q5_0, q8_0) / Q8_1 (q4_1, q5_1)
  RowKernel q4_k, q6_k;                    // x Q8_K
  RowKernel f32, f16, bf16;                // x f32
};
void fill_q8_kernels(Isa isa, KernelSet& ks);     // dot_q8.cpp
void fill_k_kernels(Isa isa, KernelSet& ks);      // dot_k.cpp
void fill_float_kernels(Isa isa, KernelSet& ks);  // dot_f.cpp

// Register-blocked kernels: nr (1..rows of its Tile) weight rows, row_bytes apart from w, x nt
// (1..tokens of its Tile) activation rows; y[t * y_stride + r] receives the dot of row r with
// token t. A (row, token) dot is computed in the same order whatever nt is, and whatever nr is
// for a row at the same offset from w (matmul calls them at row multiples of `rows`).
using TileKernel = void (*)(const uint8_t* w, size_t row_bytes, int nr, const uint8_t* act,
                            size_t act_stride, int nt, int64_t cols, float* y, size_t y_stride);
struct Tile {
  TileKernel fn = nullptr;  // null: the path has none (matmul uses the row kernel)
  int rows = 0, tokens = 0;
};
struct TileSet {
  Tile q4_1, q8_0, q4_k, q6_k;
};
void fill_tile_kernels(Isa isa, TileSet& ts);  // tile_q8.cpp

}  // namespace h1bkv::detail
