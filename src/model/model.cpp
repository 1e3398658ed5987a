#include "model/model.h"

#include <cmath>
#include <cstring>

#include "io/ggml_type.h"
#include "io/gguf.h"
#include "tensor/ops.h"
#include "tensor/pack.h"
#include "tensor/quant.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace h1bkv {

Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::string& path) {
  std::unique_ptr<Model> m(new Model());
  m->gguf_ = GgufFile::open(path);
  m->cfg_ = ModelConfig::from_gguf(*m->gguf_);
  m->bind();
  m->pack_weights();
  return m;
}

namespace {

// A matrix tensor [rows][cols] (GGUF ne = {cols, rows}) of a supported weight type.
WeightView bind_matrix(const GgufFile& g, const std::string& name, int64_t cols, int64_t rows) {
  const GgufTensor* t = g.find_tensor(name);
  check(t != nullptr, g.path() + ": missing tensor '" + name + "'");
  check(t->n_dims == 2 && t->ne[0] == cols && t->ne[1] == rows,
        g.path() + ": tensor '" + name + "' has shape [" + std::to_string(t->ne[0]) + ", " +
            std::to_string(t->ne[1]) + "], expected [" + std::to_string(cols) + ", " +
            std::to_string(rows) + "]");
  check(weight_type_supported(t->type), g.path() + ": tensor '" + name + "' has type " +
                                            ggml_type_name(t->type) + ", not supported for weights");
  WeightView w;
  w.type = t->type;
  w.rows = rows;
  w.cols = cols;
  w.row_bytes = t->n_bytes / rows;
  w.data = t->data;
  return w;
}

// A vector tensor [n] of any supported type, dequantized to f32.
std::vector<float> load_vector(const GgufFile& g, const std::string& name, int64_t n) {
  const GgufTensor* t = g.find_tensor(name);
  check(t != nullptr, g.path() + ": missing tensor '" + name + "'");
  check(t->n_elements == (uint64_t)n && t->ne[0] == n,
        g.path() + ": tensor '" + name + "' has " + std::to_string(t->n_elements) +
            " elements, expected " + std::to_string(n));
  check(weight_type_supported(t->type),
        g.path() + ": tensor '" + name + "' has unsupported type " + ggml_type_name(t->type));
  std::vector<float> v(n);
  dequantize_row(t->type, t->data, v.data(), n);
  return v;
}

// f(i) for the n rows of a batch, on the thread pool when there are more than 8.
template <class F>
void rows_parallel(int64_t n, F f) {
  if (n <= 8) {
    for (int64_t i = 0; i < n; ++i) f(i);
    return;
  }
  parallel_for(n, pool_chunk(n, pool_threads()), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) f(i);
  });
}

}  // namespace

void Model::bind() {
  const GgufFile& g = *gguf_;
  const ModelConfig& c = cfg_;
  const int64_t d = c.n_embd, qd = (int64_t)c.n_head * c.head_dim,
                kvd = (int64_t)c.n_kv_head * c.head_dim;
  tok_embd_ = bind_matrix(g, "token_embd.weight", d, c.n_vocab);
  output_ = c.tied_embeddings ? tok_embd_ : bind_matrix(g, "output.weight", d, c.n_vocab);
  output_norm_ = load_vector(g, "output_norm.weight", d);
  layers_.resize(c.n_layer);
  for (int il = 0; il < c.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    LayerWeights& L = layers_[il];
    L.attn_norm = load_vector(g, p + "attn_norm.weight", d);
    L.ffn_norm = load_vector(g, p + "ffn_norm.weight", d);
    L.wq = bind_matrix(g, p + "attn_q.weight", d, qd);
    L.wk = bind_matrix(g, p + "attn_k.weight", d, kvd);
    L.wv = bind_matrix(g, p + "attn_v.weight", d, kvd);
    L.wo = bind_matrix(g, p + "attn_output.weight", qd, d);
    L.w_gate = bind_matrix(g, p + "ffn_gate.weight", d, c.n_ff);
    L.w_up = bind_matrix(g, p + "ffn_up.weight", d, c.n_ff);
    L.w_down = bind_matrix(g, p + "ffn_down.weight", c.n_ff, d);
    if (c.qkv_bias) {
      L.bq = load_vector(g, p + "attn_q.bias", qd);
      L.bk = load_vector(g, p + "attn_k.bias", kvd);
      L.bv = load_vector(g, p + "attn_v.bias", kvd);
    }
  }
}

// Each matrix the active kernel path reads faster packed gets its packed copy (tensor/pack.h), and
// the file's pages of it are released: only the token embedding's lookups (a row per token) and
// a finetune's backward pass (train/matmul_frozen.cpp) read the file's layout after this, and
// they fault the pages they need back in.
void Model::pack_weights() {
  const auto pack = [&](WeightView& w) {
    if (!repack_wanted(w.type)) return;
    PackedBytes p = pack_lanes(w, [&](const uint8_t* b, size_t n) { gguf_->release_pages(b, n); });
    if (!p.data) return;
    gguf_->release_pages(w.data, (size_t)w.rows * w.row_bytes);  // the pages the ranges shared
    w.packed = p.data.get();
    packed_bytes_ += p.size;
    packed_file_bytes_ += (size_t)(w.rows / 16 * 16) * w.row_bytes;
    packed_.push_back(std::move(p));
  };
  pack(tok_embd_);
  if (cfg_.tied_embeddings)
    output_ = tok_embd_;
  else
    pack(output_);
  for (LayerWeights& L : layers_)
    for (WeightView* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) pack(*w);
}

CacheGeometry Model::cache_geometry(int64_t n_ctx) const {
  CacheGeometry g;
  g.n_layer = cfg_.n_layer;
  g.n_head = cfg_.n_head;
  g.n_kv_head = cfg_.n_kv_head;
  g.head_dim = cfg_.head_dim;
  g.n_ctx = n_ctx;
  g.model_id = gguf_->header_hash();
  return g;
}

size_t Model::weight_bytes() const {
  size_t b = 0;
  for (const auto& t : gguf_->tensors()) b += t.n_bytes;
  return b;
}

size_t Model::workspace_bytes(int64_t n) const {
  const ModelConfig& c = cfg_;
  const int64_t qd = (int64_t)c.n_head * c.head_dim, kvd = (int64_t)c.n_kv_head * c.head_dim;
  // x_, xb_, q_, k_, v_, att_, gate_, up_ as ensure_workspace sizes them
  const int64_t per_token = c.n_embd + std::max<int64_t>(c.n_embd, qd) + qd + 2 * kvd + qd + 2 * c.n_ff;
  return (size_t)n * (size_t)per_token * sizeof(float);
}

void Model::ensure_workspace(int64_t n) {
  if (n <= ws_n_) return;
  const ModelConfig& c = cfg_;
  const int64_t qd = (int64_t)c.n_head * c.head_dim, kvd = (int64_t)c.n_kv_head * c.head_dim;
  x_.assign(n * c.n_embd, 0);
  xb_.assign(n * std::max<int64_t>(c.n_embd, qd), 0);
  q_.assign(n * qd, 0);
  k_.assign(n * kvd, 0);
  v_.assign(n * kvd, 0);
  att_.assign(n * qd, 0);
  gate_.assign(n * c.n_ff, 0);
  up_.assign(n * c.n_ff, 0);
  ws_n_ = n;
}

// Throws naming where a NaN/Inf first appeared: a damaged weight or a calibration that overflows
// shows up at the first stage whose output it reaches, instead of as a printed 'nan' downstream.
// Every matmul input and everything stored in the cache is checked: a kernel that quantizes its
// input (or a cache that quantizes keys) could otherwise turn a NaN into a finite wrong number.
// layer < 0: a stage outside the layers. The message is built only when a value is not finite.
static void check_finite(const float* x, int64_t rows, int64_t cols, int32_t pos0, int layer,
                         const char* stage) {
  for (int64_t i = 0; i < rows * cols; ++i)
    if (!std::isfinite(x[i]))
      throw Error("non-finite value (" + std::to_string(x[i]) + ") in " +
                  (layer >= 0 ? "layer " + std::to_string(layer) + "'s " : std::string()) + stage +
                  " at position " + std::to_string(pos0 + i / cols) +
                  " (damaged weights, or a calibration/cache setting that overflows)");
}

static void add_bias(float* x, const std::vector<float>& b, int64_t n) {
  if (b.empty()) return;
  const int64_t m = (int64_t)b.size();
  for (int64_t i = 0; i < n; ++i) add_inplace(x + i * m, b.data(), m);
}

void Model::forward(const int32_t* tokens, int64_t n, int32_t pos0, KvCache& cache, float* logits,
                    bool all_logits) {
  const ModelConfig& c = cfg_;
  check(n > 0, "forward: no tokens");
  check(pos0 + n <= cache.n_ctx(), "context overflow: " + std::to_string(pos0 + n) +
                                       " tokens exceed the context size " +
                                       std::to_string(cache.n_ctx()) + " (raise -c)");
  for (int64_t i = 0; i < n; ++i)
    check(tokens[i] >= 0 && tokens[i] < c.n_vocab,
          "token id " + std::to_string(tokens[i]) + " is out of range [0, " +
              std::to_string(c.n_vocab) + ")");
  ensure_workspace(n);
  const int64_t d = c.n_embd, hd = c.head_dim, qd = (int64_t)c.n_head * hd,
                kvd = (int64_t)c.n_kv_head * hd;
  pos_.resize(n);
  for (int64_t i = 0; i < n; ++i) pos_[i] = pos0 + (int32_t)i;

  // x: [n][d] token embeddings
  for (int64_t i = 0; i < n; ++i)
    dequantize_row(tok_embd_.type, tok_embd_.data + (size_t)tokens[i] * tok_embd_.row_bytes,
                   x_.data() + i * d, d);
  check_finite(x_.data(), n, d, pos0, -1, "the token embeddings");

  const float scale = 1.0f / std::sqrt((float)hd);
  for (int il = 0; il < c.n_layer; ++il) {
    const LayerWeights& L = layers_[il];
    if (hook_) hook_->record(il, ForwardHook::Stage::layer_input, x_.data(), n, d);
    rows_parallel(n, [&](int64_t i) { rmsnorm(x_.data() + i * d, L.attn_norm.data(), xb_.data() + i * d, d, c.rms_eps); });
    check_finite(xb_.data(), n, d, pos0, il, "attention norm");
    // q: [n][n_head][hd], k and v: [n][n_kv][hd]; one pool job for the three
    matmul_many({{&L.wq, q_.data()}, {&L.wk, k_.data()}, {&L.wv, v_.data()}}, xb_.data(), n);
    if (hook_) hook_->project_qk(il, n, xb_.data(), q_.data(), k_.data());
    add_bias(q_.data(), L.bq, n);
    add_bias(k_.data(), L.bk, n);
    add_bias(v_.data(), L.bv, n);
    rows_parallel(n, [&](int64_t i) {
      rope(q_.data() + i * qd, c.n_head, (int)hd, c.n_rot, pos_[i], c.rope_base, c.rope_neox);
      rope(k_.data() + i * kvd, c.n_kv_head, (int)hd, c.n_rot, pos_[i], c.rope_base, c.rope_neox);
    });
    check_finite(q_.data(), n, qd, pos0, il, "queries");
    check_finite(k_.data(), n, kvd, pos0, il, "keys");
    check_finite(v_.data(), n, kvd, pos0, il, "values");
    LayerCache& lc = cache.layer(il);
    lc.append(n, pos_.data(), k_.data(), v_.data());
    if (!hook_ || !hook_->attend(il, n, pos_.data(), q_.data(), k_.data(), v_.data(), scale, att_.data()))
      lc.attend(n, pos_.data(), q_.data(), scale, att_.data());  // att: [n][n_head][hd]
    check_finite(att_.data(), n, qd, pos0, il, "attention output");
    matmul(L.wo, att_.data(), xb_.data(), n);
    add_inplace(x_.data(), xb_.data(), n * d);

    if (hook_) hook_->record(il, ForwardHook::Stage::ffn_input, x_.data(), n, d);
    rows_parallel(n, [&](int64_t i) { rmsnorm(x_.data() + i * d, L.ffn_norm.data(), xb_.data() + i * d, d, c.rms_eps); });
    check_finite(xb_.data(), n, d, pos0, il, "feed-forward norm");
    matmul_many({{&L.w_gate, gate_.data()}, {&L.w_up, up_.data()}}, xb_.data(), n);  // [n][n_ff] each
    if (hook_) {
      hook_->record(il, ForwardHook::Stage::ffn_gate, gate_.data(), n, c.n_ff);
      hook_->record(il, ForwardHook::Stage::ffn_up, up_.data(), n, c.n_ff);
    }
    swiglu(gate_.data(), up_.data(), n * c.n_ff);
    check_finite(gate_.data(), n, c.n_ff, pos0, il, "feed-forward");
    matmul(L.w_down, gate_.data(), xb_.data(), n);  // [n][d]
    add_inplace(x_.data(), xb_.data(), n * d);
    check_finite(x_.data(), n, d, pos0, il, "output");
  }

  if (hook_) hook_->record(-1, ForwardHook::Stage::output_input, x_.data(), n, d);
  const int64_t first = all_logits ? 0 : n - 1, m = n - first;
  for (int64_t i = first; i < n; ++i)
    rmsnorm(x_.data() + i * d, output_norm_.data(), xb_.data() + (i - first) * d, d, c.rms_eps);
  check_finite(xb_.data(), m, d, pos0 + (int32_t)first, -1, "the output norm");
  matmul(output_, xb_.data(), logits, m);  // logits: [m][n_vocab]
  check_finite(logits, m, c.n_vocab, pos0 + (int32_t)first, -1, "the output logits");
}

}  // namespace h1bkv
