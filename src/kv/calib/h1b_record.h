// KL calibration of the H1B logit multipliers (h1bkv calibrate --objective kl).
// For a query (head h) over its n visible tokens: p = softmax(e), e_t = scale q.k_t with exact
// (f16) keys; the H1B logits of the same tokens are l_t(m) = e_t for exact-tier tokens (sinks,
// window) and m s_t for compressed ones (s_t: the uncalibrated sketch logit, kv/sketch.h). Then
//   KL(p || softmax(l(m))) = sum_t p_t log p_t - sum_exact p_t e_t - m sum_comp p_t s_t + lse_t l_t(m)
//   dKL/dm = E_{softmax(l(m))}[s 1_comp] - E_p[s 1_comp]
// is convex in m (lse of affine functions). Samples are summed on a log grid of m (value and
// derivative), pooled per head / layer / model, and the minimum is found by a secant on the
// derivative inside the bracketing grid cell (cubic Hermite for the KL there).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "kv/cache.h"
#include "kv/calib/h1b_kl_fit.h"
#include "kv/registry.h"

namespace h1bkv {

constexpr int kCalibGrid = 121;  // m_j = 2^(-6 + 12 j / 120): [1/64, 64], m_60 = 1
double calib_grid_m(int j);

struct KlCurve {
  double n = 0;                                // samples
  std::vector<double> kl = std::vector<double>(kCalibGrid, 0.0);    // [kCalibGrid] sum of KL(m_j)
  std::vector<double> grad = std::vector<double>(kCalibGrid, 0.0);  // [kCalibGrid] sum of dKL/dm
  void add(const KlCurve& o);
};

struct KlFit {
  double m = 1;          // minimiser (clamped to the grid)
  double kl_before = 0;  // mean KL at m = 1
  double kl_after = 0;   // mean KL at m
};
KlFit fit_kl_curve(const KlCurve& c);
// Mean KL at m: cubic Hermite in the grid cell holding m (clamped to the grid); 0 without samples.
double kl_at(const KlCurve& c, double m);

// Adds one query's sample: e: [n] exact logits, s: [n] uncalibrated compressed logits,
// exact: [n] 1 where the token stays exact in the H1B cache (s unused there).
void add_kl_sample(KlCurve& c, const float* e, const float* s, const uint8_t* exact, int64_t n);

// A cache for calibration runs: every layer attends exactly (an f16 cache, so the forward pass is
// that of the f16 cache) and, for queries at positions p with (p + 1) % stride == 0, adds a KL
// sample per query head comparing with the H1B cache of h1b_spec (uncalibrated, same tiers).
// When h1b_spec needs an adapter (center, itq, ridge, kl) it samples no KL and instead keeps the keys
// of every token past the sinks (index >= max(1, sink) in each sequence), at most
// kMaxFitKeys per (layer, KV head), for fit_h1b_adapter (h1b_fit.h). With kl > 0 it also keeps
// whole sequences (KlCapture: every key, and the queries at positions p with (p + 1) % stride == 0
// that see a compressed token), up to kMaxKlTokens tokens per layer.
std::unique_ptr<KvCache> make_recording_cache(const CacheSpec& h1b_spec, const CacheGeometry& g,
                                              int stride = 4);
// The curves recorded so far by such a cache: [n_layer][n_head]. Throws Error for another cache.
std::vector<std::vector<KlCurve>> recorded_curves(KvCache& cache);
void reset_recorded_curves(KvCache& cache);
constexpr int64_t kMaxFitKeys = 8192;
// The kept keys, [n_layer] -> [n_kv_head] -> [n][d]; valid while cache lives.
std::vector<const std::vector<std::vector<float>>*> recorded_keys(KvCache& cache);
constexpr int64_t kMaxKlTokens = 16384;
// The kept sequences, [n_layer] -> sequences (empty unless kl > 0); valid while cache lives.
std::vector<const std::vector<KlCapture>*> recorded_sequences(KvCache& cache);

}  // namespace h1bkv
