// Codecs "q8_0" and "q4_0": llama.cpp's (ggml's) block formats, applied along the head dimension.
// A vector of d values is split into blocks of 32 (one block of d values when d < 32; d > 32 must
// be a multiple of 32). Each block is {fp16 d, codes}, as ggml's block_q8_0 / block_q4_0:
//   q8_0: d = amax / 127, q = roundf(x / d) as int8             2 + B bytes   (34 for B = 32)
//   q4_0: d = m / -8 (m: the value of largest magnitude, first one on ties),
//         q = min(15, (int)(x / d + 8.5)), x^ = (q - 8) d         2 + B/2 bytes (18 for B = 32)
//         byte j holds value j (low nibble) and value j + B/2 (high nibble)
// Codes come from the f32 d (as ggml's quantize_row_*_ref); decoding uses the stored fp16 d.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "kv/codecs/codec.h"

namespace h1bkv {

enum class BlockQuant { q8_0, q4_0 };

// Values per block: 32, or d when d < 32; throws Error naming head_dim when d > 32 is not a
// multiple of 32 (and for q4_0 when the block is odd).
int block_quant_block(BlockQuant t, int d);
size_t block_quant_bytes(BlockQuant t, int d);  // bytes of one encoded vector
void block_quant_encode(BlockQuant t, const float* x, int d, uint8_t* dst);
void block_quant_decode(BlockQuant t, const uint8_t* src, int d, float* out);

// out[i] = q . decode(k_i) for n consecutive encoded vectors (AVX2; scalar reference *_ref).
void block_quant_score(BlockQuant t, const float* q, const uint8_t* keys, int64_t n, int d, float* out);
void block_quant_score_ref(BlockQuant t, const float* q, const uint8_t* keys, int64_t n, int d, float* out);
// out[e] += sum_i w[i] * decode(v_i)[e] for n consecutive encoded vectors.
void block_quant_accumulate(BlockQuant t, const float* w, const uint8_t* vals, int64_t n, int d, float* out);
void block_quant_accumulate_ref(BlockQuant t, const float* w, const uint8_t* vals, int64_t n, int d, float* out);

// The same for the G query heads of a KV head (q[g], w[g], out[g]): each block decoded once for
// the group; the results equal G calls of the single-head kernels exactly (same operation order).
void block_quant_score_group(BlockQuant t, const float* const* q, int G, const uint8_t* keys, int64_t n,
                             int d, float* const* out);
void block_quant_accumulate_group(BlockQuant t, const float* const* w, int G, const uint8_t* vals,
                                  int64_t n, int d, float* const* out);

// The codecs (registered as "q8_0" / "q4_0" in codec_factory.cpp).
std::unique_ptr<KeyCodec> make_block_quant_key(BlockQuant t, int d);
std::unique_ptr<ValueCodec> make_block_quant_value(BlockQuant t, int d);

}  // namespace h1bkv
