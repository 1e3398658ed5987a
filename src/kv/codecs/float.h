// Constructors of the concrete codecs, for the one factory (codec_factory.cpp) and for caches
// that build codecs with options (h1b_cache.cpp).
#pragma once
#include <memory>

#include "kv/codecs/codec.h"

namespace h1bkv {

std::unique_ptr<KeyCodec> make_f32_key(int head_dim);
std::unique_ptr<KeyCodec> make_f16_key(int head_dim);
std::unique_ptr<ValueCodec> make_f32_value(int head_dim);
std::unique_ptr<ValueCodec> make_f16_value(int head_dim);

}  // namespace h1bkv
