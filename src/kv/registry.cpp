#include "kv/registry.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "kv/names.h"
#include "util/error.h"

// The cache types, in the order they are listed: one line per file of kv/caches/, which defines
// add_NAME_cache_types.
#define H1BKV_CACHE_FILES(X) \
  X(plain)                   \
  X(h1b)                     \
  X(kivi)                    \
  X(evict)                   \
  X(loki)

namespace h1bkv {

#define H1BKV_DECLARE_CACHE_FILE(name) void add_##name##_cache_types(std::vector<CacheTypeDef>& types);
H1BKV_CACHE_FILES(H1BKV_DECLARE_CACHE_FILE)
#undef H1BKV_DECLARE_CACHE_FILE

namespace {

std::string join(const std::vector<std::string>& v, const char* sep = ", ") { return join_names(v, sep); }

std::string range_text(const CacheOptionDef& o) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%s%.17g, %.17g]", o.min_open ? "(" : "[", o.min, o.max);
  return buf;
}


const CacheTypeDef* find_type(const std::string& name) {
  for (const auto& t : cache_types())
    if (t.name == name) return &t;
  return nullptr;
}

void check_value(const std::string& type, const CacheOptionDef& o, const std::string& v) {
  const std::string where = "cache '" + type + "' option '" + o.name + "'";
  if (o.kind == "int") {
    char* end = nullptr;
    errno = 0;
    const long long x = std::strtoll(v.c_str(), &end, 10);
    check(!v.empty() && *end == 0, where + ": '" + v + "' is not an integer");
    check(errno != ERANGE && (double)x >= o.min && (double)x <= o.max && !(o.min_open && (double)x == o.min),
          where + ": " + v + " is out of range (valid: " + range_text(o) + ")");
  } else if (o.kind == "float") {
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    check(!v.empty() && *end == 0, where + ": '" + v + "' is not a number");
    check(std::isfinite(x), where + ": '" + v + "' is not a finite number");
    check(x >= o.min && x <= o.max && !(o.min_open && x == o.min),
          where + ": " + v + " is out of range (valid: " + range_text(o) + ")");
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
  static const std::vector<CacheTypeDef> types = [] {
    std::vector<CacheTypeDef> t;
#define H1BKV_ADD_CACHE_FILE(name) add_##name##_cache_types(t);
    H1BKV_CACHE_FILES(H1BKV_ADD_CACHE_FILE)
#undef H1BKV_ADD_CACHE_FILE
    return t;
  }();
  return types;
}

const CacheTypeDef& cache_type(const std::string& name) {
  if (const CacheTypeDef* t = find_type(name)) return *t;
  std::vector<std::string> names;
  for (const auto& d : cache_types()) names.push_back(d.name);
  throw Error("unknown cache type '" + name + "' (valid: " + join(names) + ")");
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
  const CacheTypeDef* t = &cache_type(spec.type);
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
  if (t->validate) t->validate(spec);
  return spec;
}

CacheSpec plain_cache_spec(const std::string& k, const std::string& v) {
  return parse_cache_spec("plain:k=" + k + ",v=" + v);
}

void check_calib_use(const CacheSpec& spec, const std::string& calib) {
  const CacheTypeDef& t = cache_type(spec.type);
  check(calib.empty() || t.calib != CalibUse::none,
        "cache '" + spec.str() + "' takes no calibration file (" + calib + ")");
  check(!calib.empty() || t.calib != CalibUse::required,
        "cache '" + spec.str() + "' needs a calibration file: make one with 'h1bkv calibrate --cache " +
            spec.type + " -o FILE', then pass --calib FILE (compare: '" + spec.str() + "@FILE')");
}

std::unique_ptr<KvCache> make_cache(const CacheSpec& spec, const CacheGeometry& g,
                                    const std::string& calib) {
  check_cache_geometry(g);  // before the type's factory sizes anything from it
  check_calib_use(spec, calib);
  return cache_type(spec.type).make(spec, g, calib);
}

double cache_bytes_per_token(const CacheSpec& spec, const CacheGeometry& g) {
  return cache_type(spec.type).bytes_per_token(spec, g);
}

double cache_fixed_bytes(const CacheSpec& spec, const CacheGeometry& g) {
  const CacheTypeDef& t = cache_type(spec.type);
  return t.fixed_bytes ? t.fixed_bytes(spec, g) : 0.0;
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
