// The plain caches: every token, keys and values each stored by one codec (codec.h).
#include <algorithm>

#include "kv/cache_types.h"
#include "kv/codecs/codec.h"
#include "kv/caches/tiered.h"

namespace h1bkv {

namespace {

std::string join_bar(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : "|") + x;
  return s;
}

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

CacheTypeDef plain_type(std::string name, std::string help, std::vector<CacheOptionDef> opts = {}) {
  CacheTypeDef t;
  t.name = std::move(name);
  t.help = std::move(help);
  t.options = std::move(opts);
  t.make = make_plain;
  t.bytes_per_token = plain_bytes_per_token;
  return t;
}

}  // namespace

std::vector<CacheTypeDef> plain_cache_types() {
  std::vector<CacheTypeDef> types;
  types.push_back(plain_type("f16", "keys and values in fp16, all tokens (the reference cache)"));
  types.push_back(plain_type("f32", "keys and values in fp32, all tokens"));
  const auto keys = key_codec_names(), values = value_codec_names();
  for (const auto& k : keys)  // every other codec that stores both keys and values
    if (k != "f16" && k != "f32" && std::find(values.begin(), values.end(), k) != values.end())
      types.push_back(plain_type(k, "keys and values as " + k + ", all tokens"));
  types.push_back(plain_type("plain", "separate key and value codecs, all tokens (what -ctk/-ctv select)",
                             {{"k", "enum:" + join_bar(keys), "f16", "key codec"},
                              {"v", "enum:" + join_bar(values), "f16", "value codec"}}));
  return types;
}

}  // namespace h1bkv
