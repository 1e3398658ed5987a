#include "kv/caches/h1b.h"

#include <cmath>

#include "kv/cache_types.h"
#include "kv/calib/h1b_calibration.h"
#include "kv/codecs/float.h"
#include "kv/caches/tiered.h"
#include "kv/codecs/int4.h"
#include "util/error.h"

namespace h1bkv {

H1bOptions h1b_options(const CacheSpec& spec) {
  check(spec.type == "h1b", "not an h1b cache spec: " + spec.str());
  H1bOptions o;
  o.sketch.bits = (int)spec.get_int("bits");
  o.sketch.est = sketch_est_from_name(spec.get("est"));
  o.sketch.T = (float)spec.get_float("T");
  o.sketch.per_head = spec.get("proj") == "head";
  o.sketch.seed = (uint64_t)spec.get_int("seed");
  o.group = (int)spec.get_int("group");
  o.sink = spec.get_int("sink");
  o.window = spec.get_int("window");
  return o;
}

void validate_h1b_spec(const CacheSpec& spec) {
  const double T = spec.get_float("T");
  check(T > 0 && std::isfinite(T), "cache 'h1b' option 'T': must be a number > 0 (got " + spec.get("T") + ")");
  check(spec.get_int("sink") >= 0, "cache 'h1b' option 'sink': must be >= 0");
  check(spec.get_int("window") >= 0, "cache 'h1b' option 'window': must be >= 0");
}

H1bCalibration H1bCalibration::identity(const CacheGeometry& g) {
  return H1bCalibration{g.n_layer, g.n_head, std::vector<float>((size_t)g.n_layer * g.n_head, 1.0f)};
}

std::unique_ptr<KvCache> make_h1b_cache(const CacheSpec& spec, const CacheGeometry& g,
                                        const H1bCalibration* cal) {
  validate_h1b_spec(spec);
  const H1bOptions o = h1b_options(spec);
  check(o.group == 0 || g.head_dim % o.group == 0,
        "cache 'h1b' option 'group': " + std::to_string(o.group) + " does not divide head_dim " +
            std::to_string(g.head_dim));
  std::vector<std::unique_ptr<LayerCache>> layers;
  for (int il = 0; il < g.n_layer; ++il)
    layers.push_back(make_tiered_layer_cache(g, std::make_unique<SketchKeyCodec>(g, il, o.sketch),
                                             make_int4_value(g.head_dim, o.group),
                                             TierOptions{o.sink, o.window}));
  auto cache = std::make_unique<KvCache>(spec.str(), g, cache_bytes_per_token(spec, g), std::move(layers));
  if (cal) set_h1b_calibration(*cache, *cal);
  return cache;
}

static SketchKeyCodec& sketch_of(KvCache& cache, int il) {
  auto* t = dynamic_cast<TieredLayerCache*>(&cache.layer(il));
  auto* s = t ? dynamic_cast<SketchKeyCodec*>(&t->key_codec()) : nullptr;
  check(s != nullptr, "cache '" + cache.spec() + "' is not an h1b cache");
  return *s;
}

void set_h1b_calibration(KvCache& cache, const H1bCalibration& cal) {
  const CacheGeometry& g = cache.geometry();
  check(cal.n_layer == g.n_layer && cal.n_head == g.n_head &&
            cal.mult.size() == (size_t)g.n_layer * g.n_head,
        "h1b calibration is for " + std::to_string(cal.n_layer) + " layers x " +
            std::to_string(cal.n_head) + " heads; the cache has " + std::to_string(g.n_layer) +
            " x " + std::to_string(g.n_head));
  for (int il = 0; il < g.n_layer; ++il)
    sketch_of(cache, il).set_multipliers(
        std::vector<float>(cal.mult.begin() + (size_t)il * g.n_head, cal.mult.begin() + (size_t)(il + 1) * g.n_head));
}

H1bCalibration get_h1b_calibration(KvCache& cache) {
  const CacheGeometry& g = cache.geometry();
  H1bCalibration cal = H1bCalibration::identity(g);
  for (int il = 0; il < g.n_layer; ++il) {
    const auto& m = sketch_of(cache, il).multipliers();
    std::copy(m.begin(), m.end(), cal.mult.begin() + (size_t)il * g.n_head);
  }
  return cal;
}

size_t h1b_bytes_per_token_head(const H1bOptions& o, int d) {
  return sketch_bytes(o.sketch) + int4_bytes(d, o.group);
}

double h1b_tier_bytes(const H1bOptions& o, const CacheGeometry& g) {
  return (double)(o.sink + o.window) * g.n_kv_head * g.head_dim * 4 * g.n_layer;
}

CacheTypeDef h1b_cache_type() {
  CacheTypeDef t;
  t.name = "h1b";
  t.help = "H1B-KV: keys as b-bit sign sketches, values int4, optional exact sinks/window";
  t.options = {{"bits", "enum:64|128|256|512", "256", "sketch bits per key and KV head"},
               {"est", "enum:hamming|angle|qjl", "hamming", "logit estimator (see kv/sketch.h)"},
               {"T", "float", "0.1", "hamming temperature: logit = (1 - 2h/b) / T"},
               {"group", "enum:0|32|64", "0", "int4 value group size (0 = whole head)"},
               {"proj", "enum:layer|head", "layer", "one projection per layer or per (layer, KV head)"},
               {"seed", "int", "42", "projection seed"},
               {"sink", "int", "0", "first tokens kept exact (f16)"},
               {"window", "int", "0", "most recent positions kept exact (f16)"}};
  t.calib = CalibUse::optional;
  t.validate = validate_h1b_spec;
  t.make = [](const CacheSpec& spec, const CacheGeometry& g, const std::string& calib) {
    auto cache = make_h1b_cache(spec, g);
    if (!calib.empty()) apply_calibration_file(*cache, calib);
    return cache;
  };
  t.bytes_per_token = [](const CacheSpec& spec, const CacheGeometry& g) {
    return (double)h1b_bytes_per_token_head(h1b_options(spec), g.head_dim) * g.n_kv_head * g.n_layer;
  };
  t.fixed_bytes = [](const CacheSpec& spec, const CacheGeometry& g) {
    return h1b_tier_bytes(h1b_options(spec), g);
  };
  return t;
}

}  // namespace h1bkv
