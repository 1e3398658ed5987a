#include "kv/caches/h1b.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "kv/calib/adapter.h"
#include "kv/calib/h1b_calibration.h"
#include "kv/calib/h1b_fit.h"
#include "kv/calib/h1b_record.h"
#include "kv/codecs/float.h"
#include "kv/caches/tiered.h"
#include "kv/codecs/int4.h"
#include "util/error.h"

namespace h1bkv {

namespace {

// "0+1+5" -> {0, 1, 5}; "" -> {}. Throws Error on anything else or a repeated layer.
std::vector<int> parse_exact_list(const std::string& text) {
  std::vector<int> out;
  if (text.empty()) return out;
  const std::string bad = "cache 'h1b' option 'exact': '" + text + "' is not a list of distinct layers like 0+1+5";
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, '+')) {
    check(!item.empty() && item.size() <= 4 && item.find_first_not_of("0123456789") == std::string::npos, bad);
    const int il = std::stoi(item);
    check(il < 4096 && std::find(out.begin(), out.end(), il) == out.end(), bad);
    out.push_back(il);
  }
  check(text.back() != '+', bad);
  return out;
}

}  // namespace

H1bOptions h1b_options(const CacheSpec& spec) {
  check(spec.type == "h1b", "needs an h1b cache (got " + spec.str() + ")");
  H1bOptions o;
  o.sketch.bits = (int)spec.get_int("bits");
  o.sketch.est = sketch_est_from_name(spec.get("est"));
  o.sketch.T = (float)spec.get_float("T");
  o.sketch.per_head = spec.get("proj") == "head";
  o.sketch.seed = (uint64_t)spec.get_int("seed");
  o.group = (int)spec.get_int("group");
  o.sink = spec.get_int("sink");
  o.window = spec.get_int("window");
  o.sketch.orth = spec.get("orth") == "1";
  o.center = spec.get("center") == "1";
  o.itq = (int)spec.get_int("itq");
  o.ridge = spec.get_float("ridge");
  o.kl = (int)spec.get_int("kl");
  o.qhead = spec.get("qhead") == "1";
  o.exact_layers = (int)spec.get_int("exact_layers");
  o.exact = parse_exact_list(spec.get("exact"));
  o.exact_type = spec.get("exact_type");
  return o;
}

bool h1b_exact_key_layer(const H1bOptions& o, int il) {
  return il < o.exact_layers || std::find(o.exact.begin(), o.exact.end(), il) != o.exact.end();
}

void check_h1b_exact_layers(const H1bOptions& o, int n_layer) {
  for (int il : o.exact)
    check(il < n_layer, "cache 'h1b' option 'exact': layer " + std::to_string(il) + " is past the model's " +
                            std::to_string(n_layer) + " layers (0.." + std::to_string(n_layer - 1) + ")");
}

bool h1b_needs_adapter(const H1bOptions& o) { return o.center || o.itq > 0 || o.ridge > 0 || o.kl > 0; }

void validate_h1b_spec(const CacheSpec& spec) {
  const double T = spec.get_float("T");
  check(T > 0 && std::isfinite(T), "cache 'h1b' option 'T': must be a number > 0 (got " + spec.get("T") + ")");
  check(spec.get_int("sink") >= 0, "cache 'h1b' option 'sink': must be >= 0");
  check(spec.get_int("window") >= 0, "cache 'h1b' option 'window': must be >= 0");
  check(spec.get_float("ridge") == 0 || spec.get("est") == "qjl",
        "cache 'h1b' option 'ridge': the decoder A is a qjl estimator (needs est=qjl)");
  check(spec.get_int("kl") == 0 || spec.get("est") == "qjl",
        "cache 'h1b' option 'kl': the attention-KL fit trains the qjl decoder A (needs est=qjl)");
  check(spec.get("qhead") == "0" || spec.get_int("kl") > 0,
        "cache 'h1b' option 'qhead': per-query-head decoders are trained by the attention-KL fit (needs kl > 0)");
  check(parse_exact_list(spec.get("exact")).empty() || spec.get_int("exact_layers") == 0,
        "cache 'h1b' options 'exact_layers' and 'exact': give the first N layers or a list, not both");
}

namespace {

const char* exact_key_codec(const H1bOptions& o) { return o.exact_type == "q4" ? "q4_0" : "f16"; }

}  // namespace

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
  check_h1b_exact_layers(o, g.n_layer);
  check(o.exact_type != "q4" || (o.exact_layers == 0 && o.exact.empty()) || g.head_dim % 32 == 0,
        "cache 'h1b' option 'exact_type': q4 needs head_dim divisible by 32 (got " + std::to_string(g.head_dim) + ")");
  std::vector<std::unique_ptr<LayerCache>> layers;
  for (int il = 0; il < g.n_layer; ++il) {
    std::unique_ptr<KeyCodec> kc;
    if (h1b_exact_key_layer(o, il)) kc = make_key_codec(exact_key_codec(o), g.head_dim);
    else kc = std::make_unique<SketchKeyCodec>(g, il, o.sketch);
    layers.push_back(make_tiered_layer_cache(g, std::move(kc), make_int4_value(g.head_dim, o.group),
                                             TierOptions{o.sink, o.window}));
  }
  auto cache = std::make_unique<KvCache>(spec.str(), g, cache_bytes_per_token(spec, g), std::move(layers));
  if (cal) set_h1b_calibration(*cache, *cal);
  return cache;
}

// The key codec of layer il, when the layer is a tiered cache (h1b's policy).
static KeyCodec& key_codec_of(KvCache& cache, int il) {
  auto* t = dynamic_cast<TieredLayerCache*>(&cache.layer(il));
  check(t != nullptr, "cache '" + cache.spec() + "' is not an h1b cache");
  return t->key_codec();
}

void set_h1b_calibration(KvCache& cache, const H1bCalibration& cal) {
  const CacheGeometry& g = cache.geometry();
  check(cal.n_layer == g.n_layer && cal.n_head == g.n_head &&
            cal.mult.size() == (size_t)g.n_layer * g.n_head,
        "h1b calibration is for " + std::to_string(cal.n_layer) + " layers x " +
            std::to_string(cal.n_head) + " heads; the cache has " + std::to_string(g.n_layer) +
            " x " + std::to_string(g.n_head));
  const H1bOptions o = h1b_options(parse_cache_spec(cache.spec()));
  for (int il = 0; il < g.n_layer; ++il) {
    if (h1b_exact_key_layer(o, il)) continue;  // exact-key layers: no multipliers
    check(key_codec_of(cache, il).set_logit_multipliers(std::vector<float>(
              cal.mult.begin() + (size_t)il * g.n_head, cal.mult.begin() + (size_t)(il + 1) * g.n_head)),
          "cache '" + cache.spec() + "' is not an h1b cache");
  }
}

H1bCalibration get_h1b_calibration(KvCache& cache) {
  const CacheGeometry& g = cache.geometry();
  H1bCalibration cal = H1bCalibration::identity(g);
  const H1bOptions o = h1b_options(parse_cache_spec(cache.spec()));
  for (int il = 0; il < g.n_layer; ++il) {
    if (h1b_exact_key_layer(o, il)) continue;
    const std::vector<float>* m = key_codec_of(cache, il).logit_multipliers();
    check(m != nullptr, "cache '" + cache.spec() + "' is not an h1b cache");
    std::copy(m->begin(), m->end(), cal.mult.begin() + (size_t)il * g.n_head);
  }
  return cal;
}

void set_h1b_layer_params(KvCache& cache, int il, const H1bLayerParams& p) {
  auto* t = dynamic_cast<TieredLayerCache*>(&cache.layer(il));
  check(t != nullptr, "cache '" + cache.spec() + "' is not an h1b cache");
  t->set_output_affine(p.v_scale, p.v_bias);
  auto* sk = dynamic_cast<SketchKeyCodec*>(&t->key_codec());
  if (!sk) return;  // an exact-key layer
  sk->set_mean(p.k_mean);
  sk->set_projection(p.k_proj);
  sk->set_decoder(p.q_proj);
  if (!p.logit_mult.empty()) sk->set_multipliers(p.logit_mult);
  if (p.temperature > 0) sk->set_temperature(p.temperature);
}

size_t h1b_bytes_per_token_head(const H1bOptions& o, int d) {
  return sketch_bytes(o.sketch) + int4_bytes(d, o.group);
}

double h1b_bytes_per_token(const H1bOptions& o, const CacheGeometry& g) {
  check_h1b_exact_layers(o, g.n_layer);
  int ex = 0;
  for (int il = 0; il < g.n_layer; ++il) ex += h1b_exact_key_layer(o, il);
  const size_t v = int4_bytes(g.head_dim, o.group);
  const size_t kx = ex > 0 ? make_key_codec(exact_key_codec(o), g.head_dim)->bytes_per_vector() : 0;
  return ((double)ex * (kx + v) + (double)(g.n_layer - ex) * h1b_bytes_per_token_head(o, g.head_dim)) * g.n_kv_head;
}

double h1b_tier_bytes(const H1bOptions& o, const CacheGeometry& g) {
  return (double)(o.sink + o.window) * g.n_kv_head * g.head_dim * 4 * g.n_layer;
}

namespace {

// The calibration hook's fit: KL per (layer, head) at the default settings (granularity head).
std::string save_h1b_calibration(KvCache& rec, const CacheSpec& spec, const std::string& model,
                                 const std::vector<std::string>& text, const std::string& path) {
  const CacheGeometry& g = rec.geometry();
  if (h1b_needs_adapter(h1b_options(spec))) {  // stage 0/1 fits into an adapter
    std::string summary;
    const auto seqs = recorded_sequences(rec);
    Adapter a = fit_h1b_adapter(spec, g, recorded_keys(rec), &summary, &seqs);
    std::string names;
    for (const auto& t : text) names += (names.empty() ? "" : ",") + t.substr(t.find_last_of('/') + 1);
    a.text = names;
    save_adapter(path, a, /*f16=*/true);
    return summary;
  }
  const auto curves = recorded_curves(rec);  // [n_layer][n_head]
  CalibrationFile f;
  f.model_id = g.model_id;
  f.model = model;
  f.cache = calib_spec_string(spec);
  f.text = text;
  f.tokens = rec.n_tokens();
  f.cal = H1bCalibration::identity(g);
  double n = 0;
  for (int il = 0; il < g.n_layer; ++il)
    for (int h = 0; h < g.n_head; ++h) {
      const KlCurve& c = curves[il][h];
      const KlFit fit = fit_kl_curve(c);
      f.cal.at(il, h) = (float)fit.m;
      f.before += fit.kl_before * c.n;
      f.after += fit.kl_after * c.n;
      n += c.n;
    }
  if (n > 0) f.before /= n, f.after /= n;
  save_calibration(path, f);
  char buf[128];
  std::snprintf(buf, sizeof buf, "mean KL(exact || h1b) over %.0f samples: before %.5f, after %.5f", n,
                f.before, f.after);
  return buf;
}

}  // namespace

void add_h1b_cache_types(std::vector<CacheTypeDef>& types) {
  CacheTypeDef t;
  t.name = "h1b";
  t.help = "H1B-KV: keys as b-bit sign sketches, values int4, optional exact sinks/window";
  t.options = {{"bits", "enum:64|128|192|256|320|384|448|512", "256", "sketch bits per key and KV head (a multiple of 64)"},
               {"est", "enum:hamming|angle|qjl", "hamming", "logit estimator (see kv/sketch.h)"},
               {"T", "float", "0.1", "hamming temperature: logit = (1 - 2h/b) / T", 0, 1e6, true},
               {"group", "enum:0|32|64", "0", "int4 value group size (0 = whole head)"},
               {"proj", "enum:layer|head", "layer", "one projection per layer or per (layer, KV head)"},
               {"seed", "int", "42", "projection seed", 0, 4294967295.0},
               {"sink", "int", "0", "first tokens kept exact (f16)", 0, kMaxCount},
               {"window", "int", "0", "most recent positions kept exact (f16)", 0, kMaxCount},
               {"orth", "enum:0|1", "0", "QR-orthogonalized projection blocks of head_dim rows (QJL)"},
               {"center", "enum:0|1", "0", "sketch k - mu, mu per (layer, KV head) from calibrate (adapter)"},
               {"itq", "int", "0", "ITQ iterations rotating R per head_dim-row block (calibrate; adapter)", 0, 1000},
               {"ridge", "float", "0", "qjl: ridge decoder A, lambda = ridge x samples (calibrate; adapter); 0 = off", 0, 1e6},
               {"kl", "int", "0", "qjl: steps of attention-KL descent on R, A and per-head multipliers (calibrate; adapter); 0 = off", 0, 100000},
               {"qhead", "enum:0|1", "0", "qjl: kl trains a decoder A per query head instead of per KV head (adapter; no bytes per token)"},
               {"exact_layers", "int", "0", "first layers whose keys stay exact (exact_type)", 0, 4096},
               {"exact", "string", "", "layers whose keys stay exact, e.g. 0+1+5 (instead of exact_layers)"},
               {"exact_type", "enum:f16|q4", "f16", "keys of the exact layers: f16 or q4_0"}};
  t.calib = CalibUse::optional;
  t.calibration.make_recorder = [](const CacheSpec& spec, const CacheGeometry& g, int stride) {
    return make_recording_cache(spec, g, stride);
  };
  t.calibration.save = save_h1b_calibration;
  t.color = "#d62728";
  t.examples = {"h1b", "h1b:bits=256,est=qjl,sink=4,window=64", "h1b:bits=64,est=angle,group=32,proj=head",
                "h1b:sink=260,window=20", "h1b:bits=128,est=qjl,center=1,sink=4,window=16",
                "h1b:bits=128,est=angle,orth=1,center=1", "h1b:bits=128,est=qjl,orth=1,exact_layers=1",
                "h1b:bits=64,est=qjl,exact_layers=1,exact_type=q4,sink=2",
                "h1b:bits=64,est=qjl,orth=1,center=1,kl=2,exact=1,exact_type=q4,sink=2,window=8",
                "h1b:bits=128,est=qjl,orth=1,center=1,itq=3,ridge=0.01,window=8", "h1b:est=hamming,center=1,itq=2",
                "h1b:bits=64,est=qjl,orth=1,center=1,kl=3,sink=2,window=8"};
  t.exact_examples = {"h1b:window=1048576"};  // the window covers every token: all f16
  t.validate = validate_h1b_spec;
  t.make = [](const CacheSpec& spec, const CacheGeometry& g, const std::string& calib) {
    const bool adapter = !calib.empty() && is_adapter_file(calib);
    check(adapter || !h1b_needs_adapter(h1b_options(spec)),
          "cache '" + spec.str() + "' (center, itq, ridge or kl) needs an adapter: make one with 'h1bkv calibrate --cache " +
              spec.str() + " -f TEXT -o FILE', then pass --calib FILE (compare: '" + spec.str() + "@FILE')" +
              (calib.empty() ? "" : "; " + calib + " is a JSON calibration"));
    auto cache = make_h1b_cache(spec, g);
    if (adapter) apply_adapter(*cache, load_adapter(calib), calib);
    else if (!calib.empty()) apply_calibration_file(*cache, calib);
    return cache;
  };
  t.bytes_per_token = [](const CacheSpec& spec, const CacheGeometry& g) {
    return h1b_bytes_per_token(h1b_options(spec), g);
  };
  t.fixed_bytes = [](const CacheSpec& spec, const CacheGeometry& g) {
    return h1b_tier_bytes(h1b_options(spec), g);
  };
  types.push_back(t);
}

}  // namespace h1bkv
