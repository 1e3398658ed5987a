// A Llama-family model (llama, qwen2) bound to the tensors of a mapped GGUF file, and its
// forward pass. Weights stay in the mapping in their stored type; nothing is dequantized at load
// but the small norm vectors and biases.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kv/cache.h"
#include "model/config.h"
#include "tensor/matmul.h"
#include "tensor/pack.h"

namespace h1bkv {

class GgufFile;

struct LayerWeights {
  std::vector<float> attn_norm, ffn_norm;  // [n_embd]
  std::vector<float> bq, bk, bv;           // qwen2 biases: [n_head*hd], [n_kv*hd], [n_kv*hd]
  WeightView wq, wk, wv, wo;               // [n_head*hd][n_embd], [n_kv*hd][n_embd] x2, [n_embd][n_head*hd]
  WeightView w_gate, w_up, w_down;         // [n_ff][n_embd] x2, [n_embd][n_ff]
};

// Optional observer of Model::forward (training, src/train): sees the activations the backward
// pass needs and may replace the cache's attention. Unset (the default), forward pays one
// pointer test per stage.
class ForwardHook {
 public:
  enum class Stage {
    layer_input,   // [n][n_embd] residual stream entering layer il
    ffn_input,     // [n][n_embd] residual stream entering layer il's feed-forward
    ffn_gate,      // [n][n_ff] gate projection before SwiGLU
    ffn_up,        // [n][n_ff] up projection
    output_input,  // [n][n_embd] residual stream entering the output norm (il = -1)
  };
  virtual ~ForwardHook() = default;
  virtual void record(int il, Stage s, const float* x, int64_t n, int64_t cols) = 0;
  // Layer il's attention in place of the cache's (the cache still appends k, v). q: [n][n_head][hd],
  // k, v: [n][n_kv][hd] post-RoPE, out: [n][n_head][hd]. Returns false to let the cache attend.
  virtual bool attend(int il, int64_t n, const int32_t* pos, const float* q, const float* k,
                      const float* v, float scale, float* out) = 0;
  // Adds to layer il's projections q = Wq xb: [n][n_head*hd] and k = Wk xb: [n][n_kv*hd] (before
  // biases and RoPE) what an adapter adds (LoRA, model/lora.h); xb: [n][n_embd], the normed input.
  virtual void project_qk(int il, int64_t n, const float* xb, float* q, float* k) {}
};

// One sequence's part of a batch step (Model::forward_batch): n tokens at positions pos0 ..
// pos0+n-1 appended to cache; n = 1 for a decode step, more for a chunk of a prompt.
struct BatchSpan {
  const int32_t* tokens = nullptr;
  int64_t n = 0;
  int32_t pos0 = 0;
  KvCache* cache = nullptr;
};

class Model {
 public:
  // Opens and validates the file; throws Error naming the file and the problem.
  static std::unique_ptr<Model> load(const std::string& path);
  ~Model();

  const ModelConfig& config() const { return cfg_; }
  const GgufFile& gguf() const { return *gguf_; }
  CacheGeometry cache_geometry(int64_t n_ctx) const;
  size_t weight_bytes() const;  // bytes of all tensor data in the file
  // Bytes of the weights' copies packed at load for the active kernel path (tensor/pack.h; 0 when
  // none are: another path, or H1BKV_REPACK=0).
  size_t packed_bytes() const { return packed_bytes_; }
  size_t packed_file_bytes() const { return packed_file_bytes_; }  // the same rows' bytes in the file
  // Bytes of the workspace forward() allocates for n tokens per call.
  size_t workspace_bytes(int64_t n) const;

  // Runs tokens [n] at positions pos0 .. pos0+n-1, appending their K/V to cache.
  // logits: [n][n_vocab] when all_logits, else [n_vocab] for the last token only.
  // Throws Error on a token id out of range or when the cache would overflow.
  void forward(const int32_t* tokens, int64_t n, int32_t pos0, KvCache& cache, float* logits,
               bool all_logits);
  void set_forward_hook(ForwardHook* hook) { hook_ = hook; }  // nullptr: none

  // The frozen weights, for a backward pass.
  const LayerWeights& layer_weights(int il) const { return layers_[il]; }
  const WeightView& output_weight() const { return output_; }
  const std::vector<float>& output_norm() const { return output_norm_; }

  // Continuous batching (model/forward_batch.cpp): one decode step of n sequences, token[i] at
  // pos[i] appended to caches[i]. The weight matmuls run once over the n rows; each row attends
  // over its own cache, so a row's logits are the same as forward() of that token alone.
  // logits: [n][n_vocab]. Throws Error as forward() does, naming the row; nothing is appended
  // to any cache when a check before the first layer fails.
  void forward_batch(const int32_t* tokens, const int32_t* pos, KvCache* const* caches, int64_t n,
                     float* logits);
  // The same with chunked prefill: spans of any length share the weight matmuls; each span
  // appends to and attends over its own cache as forward() of that span alone would, so a
  // prompt run in chunks gives the logits of the whole prompt run at once.
  // logits: [n_spans][n_vocab], each span's last token.
  void forward_batch(const BatchSpan* spans, int64_t n_spans, float* logits);

 private:
  Model() = default;
  void bind();
  void pack_weights();
  void ensure_workspace(int64_t n);

  std::unique_ptr<GgufFile> gguf_;
  ModelConfig cfg_;
  WeightView tok_embd_, output_;  // [n_vocab][n_embd]
  std::vector<PackedBytes> packed_;  // what the views' `packed` point into
  size_t packed_bytes_ = 0, packed_file_bytes_ = 0;
  std::vector<float> output_norm_;
  std::vector<LayerWeights> layers_;
  ForwardHook* hook_ = nullptr;

  // Workspace for n tokens (grown on demand).
  int64_t ws_n_ = 0;
  std::vector<float> x_, xb_, q_, k_, v_, att_, gate_, up_;  // [n][...] row-major
  std::vector<int32_t> pos_;
};

}  // namespace h1bkv
