// h1bkv calibrate: fit the h1b cache's per-(layer, head) logit multipliers on calibration text
// (eval/calibrate.h) and write them as JSON (kv/calibration.h) for --calib; or, with --cache loki,
// the calibration of another type through its hook (kv/registry.h; loki: the PCA basis of the keys).
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "eval/calibrate.h"
#include "kv/calib/h1b_calibration.h"
#include "kv/names.h"
#include "model/model.h"
#include "tokenize/tokenizer.h"
#include "util/error.h"
#include "util/file.h"
#include "util/timer.h"

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
    app.add_option("-o,--output", out, "calibration file to write (JSON; h1b with center/itq/ridge: an adapter, safetensors)")->required();
    app.add_option("--granularity", granularity, "multipliers per: global | layer | head (kl default: head)");
    app.add_option("--objective", objective, "kl: fit attention distributions; lm: LM loss, global")
        ->capture_default_str();
    app.add_option("--chunks", chunks, "use at most N chunks of -c tokens (-1 = all)")->capture_default_str()
        ->check(chunks_range());
    app.add_option("--stride", stride, "kl: sample queries at every N-th position (<= -c)")->capture_default_str()
        ->check(int_range(1, kMaxTokens));
    app.add_option("--lm-evals", lm_evals, "lm: loss evaluations of the search")->capture_default_str()
        ->check(int_range(1, 10000));
  }
};

// A type's calibration hook (kv/registry.h): the text through its recording cache, then its fit,
// written to -o; prints the hook's summary.
int calibrate_hook_cmd(const CalibrateOptions& o, const CacheTypeDef& type, const CacheSpec& spec,
                       Model& model, const CalibParams& p, const std::vector<int32_t>& toks) {
  std::fprintf(stderr, "calibrating %s on %zu tokens of %zu file(s)\n", spec.str().c_str(), toks.size(),
               o.files.size());
  auto rec = type.calibration.make_recorder(spec, model.cache_geometry(p.n_ctx), p.stride);
  Timer timer;
  const int64_t n_chunks = run_calibration_chunks(model, *rec, toks, p, [&](int64_t d, int64_t n, double s) {
    progress("chunks", d, n, s);
  });
  progress_done();
  check(n_chunks > 0, "the calibration saw no tokens (check --chunks)");
  OutputFile out(o.out);  // written beside o.out, renamed into place when complete
  out.close_stream();
  const std::string summary = type.calibration.save(*rec, spec, o.m.model, o.files, out.temp_path());
  out.commit();
  if (!summary.empty()) std::printf("%s\n", summary.c_str());
  std::printf("%lld chunks x %lld tokens in %.1f s; wrote %s\n", (long long)n_chunks,
              (long long)p.n_ctx, timer.seconds(), o.out.c_str());
  return 0;
}

int calibrate_cmd(CalibrateOptions& o) {
  const CacheSpec spec = o.m.resolve();
  const CacheTypeDef& type = cache_type(spec.type);
  std::vector<std::string> calibrated;
  for (const auto& t : cache_types())
    if (t.calibration.make_recorder) calibrated.push_back(t.name);
  check(type.calibration.make_recorder != nullptr,
        "calibrate needs a cache type that takes a calibration file (" + join_names(calibrated) +
            "), got " + spec.str());
  CalibParams p;
  p.n_ctx = o.m.n_ctx;
  p.max_chunks = o.chunks;
  p.stride = o.stride;
  p.objective = o.objective;
  p.granularity = !o.granularity.empty() ? o.granularity : o.objective == "lm" ? "global" : "head";
  p.lm_evals = o.lm_evals;
  check(p.stride >= 1 && p.stride <= p.n_ctx,
        "--stride must be in [1, -c] = [1, " + std::to_string(p.n_ctx) +
            "]: a larger stride samples no query");
  std::vector<std::string> inputs = o.files;
  inputs.push_back(o.m.model);
  check_outputs_distinct(inputs, {o.out});
  for (const auto& f : o.files) check_regular_file(f);
  apply_threads(o.m.threads);
  Loaded l = load_model(o.m.model);
  Model& model = *l.model;
  check_memory("calibrate", cache_bytes(parse_cache_spec("f32"), model.cache_geometry(p.n_ctx)),
               (double)model.workspace_bytes(p.n_ctx), 4.0 * model.config().n_vocab);
  std::vector<int32_t> toks;
  for (const auto& f : o.files) {
    const auto t = l.tok->encode(read_file(f), true, false);
    toks.insert(toks.end(), t.begin(), t.end());
  }
  p.bos = l.tok->add_bos() ? l.tok->bos() : -1;
  // h1b has its own command (objectives kl and lm, per-layer tables); other types, and h1b's
  // adapter fits (center, itq, ridge), use their hook
  if (spec.type != "h1b" || h1b_needs_adapter(h1b_options(spec)))
    return calibrate_hook_cmd(o, type, spec, model, p, toks);
  std::fprintf(stderr, "calibrating %s (objective %s, granularity %s) on %zu tokens of %zu file(s)\n",
               calib_spec_string(spec).c_str(), p.objective.c_str(), p.granularity.c_str(),
               toks.size(), o.files.size());
  const CalibResult r = calibrate(model, spec, toks, p, [&](int64_t d, int64_t n, double s) {
    progress(p.objective == "kl" ? "chunks" : "loss evals", d, n, s);
  });
  progress_done();
  check(r.tokens > 0 && (p.objective != "kl" || r.samples > 0),
        "the calibration saw no tokens or sampled no query (check --chunks and --stride)");
  check_finite_result("the KL before calibration", r.before);
  check_finite_result("the KL after calibration", r.after);
  for (size_t k = 0; k < r.cal.mult.size(); ++k)
    check_finite_result("multiplier " + std::to_string(k), r.cal.mult[k]);

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
  OutputFile out(o.out);
  out.close_stream();
  save_calibration(out.temp_path(), f);
  out.commit();

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
