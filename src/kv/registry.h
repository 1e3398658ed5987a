// Cache types by name, with typed options checked at parse time:
//   "f16"                      keys and values f16, all tokens
//   "f32"                      keys and values f32, all tokens
//   "plain:k=f16,v=f32"        any key codec with any value codec (what -ctk/-ctv build)
//   "h1b:bits=256,est=qjl,..." H1B-KV sketch keys + int4 values (kv/h1b_cache.h)
// Unknown names or options are an Error that lists the valid ones.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kv/cache.h"

namespace h1bkv {

struct CacheOptionDef {
  std::string name;
  std::string kind;  // "int", "float", "string", or "enum:a|b|c"
  std::string dflt;
  std::string help;
};

struct CacheTypeDef {
  std::string name;
  std::string help;
  std::vector<CacheOptionDef> options;
};

// A parsed, validated cache specification.
struct CacheSpec {
  std::string type;
  std::map<std::string, std::string> opts;  // every option of the type, defaults filled in
  std::string str() const;                  // canonical "type:a=1,b=2" (only non-defaults)
  std::string get(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
};

const std::vector<CacheTypeDef>& cache_types();
// Parses "type[:key=value,...]"; throws Error on an unknown type/option or a bad value.
CacheSpec parse_cache_spec(const std::string& text);
// -ctk/-ctv: a spec with separate key and value codecs.
CacheSpec plain_cache_spec(const std::string& key_codec, const std::string& value_codec);

std::unique_ptr<KvCache> make_cache(const CacheSpec& spec, const CacheGeometry& g);
// Bytes per token, all layers, from the configuration.
double cache_bytes_per_token(const CacheSpec& spec, const CacheGeometry& g);
// Bytes held beside the per-token ones, all layers (h1b: the f16 sinks and window while
// decoding); 0 for the plain caches.
double cache_fixed_bytes(const CacheSpec& spec, const CacheGeometry& g);
// One-line help listing the types and their options (for --help and error messages).
std::string cache_types_help();

}  // namespace h1bkv
