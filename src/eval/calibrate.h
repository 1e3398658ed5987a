// Training-free calibration of the H1B cache's logit multipliers (kv/calibration.h) on a text.
//   kl: per-(layer, head) KL fit of the H1B attention distribution to the exact one, over queries
//       at every stride-th position of n_ctx-token chunks run with an exact f16 cache
//       (kv/calibration_record.h); granularity pools the samples per head, layer or model.
//   lm: one global multiplier minimising the mean NLL (perplexity's scoring, eval/perplexity.h)
//       of the chunks run with the h1b cache, by golden-section search on log m in [1/8, 8].
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kv/caches/h1b.h"
#include "kv/registry.h"

namespace h1bkv {

class Model;

struct CalibParams {
  int64_t n_ctx = 512;
  int64_t max_chunks = -1;  // -1 = all
  int32_t bos = -1;         // replaces each chunk's first token when >= 0
  int stride = 4;           // kl: sampled query positions p with (p + 1) % stride == 0
  std::string granularity = "head";  // global | layer | head (lm: global only)
  std::string objective = "kl";      // kl | lm
  int lm_evals = 12;                 // lm: loss evaluations of the search
};

struct CalibResult {
  H1bCalibration cal;
  double before = 0, after = 0;  // kl: mean KL per sample; lm: mean NLL (nats)
  std::vector<double> layer_before, layer_after;  // [n_layer] kl: mean KL per layer
  int64_t n_chunks = 0, tokens = 0;
  double samples = 0;  // kl: (query, head) samples per layer
  double seconds = 0;
};

// Called after each chunk (kl) or loss evaluation (lm); for progress output.
using CalibProgress = std::function<void(int64_t done, int64_t total, double seconds)>;

CalibResult calibrate(Model& model, const CacheSpec& spec, const std::vector<int32_t>& tokens,
                      const CalibParams& p, const CalibProgress& progress = {});

// Runs the calibration chunks (p.n_ctx tokens each, BOS first when p.bos >= 0, at most
// p.max_chunks) through model, each from a cleared `cache` (a recording cache); returns how many.
// Throws Error when the text is shorter than one chunk.
int64_t run_calibration_chunks(Model& model, KvCache& cache, const std::vector<int32_t>& tokens,
                               const CalibParams& p, const CalibProgress& progress = {});

}  // namespace h1bkv
