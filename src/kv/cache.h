// The KV-cache seam. The model hands each layer's cache the new post-RoPE keys and values and
// asks it for attention outputs; it never reads K or V back, so a cache may store keys as sign
// bits and values as nibbles. See docs/architecture.md.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace h1bkv {

struct CacheGeometry {
  int n_layer = 0;
  int n_head = 0;     // query heads
  int n_kv_head = 0;  // key/value heads (GQA: n_head % n_kv_head == 0)
  int head_dim = 0;
  int64_t n_ctx = 0;  // most tokens a sequence may hold
  // Identity of the model the cache serves (hash of its GGUF header; empty in unit tests):
  // calibration files record it, and loading one made for another model is an error.
  std::string model_id;
};

// The cache of one layer, all KV heads.
class LayerCache {
 public:
  virtual ~LayerCache() = default;
  // Appends n tokens. pos: [n], increasing and past every held position.
  // k, v: [n][n_kv_head][head_dim] f32, post-RoPE.
  virtual void append(int64_t n, const int32_t* pos, const float* k, const float* v) = 0;
  // Attention for n_q queries. q, out: [n_q][n_head][head_dim]; query i attends to the held
  // tokens whose position is <= q_pos[i]; scores are q.k * scale, softmax in f32.
  virtual void attend(int64_t n_q, const int32_t* q_pos, const float* q, float scale,
                      float* out) = 0;
  virtual int64_t n_tokens() const = 0;
  virtual size_t bytes() const = 0;           // bytes of codes held now (n_tokens x per-token)
  virtual size_t capacity_bytes() const = 0;  // bytes allocated for codes (whole blocks)
  virtual void clear() = 0;
  // Drops every token at index >= n (rewind). Throws Error where the policy cannot.
  virtual void truncate(int64_t n) = 0;
};

// The cache of a whole model: one LayerCache per layer plus its configuration.
class KvCache {
 public:
  KvCache(std::string spec, CacheGeometry geom, double bytes_per_token,
          std::vector<std::unique_ptr<LayerCache>> layers);
  const std::string& spec() const { return spec_; }
  const CacheGeometry& geometry() const { return geom_; }
  LayerCache& layer(int il) { return *layers_[il]; }
  int64_t n_tokens() const { return layers_.empty() ? 0 : layers_[0]->n_tokens(); }
  int64_t n_ctx() const { return geom_.n_ctx; }
  // Bytes per token of the configuration, all layers (from the formula, not measured).
  double bytes_per_token() const { return bytes_per_token_; }
  size_t bytes() const;           // held now, all layers
  size_t capacity_bytes() const;  // allocated now, all layers
  void clear();
  void truncate(int64_t n);

 private:
  std::string spec_;
  CacheGeometry geom_;
  double bytes_per_token_;
  std::vector<std::unique_ptr<LayerCache>> layers_;
};

}  // namespace h1bkv
