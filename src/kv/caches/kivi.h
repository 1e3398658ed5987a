// The "kivi" cache (KIVI, Liu et al. 2024, "KIVI: A Tuning-Free Asymmetric 2bit Quantization for
// KV Cache"): keys quantized per channel over groups of G consecutive tokens, values per token
// over groups of vgroup channels (kv/kivi_quant.h), and the most recent tokens in f16 (the
// residual).
// Which copy a query reads: for a query at token index i (the cache held i + 1 tokens when it
// was decoded) token t comes from the quantized store iff its key group g = t / G is complete
// and lies wholly before the R most recent tokens, (g + 1) G <= i + 1 - R; otherwise from f16.
// So the f16 tokens of query i are [q_end(i), i], q_end(i) = G floor(max(0, i + 1 - R) / G),
// between R and R + G - 1 of them in steady decoding, and batched evaluation equals
// token-by-token decoding.
// A group is quantized (from its f16 copies) as soon as it is complete. f16 copies are kept
// while a query of the last batch appended (or a later one) may read them: at most
// R + G - 1 + that batch's tokens; so a rewind (truncate) within the last batch always works,
// deeper ones throw Error once the copies they need are gone. LayerCache::settle keeps those a
// query past the newest token reads: at most R + G - 1, the formula's fixed tokens.
#pragma once
#include <memory>

#include "kv/cache.h"
#include "kv/registry.h"

namespace h1bkv {

struct KiviOptions {
  int bits = 2;            // 2, 4, 8, or 16 (no quantization: f16)
  int group = 32;          // G: tokens per key group
  int64_t residual = 128;  // R: most recent tokens read from f16
  int vgroup = 32;         // channels per value group (clamped to head_dim)
  int vbits = 0;           // bits per value element (0 = bits)
};

KiviOptions kivi_options(const CacheSpec& spec);  // spec of type "kivi"
void validate_kivi_spec(const CacheSpec& spec);   // Error naming the option

std::unique_ptr<LayerCache> make_kivi_layer_cache(const CacheGeometry& g, const KiviOptions& o);

// Quantized bytes per token and KV head: keys d*bits/8 + 4d/G, values d*vbits/8 + 4d/vgroup
// (bits = 16: 2d + 2d).
double kivi_bytes_per_token_head(const KiviOptions& o, int head_dim);

}  // namespace h1bkv
