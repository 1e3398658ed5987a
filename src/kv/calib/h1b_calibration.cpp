#include "kv/calib/h1b_calibration.h"
#include "kv/calib/json_file.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace h1bkv {

namespace {

using json = nlohmann::json;

// Options that change the keys or which tokens are compressed; they must match.
const char* const kKeyOptions[] = {"bits", "est", "proj", "seed", "sink", "window", "orth", "center", "itq", "ridge", "kl", "qhead"};

std::string basename_of(const std::string& p) {
  const size_t s = p.find_last_of('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

}  // namespace

std::string calib_spec_string(const CacheSpec& spec) {
  std::string s = spec.type, sep = ":";
  for (const auto& t : cache_types())
    if (t.name == spec.type)
      for (const auto& o : t.options) {
        s += sep + o.name + "=" + spec.get(o.name);
        sep = ",";
      }
  return s;
}

void save_calibration(const std::string& path, const CalibrationFile& f) {
  using ojson = nlohmann::ordered_json;  // keys in the documented order
  ojson mult = ojson::array();
  for (int il = 0; il < f.cal.n_layer; ++il) {
    ojson row = ojson::array();
    for (int h = 0; h < f.cal.n_head; ++h) row.push_back(f.cal.at(il, h));
    mult.push_back(row);
  }
  const bool kl = f.objective == "kl";
  ojson j = {{"format", "h1bkv-calib"}, {"version", 1}, {"model_id", f.model_id},
            {"model", basename_of(f.model)}, {"cache", f.cache}, {"granularity", f.granularity},
            {"objective", f.objective}, {"text", f.text}, {"tokens", f.tokens},
            {"mult", mult}, {kl ? "kl_before" : "loss_before", f.before},
            {kl ? "kl_after" : "loss_after", f.after}};
  write_json_file(path, j);
}

CalibrationFile load_calibration(const std::string& path) {
  const json j = read_json_file(path);
  CalibrationFile f;
  try {
    check(j.is_object() && j.value("format", "") == "h1bkv-calib",
          path + ": not an h1bkv calibration file (format != \"h1bkv-calib\")");
    check(j.at("version").get<int>() == 1,
          path + ": calibration version " + j.at("version").dump() + " is not supported (1)");
    f.model_id = j.at("model_id").get<std::string>();
    f.model = j.value("model", "");
    f.cache = j.at("cache").get<std::string>();
    f.granularity = j.value("granularity", "");
    f.objective = j.value("objective", "");
    f.text = j.value("text", std::vector<std::string>{});
    f.tokens = j.value("tokens", (int64_t)0);
    f.before = j.value(f.objective == "lm" ? "loss_before" : "kl_before", 0.0);
    f.after = j.value(f.objective == "lm" ? "loss_after" : "kl_after", 0.0);
    const json& m = j.at("mult");
    check(m.is_array() && !m.empty() && m[0].is_array() && !m[0].empty(),
          path + ": \"mult\" must be a non-empty [n_layer][n_head] array");
    f.cal.n_layer = (int)m.size();
    f.cal.n_head = (int)m[0].size();
    for (const auto& row : m) {
      check(row.is_array() && (int)row.size() == f.cal.n_head,
            path + ": \"mult\" rows differ in length");
      for (const auto& x : row) {
        const double v = x.get<double>();
        check(std::isfinite(v) && v > 0, path + ": multiplier " + x.dump() + " is not a number > 0");
        f.cal.mult.push_back((float)v);
      }
    }
  } catch (const json::exception& e) {
    throw Error(path + ": bad calibration file (" + std::string(e.what()) + ")");
  }
  return f;
}

CacheSpec check_fitted_key_options(const std::string& path, const std::string& fitted, const CacheSpec& spec,
                              const std::string& label) {
  CacheSpec fs;
  try {
    fs = parse_cache_spec(fitted);
  } catch (const Error& e) {
    throw Error(path + ": bad cache spec '" + fitted + "' (" + e.what() + ")");
  }
  check(fs.type == "h1b", path + ": cache '" + fitted + "' is not an h1b cache");
  for (const char* k : kKeyOptions)
    check(fs.get(k) == spec.get(k), path + ": made for cache option " + k + "=" + fs.get(k) + ", the cache has " +
                                        k + "=" + spec.get(k) + " (" + label + ": " + fitted + ")");
  return fs;
}

H1bCalibration calibration_for(const CalibrationFile& f, const std::string& path,
                               const CacheSpec& spec, const CacheGeometry& g) {
  check(spec.type == "h1b", path + ": --calib applies to h1b caches only (the cache is " +
                                spec.str() + ")");
  check(f.model_id == g.model_id,
        path + ": made for another model (" + f.model + ", id " + f.model_id +
            "); this model's id is " + g.model_id);
  const CacheSpec fs = check_fitted_key_options(path, f.cache, spec, "calibrated");
  check(f.cal.n_layer == g.n_layer && f.cal.n_head == g.n_head,
        path + ": multipliers for " + std::to_string(f.cal.n_layer) + " layers x " +
            std::to_string(f.cal.n_head) + " heads; the model has " + std::to_string(g.n_layer) +
            " x " + std::to_string(g.n_head));
  H1bCalibration cal = f.cal;
  if (spec.get("est") == "hamming") {  // keep m / T: m' = m * T_cache / T_file
    const double r = spec.get_float("T") / fs.get_float("T");
    for (float& m : cal.mult) m = (float)(m * r);
  }
  return cal;
}

void apply_calibration_file(KvCache& cache, const std::string& path) {
  const CalibrationFile f = load_calibration(path);
  const CacheSpec spec = parse_cache_spec(cache.spec());
  set_h1b_calibration(cache, calibration_for(f, path, spec, cache.geometry()));
}

}  // namespace h1bkv
