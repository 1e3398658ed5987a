#include "eval/calibrate_loki.h"

#include "kv/calib/loki_record.h"
#include "model/model.h"
#include "util/error.h"
#include "util/timer.h"

namespace h1bkv {

LokiCalibResult calibrate_loki(Model& model, const std::vector<int32_t>& tokens, const CalibParams& p,
                               const CalibProgress& progress) {
  LokiCalibResult r;
  auto cache = make_loki_recording_cache(model.cache_geometry(p.n_ctx));
  Timer timer;
  r.n_chunks = run_calibration_chunks(model, *cache, tokens, p, progress);
  r.basis = loki_basis_from_recording(*cache);
  r.seconds = timer.seconds();
  return r;
}

}  // namespace h1bkv
