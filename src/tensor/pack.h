// Weights repacked at load for the avx512 lanes kernels (tensor/tile_q8.cpp), as llama.cpp
// repacks for its AVX-512 gemm: each group of 16 rows is stored block by block with the 16 rows'
// bytes interleaved the way those kernels read them, so a block costs plain loads instead of
// in-register transposes. The copy holds the file's bytes permuted, so results are bit-identical
// to the kernels on the file's layout. Set H1BKV_REPACK=0 to run on the file's layout.
//
// Layout (kernels.h LanesLayout L of the type): [rows / 16][nb][lanes_group_block_bytes(L)], a
// group-block = the L.chunks 16-byte chunks of the block (byte L.first + 16k of each row; chunk k
// in slot L.slot[k]) as 4 x 64 bytes (dword j of row r at 64j + 4r), then the 16 rows' L.field bytes, zero-padded to
// 64. Rows after the last full group are not packed: matmul reads them from the file.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "tensor/matmul.h"

namespace h1bkv {

struct PackedBytes {
  struct Free {
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t, Free> data;  // 64-byte aligned
  size_t size = 0;
};

// True when the active kernel path has packed kernels for `type` and H1BKV_REPACK is not "0".
bool repack_wanted(uint32_t type);
// Bytes between packed groups of 16 rows of a `type` matrix with `cols` columns (0: no layout).
size_t packed_group_bytes(uint32_t type, int64_t cols);
// The packed copy of w's full 16-row groups (on the thread pool); empty when w.rows < 16 or the
// type has no lanes layout. `done`, when given, is called (from pool threads) with each range of
// w's bytes once it is packed, e.g. to release those file pages while the rest is packed.
PackedBytes pack_lanes(const WeightView& w, const std::function<void(const uint8_t*, size_t)>& done = {});

}  // namespace h1bkv
