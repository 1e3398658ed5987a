// Policies: which tokens are held and how. The tiered layer cache holds every appended token
// coded by a key codec and a value codec (the compressed tier), plus optional exact f16 copies
// of K and V for the first `sink` tokens and the last `window` positions (the exact tier). A
// query at position p sees token t exactly when t < sink or pos_t > p - window, compressed
// otherwise, all in one softmax; so batched evaluation equals token-by-token decoding.
// sink = window = 0 is the "all tokens" policy of the plain caches.
// The window's f16 copies are kept for the last window - 1 + largest batch tokens (a batch's
// queries need window - 1 + its size), so a rewind (truncate) by at most the last batch appended
// always works; deeper rewinds throw Error once the copies they would need are gone. settle()
// keeps the last window tokens only (the bytes the formula counts), and the largest batch
// counts from there.
// Storage per KV head: blocks of kBlockTokens tokens, allocated as the sequence grows, so a
// kernel scans one contiguous block and nothing is ever copied to grow.
#pragma once
#include <memory>
#include <vector>

#include "kv/cache.h"
#include "kv/codecs/codec.h"

namespace h1bkv {

struct TierOptions {
  int64_t sink = 0;    // first tokens (by index) always exact
  int64_t window = 0;  // tokens with pos > query pos - window exact
};

class TieredLayerCache : public LayerCache {
 public:
  using LayerCache::LayerCache;
  virtual KeyCodec& key_codec() = 0;
  virtual const ValueCodec& value_codec() const = 0;
  // Bytes of the exact tier held now / allocated now (included in bytes() / capacity_bytes()).
  virtual size_t tier_bytes() const = 0;
  virtual size_t tier_capacity_bytes() const = 0;
  // Affine map of each query head's attention output: out = scale * out + bias, [n_head][d] each
  // (both empty = none). Equals the map applied to every value, since the weights sum to 1.
  virtual void set_output_affine(const std::vector<float>& scale, const std::vector<float>& bias) = 0;
};

std::unique_ptr<TieredLayerCache> make_tiered_layer_cache(const CacheGeometry& g,
                                                          std::unique_ptr<KeyCodec> kc,
                                                          std::unique_ptr<ValueCodec> vc,
                                                          TierOptions tiers = {});

std::unique_ptr<LayerCache> make_full_layer_cache(const CacheGeometry& g,
                                                  std::unique_ptr<KeyCodec> kc,
                                                  std::unique_ptr<ValueCodec> vc);

}  // namespace h1bkv
