// Internal: ggml block layouts (ggml-common.h) and the activation blocks matmul quantizes x into.
// Weight blocks are read straight from the mmap, so every struct here is packed exactly as in GGUF.
#pragma once
#include <cstddef>
#include <cstdint>

namespace h1bkv::detail {

constexpr int QK = 32;    // elements per block of the 32-wide types
constexpr int QK_K = 256; // elements per super-block of the K types

#pragma pack(push, 1)
struct BlockQ4_0 { uint16_t d; uint8_t qs[16]; };                 // x = (q - 8) * d; qs[j]: lo = elem j, hi = elem j+16
struct BlockQ4_1 { uint16_t d, m; uint8_t qs[16]; };              // x = q * d + m
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; };  // x = (q | bit<<4) - 16) * d; qh bit j = 5th bit of elem j
struct BlockQ5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; };
struct BlockQ8_0 { uint16_t d; int8_t qs[32]; };                  // x = q * d
// Q4_K: 8 sub-blocks of 32; 6-bit scale and min per sub-block packed in scales[12]
// (see unpack_q4k_scales); qs[32*c + l]: lo nibble = elem 64c+l, hi = elem 64c+32+l.
struct BlockQ4_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; };
// Q6_K: 16 sub-blocks of 16 with int8 scales; 6-bit q = 4 bits in ql + 2 bits in qh, minus 32.
struct BlockQ6_K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; };
#pragma pack(pop)
static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_K) == 144 &&
              sizeof(BlockQ6_K) == 210);

// Activation blocks (not stored in files, so laid out for the kernels). Values equal ggml's:
// d (and s) are rounded through fp16 exactly as block_q8_0 / block_q8_1 store them.
struct ActQ8_0 { float d; int8_t qs[32]; };           // ggml block_q8_0
struct ActQ8_1 { float d; float s; int8_t qs[32]; };  // ggml block_q8_1, s = fp16(d_f32 * sum(qs))
struct ActQ8_K { float d; int8_t qs[256]; int16_t bsums[16]; };  // ggml block_q8_K, bsums per 16 qs

// Unpacks Q4_K's 12 scale bytes into 8 scales and 8 mins (6 bits each), as ggml get_scale_min_k4:
// j<4: sc = s[j]&63, m = s[j+4]&63; j>=4: low 4 bits from s[j+4], high 2 bits from the top of
// s[j-4] (scale) / s[j] (min).
inline void unpack_q4k_scales(const uint8_t* s, uint8_t* sc, uint8_t* mn) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = s[j] & 63;
    mn[j] = s[j + 4] & 63;
  }
  for (int j = 4; j < 8; ++j) {
    sc[j] = (uint8_t)((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4));
    mn[j] = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

}  // namespace h1bkv::detail
