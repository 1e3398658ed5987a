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
  TileKernel fn = nullptr;      // null: the path has none (matmul uses the row kernel)
  // the same on a packed group (w: its bytes, nr = rows; row_bytes != 0: prefetch the packed
  // stream ahead, for the first token tile of a group), or null
  TileKernel packed = nullptr;
  int rows = 0, tokens = 0;
};

// Where the lanes kernels (tile_q8.cpp) find a block's bytes, and the packed layout built from it
// (tensor/pack.h): `chunks` 16-byte chunks at byte first + 16k of a block are read as dwords,
// then an fp16 scale field of field_bytes (2: d; 4: Q4_1's [d, m]; 0: none) at byte `field`.
// Chunk k is stored at slot[k] of the packed group-block, in the order the kernel reads them
// (the hardware prefetchers follow a forward stream, not Q6_K's jumps between ql and qh).
struct LanesLayout {
  int first, chunks, field, field_bytes, block_bytes;
  int slot[13];
};
constexpr LanesLayout kLanesQ4_1{4, 1, 0, 4, 20, {0}}, kLanesQ8_0{2, 2, 0, 2, 34, {0, 1}},
    kLanesQ4_K{0, 9, 0, 0, 144, {0, 1, 2, 3, 4, 5, 6, 7, 8}},
    // scales (chunk 12) first, then per (h, e): ql 4h + e, ql 4h + 2 + e, qh 8 + 2h + e
    kLanesQ6_K{0, 13, 208, 2, 210, {1, 4, 2, 5, 7, 10, 8, 11, 3, 6, 9, 12, 0}};
constexpr int kLanesRows = 16;
// Bytes of one packed group-block: the chunks of 16 rows as 4 x 64 bytes each (dword j of row r
// at 64j + 4r), the 16 rows' fields, padded to a cache line.
constexpr size_t lanes_group_block_bytes(const LanesLayout& L) {
  return ((size_t)kLanesRows * (16 * L.chunks + L.field_bytes) + 63) & ~size_t{63};
}
struct TileSet {
  Tile q4_1, q8_0, q4_k, q6_k;
};
// The register-blocked kernel of weight `type` on path `isa` (empty where it has none; tile_q8.cpp).
Tile tile_for(uint32_t type, Isa isa);

}  // namespace h1bkv::detail
