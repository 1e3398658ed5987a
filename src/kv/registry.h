// Cache types by name, with typed options checked at parse time (kv/caches/, one file each):
//   "f16", "f32", "q8_0", "q4_0" keys and values by one codec, all tokens (plain.cpp)
//   "plain:k=f16,v=f32"        any key codec with any value codec (what -ctk/-ctv build)
//   "h1b:bits=256,est=qjl,..." H1B-KV sketch keys + int4 values (h1b.h)
//   "kivi:bits=2,..."          KIVI asymmetric quantization (kivi.h)
//   "evict:keep=0.125,..."     H2O token eviction (evict.h)
//   "loki:r=16,k=0.125"        Loki low-rank top-k selection (loki.h)
// Unknown names or options, and numbers that are not finite or out of their option's range, are
// an Error that lists the valid ones. A new type: one file in kv/caches/ that defines
// `void add_NAME_cache_types(std::vector<CacheTypeDef>&)` and one line in registry.cpp's list.
#pragma once
#include <functional>
#include <limits>
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
  // int and float: the valid range [min, max] ((min, max] when min_open), checked at parse time
  // (floats must be finite); an int option needs a range that fits the int64 it is read as.
  double min = -std::numeric_limits<double>::max(), max = std::numeric_limits<double>::max();
  bool min_open = false;
};

// Largest count an int option may take where it ends up in an int or an int32 position.
constexpr double kMaxCount = 2147483647.0;

struct CacheSpec;

// Whether a cache type takes a calibration file (`h1bkv calibrate -o FILE`, then --calib FILE or
// `TYPE:opts@FILE` in compare): h1b optionally (logit multipliers), loki always (its PCA basis).
enum class CalibUse { none, optional, required };

// Where a calibration file comes from (types with calib != none): a recording cache that the
// calibration text is run through (it attends as the f16 cache does, so the forward pass is
// f16's), then a fit of what it recorded, written as the file the type's make() takes.
struct CalibrationHook {
  // stride: queries are sampled at positions p with (p + 1) % stride == 0 where the fit uses them.
  std::function<std::unique_ptr<KvCache>(const CacheSpec&, const CacheGeometry&, int stride)> make_recorder;
  // Fits (with the type's default settings) and writes path; model and text name the model file
  // and the calibration texts in the file. Returns a summary for the user (may be empty).
  std::function<std::string(KvCache& recorder, const CacheSpec&, const std::string& model,
                            const std::vector<std::string>& text, const std::string& path)> save;
};

// One cache type: its options and how to build it. Each file of kv/caches/ defines its own and
// the registry lists them, so adding a cache type touches one file and one line.
struct CacheTypeDef {
  std::string name;
  std::string help;
  std::vector<CacheOptionDef> options;
  CalibUse calib = CalibUse::none;
  CalibrationHook calibration;  // set when calib != none
  std::string color = "#e377c2";  // its points and curve in the compare plot (SVG colour)
  // What it keeps depends on the geometry's n_ctx (evict's budget, a fraction of it): such a
  // cache is made for each sequence's own length; others may be made for a longer context and
  // give the same results (serve makes them for -c, so a kept cache can take a longer request).
  bool context_sized = false;
  // The conformance test (tests/kv/test_conformance.cpp) runs every spec of `examples` (typical
  // options; a calibration made with the hook where the type takes one) and checks every spec
  // of `exact_examples` (settings at full precision, where the type has them) against exact
  // attention within f16 rounding.
  std::vector<std::string> examples, exact_examples;
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
