#include "eval/calibrate_loki.h"

#include "kv/loki_record.h"
#include "model/model.h"
#include "util/error.h"
#include "util/timer.h"

namespace h1bkv {

LokiCalibResult calibrate_loki(Model& model, const std::vector<int32_t>& tokens, const CalibParams& p,
                               const CalibProgress& progress) {
  check(p.n_ctx >= 4, "calibration needs a context of at least 4 tokens");
  LokiCalibResult r;
  r.n_chunks = (int64_t)tokens.size() / p.n_ctx;
  check(r.n_chunks > 0, "the calibration text has " + std::to_string(tokens.size()) +
                            " tokens, fewer than one chunk of " + std::to_string(p.n_ctx) +
                            " (use a smaller -c)");
  if (p.max_chunks >= 0 && p.max_chunks < r.n_chunks) r.n_chunks = p.max_chunks;
  auto cache = make_loki_recording_cache(model.cache_geometry(p.n_ctx));
  std::vector<int32_t> chunk(p.n_ctx);
  std::vector<float> logits(model.config().n_vocab);
  Timer timer;
  for (int64_t c = 0; c < r.n_chunks; ++c) {
    std::copy(tokens.begin() + c * p.n_ctx, tokens.begin() + (c + 1) * p.n_ctx, chunk.begin());
    if (p.bos >= 0) chunk[0] = p.bos;
    cache->clear();
    model.forward(chunk.data(), p.n_ctx, 0, *cache, logits.data(), false);
    if (progress) progress(c + 1, r.n_chunks, timer.seconds());
  }
  r.basis = loki_basis_from_recording(*cache);
  r.seconds = timer.seconds();
  return r;
}

}  // namespace h1bkv
