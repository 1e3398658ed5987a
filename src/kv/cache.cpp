#include "kv/cache.h"

namespace h1bkv {

KvCache::KvCache(std::string spec, CacheGeometry geom, double bytes_per_token,
                 std::vector<std::unique_ptr<LayerCache>> layers)
    : spec_(std::move(spec)), geom_(geom), bytes_per_token_(bytes_per_token),
      layers_(std::move(layers)) {}

size_t KvCache::bytes() const {
  size_t b = 0;
  for (const auto& l : layers_) b += l->bytes();
  return b;
}

size_t KvCache::capacity_bytes() const {
  size_t b = 0;
  for (const auto& l : layers_) b += l->capacity_bytes();
  return b;
}

void KvCache::clear() {
  for (auto& l : layers_) l->clear();
}

void KvCache::truncate(int64_t n) {
  for (auto& l : layers_) l->truncate(n);
}

}  // namespace h1bkv
