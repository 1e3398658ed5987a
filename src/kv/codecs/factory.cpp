// The codec factory: every codec selectable by name (plain caches, -ctk/-ctv).
#include "kv/codecs/block_quant.h"
#include "kv/codecs/codec.h"
#include "kv/codecs/float.h"
#include "kv/codecs/int4.h"
#include "kv/names.h"
#include "util/error.h"

namespace h1bkv {

std::vector<std::string> key_codec_names() { return {"f32", "f16", "q8_0", "q4_0"}; }
std::vector<std::string> value_codec_names() { return {"f32", "f16", "int4", "q8_0", "q4_0"}; }

std::unique_ptr<KeyCodec> make_key_codec(const std::string& name, int d) {
  if (name == "f32") return make_f32_key(d);
  if (name == "f16") return make_f16_key(d);
  if (name == "q8_0") return make_block_quant_key(BlockQuant::q8_0, d);
  if (name == "q4_0") return make_block_quant_key(BlockQuant::q4_0, d);
  throw Error("unknown key cache type '" + name + "' (valid: " + join_names(key_codec_names()) + ")");
}

std::unique_ptr<ValueCodec> make_value_codec(const std::string& name, int d) {
  if (name == "f32") return make_f32_value(d);
  if (name == "f16") return make_f16_value(d);
  if (name == "int4") return make_int4_value(d);
  if (name == "q8_0") return make_block_quant_value(BlockQuant::q8_0, d);
  if (name == "q4_0") return make_block_quant_value(BlockQuant::q4_0, d);
  throw Error("unknown value cache type '" + name + "' (valid: " + join_names(value_codec_names()) + ")");
}

}  // namespace h1bkv
