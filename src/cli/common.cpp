#include "cli/common.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "kv/calib/adapter.h"
#include "kv/calib/h1b_calibration.h"
#include "model/lora.h"
#include "model/model.h"
#include "tokenize/tokenizer.h"
#include "util/error.h"
#include "util/file.h"

namespace h1bkv {

int max_threads() { return 8 * omp_get_num_procs(); }

namespace {

std::string range_text(const std::string& lo, const std::string& hi) {
  return "valid range [" + lo + ", " + hi + "]";
}

// A whole decimal integer (no trailing text, no exponent): "" and v set, or the error for s.
std::string parse_strict_int(const std::string& s, long long& v, const std::string& range) {
  errno = 0;
  char* end = nullptr;
  v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != 0) return "'" + s + "' is not an integer (" + range + ")";
  if (errno == ERANGE) return s + " is out of range (" + range + ")";
  return "";
}

}  // namespace

CLI::Validator int_range(int64_t lo, int64_t hi) {
  const std::string range = range_text(std::to_string(lo), std::to_string(hi));
  return CLI::Validator(
      [lo, hi, range](std::string& s) -> std::string {
        long long v = 0;
        if (std::string e = parse_strict_int(s, v, range); !e.empty()) return e;
        if (v < lo || v > hi) return s + " is out of range (" + range + ")";
        return "";
      },
      "INT in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

CLI::Validator float_range(double lo, double hi) {
  std::ostringstream a, b;
  a << lo;
  b << hi;
  const std::string range = range_text(a.str(), b.str());
  return CLI::Validator(
      [lo, hi, range](std::string& s) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        if (s.empty() || *end != 0) return "'" + s + "' is not a number (" + range + ")";
        if (!std::isfinite(v)) return s + " is not finite (" + range + ")";
        if (v < lo || v > hi) return s + " is out of range (" + range + ")";
        return "";
      },
      "FLOAT in [" + a.str() + ", " + b.str() + "]");
}

CLI::Validator chunks_range() {
  const int64_t hi = int64_t{1} << 31;
  return CLI::Validator(
      [hi](std::string& s) -> std::string {
        const std::string range = "-1 for all, or [1, " + std::to_string(hi) + "]";
        long long v = 0;
        if (std::string e = parse_strict_int(s, v, range); !e.empty()) return e;
        if (v != -1 && (v < 1 || v > hi)) return s + " is out of range (" + range + ")";
        return "";
      },
      "INT: -1 = all, or >= 1");
}

void check_finite_result(const std::string& what, double v) {
  check(std::isfinite(v), what + " is not finite (" + std::to_string(v) + ")");
}

namespace {

// MemAvailable in bytes, or a negative value when unknown.
double available_memory() {
  if (const char* lim = std::getenv("H1BKV_MEM_LIMIT"); lim && *lim) return std::strtod(lim, nullptr);
  std::ifstream f("/proc/meminfo");
  std::string key;
  double kb = 0;
  std::string unit;
  while (f >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024.0;
  return -1;
}

}  // namespace

void check_memory(const std::string& what, double cache, double workspace, double logits) {
  const double avail = available_memory();
  const double need = cache + workspace + logits;
  check(avail < 0 || need <= avail,
        what + " needs " + human_bytes(need) + " (cache " + human_bytes(cache) + " + workspace " +
            human_bytes(workspace) + " + logits " + human_bytes(logits) + "), more than the " +
            human_bytes(avail) + " of memory available; lower -c or the sizes");
}

double cache_bytes(const CacheSpec& spec, const CacheGeometry& geo) {
  return cache_bytes_per_token(spec, geo) * (double)geo.n_ctx + cache_fixed_bytes(spec, geo);
}

void ModelOptions::add_to(CLI::App& app, int64_t default_ctx, bool with_calib) {
  n_ctx = default_ctx;
  app.add_option("-m,--model", model, "GGUF model file")->required();
  app.add_option("-c,--ctx-size", n_ctx, "context size in tokens")->capture_default_str()
      ->check(int_range(1, kMaxTokens));
  app.add_option("-t,--threads", threads, "threads (0 = all cores)")->capture_default_str()
      ->check(int_range(0, max_threads()));
  app.add_option("--cache", cache, "KV cache: " + cache_types_help())->capture_default_str();
  app.add_option("--cache-type-k", ctk, "key codec (also -ctk; overrides --cache)");
  app.add_option("--cache-type-v", ctv, "value codec (also -ctv; overrides --cache)");
  if (with_calib)
    app.add_option("--calib", calib, "calibration file from 'h1bkv calibrate -o FILE' (h1b: logit multipliers)");
}

int apply_threads(int threads) {
  check(threads >= 0 && threads <= max_threads(),
        "-t must be in [0, " + std::to_string(max_threads()) + "]");
  const int n = threads > 0 ? threads : omp_get_num_procs();
  omp_set_num_threads(n);
  return n;
}

CacheSpec ModelOptions::resolve() const {
  check(n_ctx > 0, "-c must be positive");
  if (!ctk.empty() || !ctv.empty()) {
    const CacheSpec base = parse_cache_spec(cache);
    std::string k = ctk, v = ctv;
    const bool plain = base.type == "f16" || base.type == "f32" || base.type == "plain";
    check(plain, "-ctk/-ctv select codecs of the plain cache; they do not combine with --cache " +
                     cache);
    const std::string bk = base.type == "plain" ? base.get("k") : base.type;
    const std::string bv = base.type == "plain" ? base.get("v") : base.type;
    return plain_cache_spec(k.empty() ? bk : k, v.empty() ? bv : v);
  }
  return parse_cache_spec(cache);
}

std::unique_ptr<KvCache> make_cache_for(Model& model, const CacheSpec& spec, const ModelOptions& o) {
  auto cache = make_cache(spec, model.cache_geometry(o.n_ctx), o.calib);
  if (!o.calib.empty() && is_adapter_file(o.calib)) {
    const Adapter a = load_adapter(o.calib);
    if (adapter_has_lora(a)) {
      static std::vector<std::unique_ptr<LoraHook>> hooks;  // the model keeps a raw pointer
      hooks.push_back(std::make_unique<LoraHook>(model.config(), a, o.calib));
      model.set_forward_hook(hooks.back().get());
    }
  }
  return cache;
}

void refuse_lora(const std::string& calib, const std::string& cmd) {
  if (calib.empty() || !is_adapter_file(calib)) return;
  check(!adapter_has_lora(load_adapter(calib)),
        calib + ": has LoRA tensors, which " + cmd + " does not apply (run, ppl and bench do)");
}

void prefill_batched(Model& model, const int32_t* toks, int64_t n, KvCache& cache, float* logits, int64_t batch) {
  for (int64_t b = 0; b < n; b += batch)
    model.forward(toks + b, std::min(batch, n - b), (int32_t)b, cache, logits, false);
}

Loaded load_model(const std::string& path) {
  Loaded l;
  l.model = Model::load(path);
  l.tok = Tokenizer::from_gguf(l.model->gguf());
  return l;
}

void progress(const std::string& label, int64_t done, int64_t total, double seconds) {
  const double eta = done > 0 ? seconds / done * (total - done) : 0;
  if (!isatty(STDERR_FILENO)) {  // a log: one line per 5 % of the items (and the last)
    const int64_t step = std::max<int64_t>(1, total / 20);
    if (done == total || done % step == 0)
      std::fprintf(stderr, "%s %lld/%lld  %.0fs elapsed, ETA %.0fs\n", label.c_str(), (long long)done,
                   (long long)total, seconds, eta);
    return;
  }
  const int width = 30;
  const int filled = total > 0 ? (int)(width * done / total) : 0;
  std::fprintf(stderr, "\r%s [%.*s%*s] %lld/%lld  %.0fs elapsed, ETA %.0fs ", label.c_str(),
               filled, "##############################", width - filled, "", (long long)done,
               (long long)total, seconds, eta);
  std::fflush(stderr);
}

void progress_done() {
  if (isatty(STDERR_FILENO)) std::fprintf(stderr, "\n");
}

std::string human_bytes(double b) {
  char buf[64];
  if (b >= 1e9) std::snprintf(buf, sizeof buf, "%.2f GB", b / 1e9);
  else if (b >= 1e6) std::snprintf(buf, sizeof buf, "%.2f MB", b / 1e6);
  else if (b >= 1e3) std::snprintf(buf, sizeof buf, "%.2f KB", b / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f B", b);
  return buf;
}

}  // namespace h1bkv
