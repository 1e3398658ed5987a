// Policy "all tokens": every appended token is held, coded by a key codec and a value codec.
// Storage per KV head: blocks of kBlockTokens tokens, allocated as the sequence grows, so a
// kernel scans one contiguous block and nothing is ever copied to grow.
#pragma once
#include <memory>

#include "kv/cache.h"
#include "kv/codec.h"

namespace h1bkv {

constexpr int64_t kBlockTokens = 64;

std::unique_ptr<LayerCache> make_full_layer_cache(const CacheGeometry& g,
                                                  std::unique_ptr<KeyCodec> kc,
                                                  std::unique_ptr<ValueCodec> vc);

}  // namespace h1bkv
