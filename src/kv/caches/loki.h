// Loki (Singhania et al. 2024, "Loki: Low-rank Keys for Efficient Sparse Attention", Alg. 1):
// keys are stored rotated into a PCA basis of post-RoPE keys calibrated offline (kv/loki_basis.h),
// k' = P^T k, so their first r coordinates are the top principal components. A query (head h,
// KV head hk) is rotated the same way, q' = P^T q (dot products unchanged: P is orthogonal);
// approximate scores q'[0:r] . k'[0:r] over every visible token (position <= query position)
// pick the top k tokens; exact softmax attention with all d coordinates runs over those only.
//   options: r (1..head_dim, default 16), k (<= 1: fraction of the visible tokens,
//            ceil(k n_visible) and at least 1, so k=1 is all; > 1: a count; default 0.125)
// Loki keeps the full cache (keys and values f16, every token): bytes_per_token is f16's. It
// saves reads (r of d key coordinates for all tokens, all d and the values for k of them), not
// memory; the basis ([n_layer][n_kv_head][d][d] f32) is held beside the tokens.
// Selection is per query and depends only on the tokens it sees, so batched evaluation equals
// token-by-token decoding, and truncate works as in any full cache.
// Storage per KV head: the first r rotated coordinates [n][r] f16 contiguous (the scoring pass
// reads only these), the other d - r [n][d - r] f16, values [n][d] f16 (unrotated).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "kv/cache.h"
#include "kv/calib/loki_basis.h"
#include "kv/registry.h"

namespace h1bkv {

struct LokiOptions {
  int r = 16;
  double k = 0.125;
  int64_t sink = 0;  // first tokens always among the k selected (attention sinks; not in the paper)
};
LokiOptions loki_options(const CacheSpec& spec);
void validate_loki_spec(const CacheSpec& spec);

// Tokens attended of n_visible (>= 1): min(n_visible, max(1, ceil(k n_visible))) for k <= 1,
// min(n_visible, k) for k > 1 (as evict's keep: <= 1 a fraction, > 1 a count).
int64_t loki_select_count(double k, int64_t n_visible);

// The indices of the top `count` of scores[0..n) (ties: the lower index first), ascending.
void loki_top_k(const float* scores, int64_t n, int64_t count, std::vector<int32_t>& idx);

// The cache of spec with basis b (checked against g: model id and geometry; path names the file
// in errors).
std::unique_ptr<KvCache> make_loki_cache(const CacheSpec& spec, const CacheGeometry& g,
                                         const LokiBasis& b, const std::string& path = "basis");

}  // namespace h1bkv
