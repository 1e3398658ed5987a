// Recording keys for Loki's PCA (kv/loki_basis.h): a cache that attends exactly (f16, so the forward
// pass is the f16 cache's) and accumulates the first and second moments of every appended
// post-RoPE key per (layer, KV head).
#pragma once
#include <memory>
#include <vector>

#include "kv/cache.h"
#include "kv/calib/loki_basis.h"

namespace h1bkv {

std::unique_ptr<KvCache> make_loki_recording_cache(const CacheGeometry& g);
// [n_layer][n_kv_head] moments recorded so far; throws Error for another cache.
std::vector<std::vector<KeyMoments>> recorded_key_moments(KvCache& cache);
// The PCA basis of the recorded keys (model_id and geometry from the cache; text, model and
// tokens left for the caller).
LokiBasis loki_basis_from_recording(KvCache& cache);

}  // namespace h1bkv
