// Internal: the h1b score kernels, compiled per Highway target and dispatched on the kernel path
// (tensor/isa.h). Code layout as in sketch.h: codes [nbytes][32 tokens] u8, tables
// [nbytes][2][16] u8 (lo-nibble table, hi-nibble table per byte position).
#pragma once
#include <cstdint>

#include "tensor/isa.h"

namespace h1bkv::detail {

// Table sums of the 32 tokens of one code group for ng (1..4) heads:
//   h[g][t] = sum_p tabs[g][p][0][c_pt & 15] + tabs[g][p][1][c_pt >> 4]
// chunk: byte positions summed in u8 before widening (needs chunk * max(lo + hi) <= 255).
// qbytes[g] (nbytes bytes) or null: the query's sign bytes when the tables are popcount tables
// (hamming, angle: entry = popcount(nibble ^ query nibble)); the avx512 path then counts the bits
// of code ^ query (vpopcntb) instead of looking tables up, which gives the same integers.
void sketch_group_sums(Isa isa, const uint8_t* const* tabs, const uint8_t* const* qbytes, int ng,
                       const uint8_t* codes, int nbytes, int chunk, int32_t (*h)[32]);

}  // namespace h1bkv::detail
