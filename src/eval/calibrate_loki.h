// Loki calibration (h1bkv calibrate --cache loki): runs the model over n_ctx-token chunks of a
// calibration text with a key-recording f16 cache (kv/loki_record.h) and takes the PCA of the
// post-RoPE keys per (layer, KV head) (kv/loki_basis.h).
#pragma once
#include <cstdint>
#include <vector>

#include "eval/calibrate.h"
#include "kv/calib/loki_basis.h"

namespace h1bkv {

class Model;

struct LokiCalibResult {
  LokiBasis basis;  // text and model left empty for the caller
  int64_t n_chunks = 0;
  double seconds = 0;
};

// Uses p.n_ctx, p.max_chunks and p.bos. Throws Error when the text is shorter than one chunk.
LokiCalibResult calibrate_loki(Model& model, const std::vector<int32_t>& tokens, const CalibParams& p,
                               const CalibProgress& progress = {});

}  // namespace h1bkv
