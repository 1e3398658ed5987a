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

// Throws Error unless n_kv_head > 0, n_head % n_kv_head == 0 (GQA), head_dim > 0, n_ctx > 0.
void check_cache_geometry(const CacheGeometry& g);

// The cache of one layer, all KV heads. The public calls are the seam: they check what every
// cache type relies on, once, here (also in Release; no message is built unless a check fails),
// then call the type's implementation (do_append, do_attend, do_truncate).
class LayerCache {
 public:
  // Throws Error on an invalid geometry (check_cache_geometry).
  explicit LayerCache(const CacheGeometry& g);
  virtual ~LayerCache() = default;
  // Appends n tokens. pos: [n], increasing and past every held position.
  // k, v: [n][n_kv_head][head_dim] f32, post-RoPE.
  // Throws Error "context overflow: ..." when n_tokens() + n > n_ctx, and when n < 0, a pointer
  // is null or a position does not increase; nothing is appended then.
  void append(int64_t n, const int32_t* pos, const float* k, const float* v);
  // Attention for n_q queries. q, out: [n_q][n_head][head_dim]; query i attends to the held
  // tokens whose position is <= q_pos[i]; scores are q.k * scale, softmax in f32.
  void attend(int64_t n_q, const int32_t* q_pos, const float* q, float scale, float* out);
  int64_t n_tokens() const { return (int64_t)pos_.size(); }  // tokens appended (and not rewound)
  virtual size_t bytes() const = 0;           // bytes of codes held now (n_tokens x per-token)
  virtual size_t capacity_bytes() const = 0;  // bytes allocated for codes (whole blocks)
  void clear() { truncate(0); }
  // Drops every token at index >= n (rewind); n >= n_tokens() is a no-op. Throws Error for
  // n < 0 and where the policy cannot (do_truncate), keeping the tokens then.
  void truncate(int64_t n);
  // The caller is done with the last batch appended: it will not attend its queries again nor
  // rewind into it. A cache whose exact tier grew by that batch (for its queries and rewinds)
  // gives the excess back, so bytes() is then what decoding one token at a time holds, whatever
  // the batch sizes. Later rewinds or older queries may then throw Error.
  void settle() { do_settle(); }
  const CacheGeometry& geometry() const { return g_; }

 protected:
  // Position of each appended token, [n_tokens()], increasing. Inside do_append it holds the
  // tokens before the new ones; inside do_truncate(n) still all of them.
  const std::vector<int32_t>& positions() const { return pos_; }

 private:
  virtual void do_append(int64_t n, const int32_t* pos, const float* k, const float* v) = 0;
  virtual void do_attend(int64_t n_q, const int32_t* q_pos, const float* q, float scale, float* out) = 0;
  virtual void do_truncate(int64_t n) = 0;  // 0 <= n < n_tokens()
  virtual void do_settle() {}

  CacheGeometry g_;
  std::vector<int32_t> pos_;
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
  void settle();  // every layer's LayerCache::settle

 private:
  std::string spec_;
  CacheGeometry geom_;
  double bytes_per_token_;
  std::vector<std::unique_ptr<LayerCache>> layers_;
};

}  // namespace h1bkv
