#include "kv/registry.h"

#include <cstdlib>
#include <sstream>

#include "kv/codec.h"
#include "kv/full_cache.h"
#include "kv/h1b_cache.h"
#include "util/error.h"

namespace h1bkv {

namespace {

std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

std::string codec_enum(const std::vector<std::string>& names) { return "enum:" + join(names, "|"); }

const CacheTypeDef* find_type(const std::string& name) {
  for (const auto& t : cache_types())
    if (t.name == name) return &t;
  return nullptr;
}

void check_value(const std::string& type, const CacheOptionDef& o, const std::string& v) {
  const std::string where = "cache '" + type + "' option '" + o.name + "'";
  if (o.kind == "int") {
    char* end = nullptr;
    std::strtoll(v.c_str(), &end, 10);
    check(!v.empty() && *end == 0, where + ": '" + v + "' is not an integer");
  } else if (o.kind == "float") {
    char* end = nullptr;
    std::strtod(v.c_str(), &end);
    check(!v.empty() && *end == 0, where + ": '" + v + "' is not a number");
  } else if (o.kind.rfind("enum:", 0) == 0) {
    std::stringstream ss(o.kind.substr(5));
    std::string item;
    std::vector<std::string> allowed;
    while (std::getline(ss, item, '|')) {
      if (item == v) return;
      allowed.push_back(item);
    }
    throw Error(where + ": '" + v + "' is not one of " + join(allowed));
  }
}

}  // namespace

const std::vector<CacheTypeDef>& cache_types() {
  static const std::vector<CacheTypeDef> types = {
      {"f16", "keys and values in fp16, all tokens (the reference cache)", {}},
      {"f32", "keys and values in fp32, all tokens", {}},
      {"plain", "separate key and value codecs, all tokens (what -ctk/-ctv select)",
       {{"k", codec_enum(key_codec_names()), "f16", "key codec"},
        {"v", codec_enum(value_codec_names()), "f16", "value codec"}}},
      {"h1b", "H1B-KV: keys as b-bit sign sketches, values int4, optional exact sinks/window",
       {{"bits", "enum:64|128|256|512", "256", "sketch bits per key and KV head"},
        {"est", "enum:hamming|angle|qjl", "hamming", "logit estimator (see kv/sketch.h)"},
        {"T", "float", "0.1", "hamming temperature: logit = (1 - 2h/b) / T"},
        {"group", "enum:0|32|64", "0", "int4 value group size (0 = whole head)"},
        {"proj", "enum:layer|head", "layer", "one projection per layer or per (layer, KV head)"},
        {"seed", "int", "42", "projection seed"},
        {"sink", "int", "0", "first tokens kept exact (f16)"},
        {"window", "int", "0", "most recent positions kept exact (f16)"}}},
  };
  return types;
}

std::string CacheSpec::str() const {
  const CacheTypeDef* t = find_type(type);
  std::string s = type, sep = ":";
  if (t)
    for (const auto& o : t->options) {
      auto it = opts.find(o.name);
      if (it != opts.end() && it->second != o.dflt) {
        s += sep + o.name + "=" + it->second;
        sep = ",";
      }
    }
  return s;
}

std::string CacheSpec::get(const std::string& key) const {
  auto it = opts.find(key);
  check(it != opts.end(), "cache '" + type + "' has no option '" + key + "'");
  return it->second;
}
int64_t CacheSpec::get_int(const std::string& key) const { return std::strtoll(get(key).c_str(), nullptr, 10); }
double CacheSpec::get_float(const std::string& key) const { return std::strtod(get(key).c_str(), nullptr); }

CacheSpec parse_cache_spec(const std::string& text) {
  const size_t colon = text.find(':');
  CacheSpec spec;
  spec.type = text.substr(0, colon);
  const CacheTypeDef* t = find_type(spec.type);
  if (!t) {
    std::vector<std::string> names;
    for (const auto& d : cache_types()) names.push_back(d.name);
    throw Error("unknown cache type '" + spec.type + "' (valid: " + join(names) + ")");
  }
  for (const auto& o : t->options) spec.opts[o.name] = o.dflt;
  if (colon == std::string::npos) return spec;
  std::stringstream ss(text.substr(colon + 1));
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    const std::string key = item.substr(0, eq);
    const CacheOptionDef* def = nullptr;
    for (const auto& o : t->options)
      if (o.name == key) def = &o;
    if (!def) {
      std::vector<std::string> names;
      for (const auto& o : t->options) names.push_back(o.name);
      throw Error("cache '" + spec.type + "' has no option '" + key + "' (valid: " +
                  (names.empty() ? std::string("none") : join(names)) + ")");
    }
    check(eq != std::string::npos, "cache '" + spec.type + "' option '" + key + "' needs a value (" + key + "=...)");
    const std::string val = item.substr(eq + 1);
    check_value(spec.type, *def, val);
    spec.opts[key] = val;
  }
  if (spec.type == "h1b") validate_h1b_spec(spec);
  return spec;
}

CacheSpec plain_cache_spec(const std::string& k, const std::string& v) {
  return parse_cache_spec("plain:k=" + k + ",v=" + v);
}

static void codec_names_of(const CacheSpec& s, std::string& k, std::string& v) {
  if (s.type == "plain") {
    k = s.get("k");
    v = s.get("v");
  } else {
    k = v = s.type;
  }
}

std::unique_ptr<KvCache> make_cache(const CacheSpec& spec, const CacheGeometry& g) {
  check(g.n_kv_head > 0 && g.n_head % g.n_kv_head == 0 && g.head_dim > 0 && g.n_ctx > 0,
        "invalid cache geometry");
  if (spec.type == "h1b") return make_h1b_cache(spec, g);
  std::string k, v;
  codec_names_of(spec, k, v);
  std::vector<std::unique_ptr<LayerCache>> layers;
  for (int il = 0; il < g.n_layer; ++il)
    layers.push_back(make_full_layer_cache(g, make_key_codec(k, g.head_dim),
                                           make_value_codec(v, g.head_dim)));
  return std::make_unique<KvCache>(spec.str(), g, cache_bytes_per_token(spec, g), std::move(layers));
}

double cache_bytes_per_token(const CacheSpec& spec, const CacheGeometry& g) {
  if (spec.type == "h1b")
    return (double)h1b_bytes_per_token_head(h1b_options(spec), g.head_dim) * g.n_kv_head * g.n_layer;
  std::string k, v;
  codec_names_of(spec, k, v);
  const size_t per_head = make_key_codec(k, g.head_dim)->bytes_per_vector() +
                          make_value_codec(v, g.head_dim)->bytes_per_vector();
  return (double)per_head * g.n_kv_head * g.n_layer;
}

double cache_fixed_bytes(const CacheSpec& spec, const CacheGeometry& g) {
  return spec.type == "h1b" ? h1b_tier_bytes(h1b_options(spec), g) : 0.0;
}

std::string cache_types_help() {
  std::string s;
  for (const auto& t : cache_types()) {
    s += t.name;
    if (!t.options.empty()) {
      std::vector<std::string> o;
      for (const auto& d : t.options) o.push_back(d.name + "=" + d.dflt);
      s += ":" + join(o, ",");
    }
    s += " | ";
  }
  return s.substr(0, s.size() - 3);
}

}  // namespace h1bkv
