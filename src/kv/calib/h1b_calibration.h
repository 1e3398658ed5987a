// H1B calibration files (`h1bkv calibrate -o FILE`, loaded with --calib FILE): per-(layer, query
// head) multipliers on the compressed-key logits (h1b_cache.h, H1bCalibration), as JSON:
//   {"format":"h1bkv-calib","version":1,"model_id":..,"model":..,"cache":"h1b:bits=..,..",
//    "granularity":"global|layer|head","objective":"kl|lm","text":[..],"tokens":N,
//    "mult":[[n_head] x n_layer],"kl_before":..,"kl_after":..}
// A file applies to a cache of the same model (model_id) and the same key options: bits, est,
// proj, seed, sink, window, orth, center, itq, ridge, kl, qhead (exact_layers may differ: exact layers take no
// multipliers). T may differ: hamming multipliers are rescaled by T_cache / T_file,
// so the effective logit m / T is the one fitted. group (values only) may differ.
#pragma once
#include <string>
#include <vector>

#include "kv/cache.h"
#include "kv/caches/h1b.h"
#include "kv/registry.h"

namespace h1bkv {

struct CalibrationFile {
  std::string model_id, model, cache;  // cache: calib_spec_string() of the fitted spec
  std::string granularity = "head", objective = "kl";
  std::vector<std::string> text;
  int64_t tokens = 0;
  H1bCalibration cal;
  double before = 0, after = 0;  // kl: mean KL of the fit samples; lm: mean NLL (nats)
};

// The spec with every option written out (defaults too): "h1b:bits=256,est=..,T=..,...".
std::string calib_spec_string(const CacheSpec& spec);

void save_calibration(const std::string& path, const CalibrationFile& f);
// Throws Error "PATH: ..." on a missing file, bad JSON or a malformed field.
CalibrationFile load_calibration(const std::string& path);
// Parses `fitted` (the spec a file was fitted for) and checks it is h1b with the key options of
// spec (bits, est, proj, seed, sink, window, orth, center, itq, ridge, kl, qhead); throws Error "PATH: ..."
// naming the option, with `label` ("fitted", "calibrated") before the file's spec. Returns it parsed.
CacheSpec check_fitted_key_options(const std::string& path, const std::string& fitted, const CacheSpec& spec,
                              const std::string& label);
// The multipliers of f for a cache of spec and geometry g (T rescaled as above); throws Error
// "PATH: ..." when f is for another model, cache configuration or geometry, or spec is not h1b.
H1bCalibration calibration_for(const CalibrationFile& f, const std::string& path,
                               const CacheSpec& spec, const CacheGeometry& g);
// load + calibration_for + set_h1b_calibration on cache (its spec and geometry).
void apply_calibration_file(KvCache& cache, const std::string& path);

}  // namespace h1bkv
