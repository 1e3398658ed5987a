// The H1B-KV cache (arXiv 2510.05529): keys as b-bit sign sketches (sketch.h), values as int4
// (int4_codec.h), optional exact f16 sinks and recent window (full_cache.h), one softmax.
// Spec: "h1b:bits=256,est=hamming|angle|qjl,T=0.1,group=0|32|64,proj=layer|head,seed=42,
// sink=0,window=0,orth=0|1,center=0|1,itq=0,ridge=0,kl=0,qhead=0|1,exact_layers=0,exact=,exact_type=f16|q4"
// (registry.h). center, itq, ridge and kl are fitted by `h1bkv calibrate` into an adapter
// (kv/calib/adapter.h) that the cache then needs; the first exact_layers layers, or the layers
// listed by exact (e.g. exact=0+1+5; not both options), keep their keys in f16 or q4_0 instead of
// sketches (values int4 as elsewhere).
//
// Bytes per token, per layer and KV head (what bytes() counts for every held token):
//   b/8 sketch + 2 (fp16 ||k||, angle and qjl only) + d/2 value nibbles + 4 per value group
// (the exact-key layers: 2 d (f16) or 18 d / 32 (q4_0) key bytes instead of the sketch)
// plus the exact tier, which is not per token: f16 K and V (4 d bytes per layer and KV head)
// for min(n, sink) sinks and up to window - 1 + largest batch recent tokens (window > 0;
// window tokens after LayerCache::settle).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "kv/cache.h"
#include "kv/registry.h"
#include "kv/codecs/sketch.h"

namespace h1bkv {

struct H1bOptions {
  SketchOptions sketch;
  int group = 0;  // int4 value group, 0 = whole head
  int64_t sink = 0, window = 0;
  bool center = false;    // fit a key mean (adapter)
  int itq = 0;            // ITQ iterations on R (adapter); 0 = off
  double ridge = 0;       // ridge decoder A with lambda = ridge x samples (adapter); 0 = off
  int kl = 0;             // steps of attention-KL descent on R, A, multipliers (adapter; h1b_kl_fit.h); 0 = off
  bool qhead = false;     // qjl: kl trains a decoder A per query head, not per KV head (no bytes per token)
  int exact_layers = 0;   // first layers with exact keys (all layers when >= n_layer)
  std::vector<int> exact;  // or these layers (exact=0+1+5; distinct, any order)
  std::string exact_type = "f16";  // f16 | q4 (q4_0 blocks)
};
// Whether layer il keeps exact keys (exact_layers or the exact list).
bool h1b_exact_key_layer(const H1bOptions& o, int il);
// Throws Error when the exact list names a layer >= n_layer.
void check_h1b_exact_layers(const H1bOptions& o, int n_layer);
// Whether spec's options need a fitted adapter file (center, itq, ridge, kl).
bool h1b_needs_adapter(const H1bOptions& o);
H1bOptions h1b_options(const CacheSpec& spec);  // spec.type == "h1b"
// Checks the values the option kinds cannot (T > 0, sink/window >= 0); throws Error.
void validate_h1b_spec(const CacheSpec& spec);

// Calibration hook: a multiplier on every compressed-key logit of (layer, query head), for all
// estimators (hamming: an effective per-head temperature T / mult). 1 = uncalibrated.
struct H1bCalibration {
  int n_layer = 0, n_head = 0;
  std::vector<float> mult;  // [n_layer][n_head]
  static H1bCalibration identity(const CacheGeometry& g);
  float& at(int layer, int head) { return mult[(size_t)layer * n_head + head]; }
  float at(int layer, int head) const { return mult[(size_t)layer * n_head + head]; }
};

std::unique_ptr<KvCache> make_h1b_cache(const CacheSpec& spec, const CacheGeometry& g,
                                        const H1bCalibration* cal = nullptr);
// Replaces the multipliers of an h1b cache (not while it attends); throws Error for another cache
// type or a calibration of another geometry.
void set_h1b_calibration(KvCache& cache, const H1bCalibration& cal);
H1bCalibration get_h1b_calibration(KvCache& cache);

// Learned parameters of one layer (adapter.h; empty / 0 = default). Key parameters are ignored on
// exact-key layers.
struct H1bLayerParams {
  std::vector<float> k_mean, k_proj, q_proj, logit_mult, v_scale, v_bias;
  float temperature = 0;
};
void set_h1b_layer_params(KvCache& cache, int layer, const H1bLayerParams& p);

// Bytes per token of one sketched layer and KV head (the formula above).
size_t h1b_bytes_per_token_head(const H1bOptions& o, int head_dim);
// Bytes per token of all layers (exact-key layers counted as such).
double h1b_bytes_per_token(const H1bOptions& o, const CacheGeometry& g);
// Exact-tier bytes of all layers while decoding one token at a time with >= sink + window tokens.
double h1b_tier_bytes(const H1bOptions& o, const CacheGeometry& g);

}  // namespace h1bkv
