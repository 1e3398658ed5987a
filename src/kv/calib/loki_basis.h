// Loki's PCA basis of the post-RoPE keys (Singhania et al. 2024, "Loki: Low-rank Keys for Efficient
// Sparse Attention", sec. 3-4), one per (layer, KV head), made by `h1bkv calibrate --cache loki` and
// loaded by the loki cache (kv/loki_cache.h). As in Loki (sklearn PCA over recorded keys), the
// keys are centered: the basis diagonalises the covariance E[(k - mu)(k - mu)^T]; scoring rotates
// the raw (uncentered) keys and queries, which preserves every dot product.
// File: JSON
//   {"format":"h1bkv-loki-basis","version":1,"model_id":..,"model":..,"n_layer":L,"n_kv_head":H,
//    "head_dim":d,"text":[..],"tokens":N,"centered":true,
//    "explained_mean":[d] (cumulative explained-variance fraction, mean over (layer, head)),
//    "basis":base64(f32 LE [L][H][d][d]),"mean":base64(f32 LE [L][H][d]),
//    "explained":base64(f32 LE [L][H][d])}
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kv/cache.h"

namespace h1bkv {

struct LokiBasis {
  std::string model_id, model;  // model: GGUF file name (informational)
  int n_layer = 0, n_kv_head = 0, head_dim = 0;
  std::vector<std::string> text;  // calibration text files
  int64_t tokens = 0;             // keys per (layer, head) the PCA saw
  // [n_layer][n_kv_head][d][d]: row j = j-th principal direction (unit), variance descending
  std::vector<float> basis;
  std::vector<float> mean;       // [n_layer][n_kv_head][d] mean key
  std::vector<float> explained;  // [n_layer][n_kv_head][d] variance fraction of directions 0..j

  const float* rows(int il, int h) const {
    return basis.data() + ((size_t)il * n_kv_head + h) * head_dim * head_dim;
  }
  // explained[.][.][j] averaged over (layer, head): [d]
  std::vector<double> explained_mean() const;
};

// Running first and second moments of one (layer, KV head)'s keys (double).
struct KeyMoments {
  int d = 0;
  double n = 0;
  std::vector<double> sum;   // [d]
  std::vector<double> sum2;  // [d][d], upper triangle (j >= i) filled
  explicit KeyMoments(int dim = 0) : d(dim), sum(dim, 0.0), sum2((size_t)dim * dim, 0.0) {}
  // n_tok keys at k + t * stride, each [d] f32
  void add(const float* k, int64_t n_tok, size_t stride);
};

// PCA of one head from its moments: basis [d][d] (rows, descending), mean [d], explained [d].
// Throws Error when no key was seen.
void pca_from_moments(const KeyMoments& m, float* basis, float* mean, float* explained);

void save_loki_basis(const std::string& path, const LokiBasis& b);
// Throws Error "PATH: ..." naming the field on a missing file, bad JSON, a wrong length or a
// basis that is not orthonormal.
LokiBasis load_loki_basis(const std::string& path);
// Throws Error "PATH: made for another model ..." or naming the geometry that differs.
void check_loki_basis_fits(const LokiBasis& b, const std::string& path, const CacheGeometry& g);

}  // namespace h1bkv
