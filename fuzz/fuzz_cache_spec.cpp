// libFuzzer target for the cache-spec parser (kv/registry.h, "type[:key=value,...]"): any text
// must parse or throw h1bkv::Error. A spec that parses must give finite, non-negative byte
// counts and build a cache on a small geometry (where option values become sizes and counts)
// that accepts a few tokens, or refuse that geometry with h1bkv::Error. Build and run: scripts/fuzz.sh
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kv/cache.h"
#include "kv/registry.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  h1bkv::CacheSpec spec;
  try {
    spec = h1bkv::parse_cache_spec(text);
  } catch (const h1bkv::Error&) {
    return 0;
  }
  // canonical form re-parses to the same spec
  try {
    if (h1bkv::parse_cache_spec(spec.str()).str() != spec.str()) __builtin_trap();
  } catch (const h1bkv::Error&) {
    __builtin_trap();
  }
  h1bkv::CacheGeometry g{2, 4, 2, 8, 32, ""};
  try {
    // the byte counts may refuse a spec that does not fit the geometry (e.g. exact=32 > 2 layers)
    const double bpt = h1bkv::cache_bytes_per_token(spec, g), fixed = h1bkv::cache_fixed_bytes(spec, g);
    if (!std::isfinite(bpt) || bpt < 0 || !std::isfinite(fixed) || fixed < 0) __builtin_trap();
    auto cache = h1bkv::make_cache(spec, g);
    std::vector<float> k(4 * 2 * 8, 0.5f), v(4 * 2 * 8, 0.25f), q(4 * 4 * 8, 0.1f), out(4 * 4 * 8);
    const int32_t pos[4] = {0, 1, 2, 3};
    for (int il = 0; il < g.n_layer; ++il) {
      cache->layer(il).append(4, pos, k.data(), v.data());
      cache->layer(il).attend(4, pos, q.data(), 0.35f, out.data());
    }
    for (float x : out)
      if (!std::isfinite(x)) __builtin_trap();
  } catch (const h1bkv::Error&) {
    // e.g. loki without its basis file, an option that does not fit the geometry
  }
  return 0;
}
