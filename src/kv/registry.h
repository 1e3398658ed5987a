// Cache types by name, with typed options checked at parse time:
//   "f16"                      keys and values f16, all tokens
//   "f32"                      keys and values f32, all tokens
//   "plain:k=f16,v=f32"        any key codec with any value codec (what -ctk/-ctv build)
//   "h1b:bits=256,est=qjl,..." H1B-KV sketch keys + int4 values (kv/h1b_cache.h)
// Unknown names or options are an Error that lists the valid ones.
#pragma once
#include <functional>
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

struct CacheSpec;

// Whether a cache type takes a calibration file (`h1bkv calibrate -o FILE`, then --calib FILE or
// `TYPE:opts@FILE` in compare): h1b optionally (logit multipliers), loki always (its PCA basis).
enum class CalibUse { none, optional, required };

// One cache type: its options and how to build it. Each cache defines its own (kv/cache_types.h)
// and the registry lists them, so adding a cache touches one file and one line.
struct CacheTypeDef {
  std::string name;
  std::string help;
  std::vector<CacheOptionDef> options;
  CalibUse calib = CalibUse::none;
  // Checks what the option kinds cannot (ranges, combinations); throws Error. May be empty.
  std::function<void(const CacheSpec&)> validate;
  // calib: "" or a calibration file path (only when calib != none).
  std::function<std::unique_ptr<KvCache>(const CacheSpec&, const CacheGeometry&,
                                         const std::string& calib)> make;
  // Bytes per token, all layers, from the configuration.
  std::function<double(const CacheSpec&, const CacheGeometry&)> bytes_per_token;
  // Bytes held beside the per-token ones, all layers, in steady decoding. Empty = 0.
  std::function<double(const CacheSpec&, const CacheGeometry&)> fixed_bytes;
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

const CacheTypeDef& cache_type(const std::string& name);  // throws Error listing the valid names
// Throws Error when calib ("" = none) does not suit the type: a file for a type that takes none, or
// no file where one is required.
void check_calib_use(const CacheSpec& spec, const std::string& calib);
// The cache of spec; calib: a calibration file for the types that take one ("" = none; an Error
// for types that take none and for a missing one where it is required).
std::unique_ptr<KvCache> make_cache(const CacheSpec& spec, const CacheGeometry& g,
                                    const std::string& calib = "");
// Bytes per token, all layers, from the configuration.
double cache_bytes_per_token(const CacheSpec& spec, const CacheGeometry& g);
// Bytes held beside the per-token ones, all layers (h1b: the f16 sinks and window while
// decoding; kivi: its full-precision residual); 0 for the plain caches.
double cache_fixed_bytes(const CacheSpec& spec, const CacheGeometry& g);
// One-line help listing the types and their options (for --help and error messages).
std::string cache_types_help();

}  // namespace h1bkv
