#include "cli/common.h"

#include <omp.h>
#include <unistd.h>

#include <cstdio>

#include "kv/calib/h1b_calibration.h"
#include "model/model.h"
#include "tokenize/tokenizer.h"
#include "util/error.h"

namespace h1bkv {

void ModelOptions::add_to(CLI::App& app, int64_t default_ctx, bool with_calib) {
  n_ctx = default_ctx;
  app.add_option("-m,--model", model, "GGUF model file")->required();
  app.add_option("-c,--ctx-size", n_ctx, "context size in tokens")->capture_default_str();
  app.add_option("-t,--threads", threads, "threads (0 = all cores)")->capture_default_str();
  app.add_option("--cache", cache, "KV cache: " + cache_types_help())->capture_default_str();
  app.add_option("--cache-type-k", ctk, "key codec (also -ctk; overrides --cache)");
  app.add_option("--cache-type-v", ctv, "value codec (also -ctv; overrides --cache)");
  if (with_calib)
    app.add_option("--calib", calib, "calibration file from 'h1bkv calibrate -o FILE' (h1b: logit multipliers)");
}

int apply_threads(int threads) {
  check(threads >= 0, "-t must be >= 0");
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

std::unique_ptr<KvCache> make_cache_for(const Model& model, const CacheSpec& spec,
                                        const ModelOptions& o) {
  return make_cache(spec, model.cache_geometry(o.n_ctx), o.calib);
}

Loaded load_model(const std::string& path) {
  Loaded l;
  l.model = Model::load(path);
  l.tok = Tokenizer::from_gguf(l.model->gguf());
  return l;
}

void progress(const std::string& label, int64_t done, int64_t total, double seconds) {
  if (!isatty(STDERR_FILENO)) return;
  const int width = 30;
  const int filled = total > 0 ? (int)(width * done / total) : 0;
  const double eta = done > 0 ? seconds / done * (total - done) : 0;
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
