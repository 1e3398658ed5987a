// Grouped kernels of the attention loop (full_cache.cpp): the G query heads that share one KV
// head are scored against a block of compressed keys, and accumulate its int4 values, in one
// pass, so the codes are loaded and decoded once for the group. Each (head, token) result is
// bit-identical to the codec's one-head path (SketchKeyCodec::score_block, int4_accumulate with
// G = 1) and independent of G, of n and of the token's place in the run.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kv/codec.h"
#include "kv/sketch.h"

namespace h1bkv {

// outs[g][i] = logit of query head g (prepared by c.prepare_query into preps[g]) against the
// key in slot t0 + i of `block`, i < n (the block layout of sketch.h). Same results as
// c.score_block(preps[g], block, t0, n, outs[g]).
void sketch_score_group(const SketchKeyCodec& c, const float* const* preps, int G,
                        const uint8_t* block, int t0, int n, float* const* outs);

// acc[g][e] += sum_t w[g][t] * decode(vals_t)[e] for n consecutive int4 vectors (int4_codec.h).
// G = 1 is int4_accumulate.
void int4_accumulate_group(const float* const* w, int G, const uint8_t* vals, int64_t n, int d,
                           int group, float* const* acc);

// True (and d, group) when v is the int4 value codec (codec_factory's "int4").
bool int4_value_params(const ValueCodec& v, int* d, int* group);

}  // namespace h1bkv
