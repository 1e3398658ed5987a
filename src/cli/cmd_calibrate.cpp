// h1bkv calibrate: fit the h1b cache's per-(layer, head) logit multipliers on calibration text
// (eval/calibrate.h) and write them as JSON (kv/calibration.h) for --calib; or, with --cache loki,
// the PCA basis of the keys (eval/calibrate_loki.h, kv/loki_basis.h).
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "eval/calibrate.h"
#include "eval/calibrate_loki.h"
#include "kv/calib/h1b_calibration.h"
#include "model/model.h"
#include "tokenize/tokenizer.h"
#include "util/error.h"
#include "util/file.h"

namespace h1bkv {

namespace {

struct CalibrateOptions {
  ModelOptions m;
  std::vector<std::string> files;
  std::string out;
  std::string granularity;  // "" = head (kl) / global (lm)
  std::string objective = "kl";
  int64_t chunks = -1;
  int stride = 4;
  int lm_evals = 12;

  void add_to(CLI::App& app) {
    m.add_to(app, 512, false);
    app.add_option("-f,--file", files, "calibration text files (not evaluation text)")->required();
    app.add_option("-o,--output", out, "calibration file to write (JSON)")->required();
    app.add_option("--granularity", granularity, "multipliers per: global | layer | head (kl default: head)");
    app.add_option("--objective", objective, "kl: fit attention distributions; lm: LM loss, global")
        ->capture_default_str();
    app.add_option("--chunks", chunks, "use at most N chunks of -c tokens (-1 = all)")->capture_default_str();
    app.add_option("--stride", stride, "kl: sample queries at every N-th position")->capture_default_str();
    app.add_option("--lm-evals", lm_evals, "lm: loss evaluations of the search")->capture_default_str();
  }
};

// --cache loki: PCA basis of the keys; prints the explained variance of the first r directions.
int calibrate_loki_cmd(const CalibrateOptions& o, Model& model, const CalibParams& p,
                       const std::vector<int32_t>& toks) {
  std::fprintf(stderr, "loki: PCA of the keys on %zu tokens of %zu file(s)\n", toks.size(), o.files.size());
  LokiCalibResult r = calibrate_loki(model, toks, p, [&](int64_t d, int64_t n, double s) {
    progress("chunks", d, n, s);
  });
  progress_done();
  r.basis.model = o.m.model;
  r.basis.text = o.files;
  save_loki_basis(o.out, r.basis);
  const std::vector<double> ev = r.basis.explained_mean();
  std::printf("explained variance (mean over layers and KV heads) of the first r directions:\n");
  for (int rr = 1; rr <= r.basis.head_dim; rr *= 2) std::printf("  r=%-4d %.4f\n", rr, ev[rr - 1]);
  std::printf("%lld chunks x %lld tokens in %.1f s; wrote %s\n", (long long)r.n_chunks,
              (long long)p.n_ctx, r.seconds, o.out.c_str());
  return 0;
}

int calibrate_cmd(CalibrateOptions& o) {
  const CacheSpec spec = o.m.resolve();
  check(spec.type == "h1b" || spec.type == "loki",
        "calibrate needs an h1b or loki cache (--cache h1b:... | loki), got " + spec.str());
  CalibParams p;
  p.n_ctx = o.m.n_ctx;
  p.max_chunks = o.chunks;
  p.stride = o.stride;
  p.objective = o.objective;
  p.granularity = !o.granularity.empty() ? o.granularity : o.objective == "lm" ? "global" : "head";
  p.lm_evals = o.lm_evals;
  check(p.stride >= 1, "--stride must be >= 1");
  apply_threads(o.m.threads);
  Loaded l = load_model(o.m.model);
  Model& model = *l.model;
  std::vector<int32_t> toks;
  for (const auto& f : o.files) {
    const auto t = l.tok->encode(read_file(f), true, false);
    toks.insert(toks.end(), t.begin(), t.end());
  }
  p.bos = l.tok->add_bos() ? l.tok->bos() : -1;
  if (spec.type == "loki") return calibrate_loki_cmd(o, model, p, toks);
  std::fprintf(stderr, "calibrating %s (objective %s, granularity %s) on %zu tokens of %zu file(s)\n",
               calib_spec_string(spec).c_str(), p.objective.c_str(), p.granularity.c_str(),
               toks.size(), o.files.size());
  const CalibResult r = calibrate(model, spec, toks, p, [&](int64_t d, int64_t n, double s) {
    progress(p.objective == "kl" ? "chunks" : "loss evals", d, n, s);
  });
  progress_done();

  CalibrationFile f;
  f.model_id = model.cache_geometry(p.n_ctx).model_id;
  f.model = o.m.model;
  f.cache = calib_spec_string(spec);
  f.granularity = p.granularity;
  f.objective = p.objective;
  f.text = o.files;
  f.tokens = r.tokens;
  f.cal = r.cal;
  f.before = r.before;
  f.after = r.after;
  save_calibration(o.out, f);

  const int nl = r.cal.n_layer, nh = r.cal.n_head;
  if (p.objective == "kl") {
    std::printf("layer  mean mult   min    max    KL before  KL after\n");
    for (int il = 0; il < nl; ++il) {
      double s = 0, lo = 1e30, hi = 0;
      for (int h = 0; h < nh; ++h) {
        const double x = r.cal.at(il, h);
        s += x, lo = std::min(lo, x), hi = std::max(hi, x);
      }
      std::printf("%5d  %9.4f  %6.3f %6.3f  %9.5f  %8.5f\n", il, s / nh, lo, hi, r.layer_before[il],
                  r.layer_after[il]);
    }
    std::printf("mean KL(exact || h1b) over %.0f (query, head) samples per layer: before %.5f, after %.5f\n",
                r.samples, r.before, r.after);
  } else {
    std::printf("global multiplier %.4f: mean NLL before %.5f, after %.5f (PPL %.4f -> %.4f)\n",
                r.cal.mult.empty() ? 1.0 : r.cal.mult[0], r.before, r.after, std::exp(r.before),
                std::exp(r.after));
  }
  std::printf("%lld chunks x %lld tokens in %.1f s; wrote %s\n", (long long)r.n_chunks,
              (long long)p.n_ctx, r.seconds, o.out.c_str());
  return 0;
}

}  // namespace

Action register_calibrate(CLI::App& app) {
  auto* sub = app.add_subcommand("calibrate", "fit h1b logit multipliers (or the loki PCA basis) on calibration text");
  auto o = std::make_shared<CalibrateOptions>();
  o->add_to(*sub);
  return [o] { return calibrate_cmd(*o); };
}

}  // namespace h1bkv
