#include "eval/calibrate.h"

#include <cmath>

#include "eval/perplexity.h"
#include "kv/calib/h1b_record.h"
#include "model/model.h"
#include "util/error.h"
#include "util/timer.h"

namespace h1bkv {

namespace {

int64_t chunk_count(const std::vector<int32_t>& tokens, const CalibParams& p) {
  check(p.n_ctx >= 4, "calibration needs a context of at least 4 tokens");
  int64_t n = (int64_t)tokens.size() / p.n_ctx;
  check(n > 0, "the calibration text has " + std::to_string(tokens.size()) +
                   " tokens, fewer than one chunk of " + std::to_string(p.n_ctx) + " (use a smaller -c)");
  if (p.max_chunks >= 0 && p.max_chunks < n) n = p.max_chunks;
  return n;
}

}  // namespace

int64_t run_calibration_chunks(Model& model, KvCache& cache, const std::vector<int32_t>& tokens,
                               const CalibParams& p, const CalibProgress& progress) {
  const int64_t n = chunk_count(tokens, p);
  std::vector<int32_t> chunk(p.n_ctx);
  std::vector<float> logits(model.config().n_vocab);
  Timer timer;
  for (int64_t c = 0; c < n; ++c) {
    std::copy(tokens.begin() + c * p.n_ctx, tokens.begin() + (c + 1) * p.n_ctx, chunk.begin());
    if (p.bos >= 0) chunk[0] = p.bos;
    cache.clear();
    model.forward(chunk.data(), p.n_ctx, 0, cache, logits.data(), false);
    if (progress) progress(c + 1, n, timer.seconds());
  }
  return n;
}

namespace {

CalibResult calibrate_kl(Model& model, const CacheSpec& spec, const std::vector<int32_t>& tokens,
                         const CalibParams& p, const CalibProgress& progress) {
  const CacheGeometry g = model.cache_geometry(p.n_ctx);
  auto cache = make_recording_cache(spec, g, p.stride);
  CalibResult r;
  Timer timer;
  r.n_chunks = run_calibration_chunks(model, *cache, tokens, p, progress);
  r.tokens = r.n_chunks * p.n_ctx;
  const auto curves = recorded_curves(*cache);  // [n_layer][n_head]
  const int nl = g.n_layer, nh = g.n_head;
  // pool index of (layer, head)
  auto pool_of = [&](int il, int h) {
    return p.granularity == "head" ? il * nh + h : p.granularity == "layer" ? il : 0;
  };
  const int npool = p.granularity == "head" ? nl * nh : p.granularity == "layer" ? nl : 1;
  std::vector<KlCurve> pools(npool);
  for (int il = 0; il < nl; ++il)
    for (int h = 0; h < nh; ++h) pools[pool_of(il, h)].add(curves[il][h]);
  std::vector<double> m(npool);
  for (int k = 0; k < npool; ++k) m[k] = fit_kl_curve(pools[k]).m;
  r.cal = H1bCalibration::identity(g);
  r.layer_before.assign(nl, 0);
  r.layer_after.assign(nl, 0);
  double n_all = 0;
  for (int il = 0; il < nl; ++il) {
    double n_layer = 0;
    for (int h = 0; h < nh; ++h) {
      const KlCurve& c = curves[il][h];
      const double mh = m[pool_of(il, h)];
      r.cal.at(il, h) = (float)mh;
      r.layer_before[il] += kl_at(c, 1.0) * c.n;
      r.layer_after[il] += kl_at(c, mh) * c.n;
      n_layer += c.n;
    }
    r.before += r.layer_before[il];
    r.after += r.layer_after[il];
    n_all += n_layer;
    if (n_layer > 0) r.layer_before[il] /= n_layer, r.layer_after[il] /= n_layer;
  }
  if (n_all > 0) r.before /= n_all, r.after /= n_all;
  r.samples = nl > 0 ? n_all / nl : 0;
  r.seconds = timer.seconds();
  return r;
}

CalibResult calibrate_lm(Model& model, const CacheSpec& spec, const std::vector<int32_t>& tokens,
                         const CalibParams& p, const CalibProgress& progress) {
  check(p.granularity == "global", "objective lm fits one global multiplier (--granularity global)");
  check(p.lm_evals >= 3, "objective lm needs at least 3 loss evaluations");
  const CacheGeometry g = model.cache_geometry(p.n_ctx);
  auto cache = make_cache(spec, g);
  CalibResult r;
  r.n_chunks = chunk_count(tokens, p);
  r.tokens = r.n_chunks * p.n_ctx;
  PplParams pp;
  pp.n_ctx = p.n_ctx;
  pp.n_batch = p.n_ctx;
  pp.max_chunks = r.n_chunks;
  pp.bos = p.bos;
  Timer timer;
  int evals = 0;
  auto loss = [&](double u) {  // mean NLL at multiplier e^u
    H1bCalibration cal = H1bCalibration::identity(g);
    for (float& x : cal.mult) x = (float)std::exp(u);
    set_h1b_calibration(*cache, cal);
    const double nll = perplexity(model, *cache, tokens, pp).nll;
    if (progress) progress(++evals, p.lm_evals, timer.seconds());
    return nll;
  };
  // golden-section search on u = ln m in [ln 1/8, ln 8] (the loss at m = 1 counts as one eval)
  r.before = loss(0.0);
  double best_u = 0, best = r.before;
  const double phi = (std::sqrt(5.0) - 1) / 2;
  double a = std::log(0.125), b = std::log(8.0);
  double x1 = b - phi * (b - a), x2 = a + phi * (b - a), f1 = loss(x1), f2 = loss(x2);
  for (int k = 3; k < p.lm_evals; ++k) {
    if (f1 < f2) {
      b = x2, x2 = x1, f2 = f1, x1 = b - phi * (b - a), f1 = loss(x1);
    } else {
      a = x1, x1 = x2, f1 = f2, x2 = a + phi * (b - a), f2 = loss(x2);
    }
  }
  if (f1 < best) best = f1, best_u = x1;
  if (f2 < best) best = f2, best_u = x2;
  r.after = best;
  r.cal = H1bCalibration::identity(g);
  for (float& x : r.cal.mult) x = (float)std::exp(best_u);
  r.seconds = timer.seconds();
  return r;
}

}  // namespace

CalibResult calibrate(Model& model, const CacheSpec& spec, const std::vector<int32_t>& tokens,
                      const CalibParams& p, const CalibProgress& progress) {
  check(spec.type == "h1b", "calibration needs an h1b cache (got --cache " + spec.str() + ")");
  check(p.granularity == "global" || p.granularity == "layer" || p.granularity == "head",
        "granularity must be global, layer or head (got " + p.granularity + ")");
  if (p.objective == "kl") return calibrate_kl(model, spec, tokens, p, progress);
  if (p.objective == "lm") return calibrate_lm(model, spec, tokens, p, progress);
  throw Error("objective must be kl or lm (got " + p.objective + ")");
}

}  // namespace h1bkv
