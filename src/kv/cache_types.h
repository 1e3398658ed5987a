// The cache types the registry lists (registry.cpp), one definition per cache file.
#pragma once
#include <vector>

#include "kv/registry.h"

namespace h1bkv {

// f16, f32, one type per codec usable for both keys and values (q8_0, ...), and plain:k=,v=
// (plain_cache.cpp).
std::vector<CacheTypeDef> plain_cache_types();
CacheTypeDef h1b_cache_type();  // h1b_cache.cpp
CacheTypeDef kivi_cache_type();  // kivi_cache.cpp
CacheTypeDef loki_cache_type();  // loki_cache.cpp (Loki top-k by low-rank PCA scores)
CacheTypeDef evict_cache_type();  // evict_cache.cpp (H2O token eviction)

}  // namespace h1bkv
