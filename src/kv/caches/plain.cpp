// The plain caches: every token, keys and values each stored by one codec (codec.h).
#include <algorithm>

#include "kv/caches/tiered.h"
#include "kv/codecs/codec.h"
#include "kv/names.h"
#include "kv/registry.h"

namespace h1bkv {

namespace {

void codec_names_of(const CacheSpec& s, std::string& k, std::string& v) {
  if (s.type == "plain") {
    k = s.get("k");
    v = s.get("v");
  } else {
    k = v = s.type;
  }
}

std::unique_ptr<KvCache> make_plain(const CacheSpec& spec, const CacheGeometry& g, const std::string&) {
  std::string k, v;
  codec_names_of(spec, k, v);
  std::vector<std::unique_ptr<LayerCache>> layers;
  for (int il = 0; il < g.n_layer; ++il)
    layers.push_back(make_full_layer_cache(g, make_key_codec(k, g.head_dim),
                                           make_value_codec(v, g.head_dim)));
  return std::make_unique<KvCache>(spec.str(), g, cache_bytes_per_token(spec, g), std::move(layers));
}

double plain_bytes_per_token(const CacheSpec& spec, const CacheGeometry& g) {
  std::string k, v;
  codec_names_of(spec, k, v);
  const size_t per_head = make_key_codec(k, g.head_dim)->bytes_per_vector() +
                          make_value_codec(v, g.head_dim)->bytes_per_vector();
  return (double)per_head * g.n_kv_head * g.n_layer;
}

// examples: the type itself; exact: the float types, and plain with f32 keys and values.
CacheTypeDef plain_type(std::string name, std::string help, std::string color,
                        std::vector<CacheOptionDef> opts = {}) {
  CacheTypeDef t;
  t.name = std::move(name);
  t.help = std::move(help);
  t.options = std::move(opts);
  t.color = std::move(color);
  t.make = make_plain;
  t.bytes_per_token = plain_bytes_per_token;
  t.examples = {t.name};
  if (t.name == "f16" || t.name == "f32") t.exact_examples = {t.name};
  return t;
}

// Plot colours of the codecs that store both keys and values (others: the registry's default).
std::string codec_color(const std::string& codec) {
  return codec == "q8_0" ? "#1f77b4" : codec == "q4_0" ? "#17becf" : CacheTypeDef{}.color;
}

}  // namespace

void add_plain_cache_types(std::vector<CacheTypeDef>& types) {
  types.push_back(plain_type("f16", "keys and values in fp16, all tokens (the reference cache)", "#000000"));
  types.push_back(plain_type("f32", "keys and values in fp32, all tokens", "#7f7f7f"));
  const auto keys = key_codec_names(), values = value_codec_names();
  for (const auto& k : keys)  // every other codec that stores both keys and values
    if (k != "f16" && k != "f32" && std::find(values.begin(), values.end(), k) != values.end())
      types.push_back(plain_type(k, "keys and values as " + k + ", all tokens", codec_color(k)));
  CacheTypeDef plain = plain_type("plain", "separate key and value codecs, all tokens (what -ctk/-ctv select)",
                                  "#8c564b", {{"k", "enum:" + join_names(keys, "|"), "f16", "key codec"},
                                              {"v", "enum:" + join_names(values, "|"), "f16", "value codec"}});
  plain.examples = {"plain:k=q8_0,v=int4", "plain:k=f16,v=q4_0"};
  plain.exact_examples = {"plain:k=f32,v=f32"};
  types.push_back(plain);
}

}  // namespace h1bkv
