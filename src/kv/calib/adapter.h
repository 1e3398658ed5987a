// Learned parameters of an h1b cache ("adapter"), in the safetensors layout:
//   u64 little-endian N, then N bytes of JSON {"NAME": {"dtype": "F32"|"F16", "shape": [..],
//   "data_offsets": [begin, end]}, ..., "__metadata__": {string: string}}, then the raw data
//   (offsets relative to its start, little-endian, no gaps or overlaps).
// __metadata__: format "h1bkv-adapter", version "1", model_id (as the JSON calibration files),
// cache (calib_spec_string of the spec it was fitted for), stage, text, tokens.
// Tensors, all optional (a missing one is the default), per layer L:
//   blk.L.k_mean     [n_kv_head][d]     centering mu: keys are sketched as k - mu
//   blk.L.k_proj     [n_kv_head][b][d]  R (replaces the seeded Gaussian)
//   blk.L.q_proj     [n_kv_head][b][d]  qjl decoder A: logit = scale mult ||k-mu|| <A q, s_k> (+ scale q.mu);
//                    [n_head][b][d] with the cache option qhead=1 (one A per query head)
//   blk.L.logit_mult [n_head]           multipliers on the sketched logits (the JSON file's "mult")
//   blk.L.v_scale, blk.L.v_bias [n_head][d]  head output -> v_scale * out + v_bias
//   temperature      [1]                global T: hamming uses it instead of the spec's T; angle and
//                                       qjl divide their sketched logits by it
//   blk.L.attn_q.lora_a [r][n_embd], blk.L.attn_q.lora_b [n_head*d][r], blk.L.attn_k.lora_{a,b}
//                    ([n_kv_head*d][r]): LoRA on Wq, Wk; the model's, not the cache's (model/lora.h
//                    applies them; apply_adapter ignores them)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kv/cache.h"
#include "kv/registry.h"

namespace h1bkv {

struct AdapterTensor {
  std::vector<int64_t> shape;  // empty with no data: absent
  std::vector<float> data;     // row-major, product of shape
  bool present() const { return !shape.empty(); }
};

struct AdapterLayer {
  AdapterTensor k_mean, k_proj, q_proj, logit_mult, v_scale, v_bias;
  AdapterTensor q_lora_a, q_lora_b, k_lora_a, k_lora_b;  // model/lora.h
};

struct Adapter {
  std::string model_id, cache, stage, text;
  int64_t tokens = 0;
  std::vector<AdapterLayer> layers;  // index = layer; may be shorter than the model (rest default)
  AdapterTensor temperature;
};

constexpr int kMaxAdapterLayers = 4096;

// f16: store tensors of more than kF16MinValues values (the projections and decoders) as F16,
// half the bytes; the rest, and everything without f16, as F32. Throws Error naming path.
constexpr size_t kF16MinValues = 4096;
void save_adapter(const std::string& path, const Adapter& a, bool f16 = false);
// Parses and checks the layout (every length and offset before use, dtypes, shapes against the
// data, names, metadata); throws Error "PATH: ..." (one line).
Adapter load_adapter(const std::string& path);
// Whether path holds a safetensors file rather than JSON (by content: the u64 header length fits
// the file and the header starts with '{').
bool is_adapter_file(const std::string& path);
// Throws Error "PATH: ..." when a is for another model or another key configuration of spec (the
// options in kAdapterKeyOptions), a shape does not fit g and spec's bits, or a layer is past g.
void check_adapter(const Adapter& a, const std::string& path, const CacheSpec& spec, const CacheGeometry& g);
// check_adapter, then sets the parameters on an h1b cache of that spec and geometry.
void apply_adapter(KvCache& cache, const Adapter& a, const std::string& path);

}  // namespace h1bkv
