// Model::forward_batch: forward() for n independent sequences, one token each.
#include <cmath>
#include <exception>
#include <string>
#include <vector>

#include "model/model.h"
#include "tensor/ops.h"
#include "tensor/quant.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace h1bkv {

namespace {

// x: [n][cols]; throws naming the first non-finite value's row (sequence) and stage.
void check_rows_finite(const float* x, int64_t n, int64_t cols, int layer, const char* stage) {
  for (int64_t i = 0; i < n * cols; ++i)
    if (!std::isfinite(x[i]))
      throw Error("non-finite value in " +
                  (layer >= 0 ? "layer " + std::to_string(layer) + "'s " : std::string()) + stage +
                  " of batch row " + std::to_string(i / cols));
}

void add_bias_rows(float* x, const std::vector<float>& b, int64_t n) {
  if (b.empty()) return;
  const int64_t m = (int64_t)b.size();
  for (int64_t i = 0; i < n; ++i) add_inplace(x + i * m, b.data(), m);
}

}  // namespace

void Model::forward_batch(const int32_t* tokens, const int32_t* pos, KvCache* const* caches,
                          int64_t n, float* logits) {
  const ModelConfig& c = cfg_;
  check(n > 0, "forward_batch: no rows");
  for (int64_t i = 0; i < n; ++i) {
    check(caches[i] != nullptr, "forward_batch: row " + std::to_string(i) + " has no cache");
    check(tokens[i] >= 0 && tokens[i] < c.n_vocab,
          "token id " + std::to_string(tokens[i]) + " is out of range [0, " +
              std::to_string(c.n_vocab) + ")");
    check(pos[i] >= 0 && pos[i] + 1 <= caches[i]->n_ctx(),
          "context overflow: position " + std::to_string(pos[i]) + " past the context size " +
              std::to_string(caches[i]->n_ctx()));
    for (int64_t j = 0; j < i; ++j)
      check(caches[j] != caches[i], "forward_batch: two rows share one cache");
  }
  const int64_t d = c.n_embd, hd = c.head_dim, qd = (int64_t)c.n_head * hd,
                kvd = (int64_t)c.n_kv_head * hd;
  // Row-major [n][...] buffers, as forward()'s workspace.
  std::vector<float> x(n * d), xb(n * std::max(d, qd)), q(n * qd), k(n * kvd), v(n * kvd),
      att(n * qd), gate(n * c.n_ff), up(n * c.n_ff);

  for (int64_t i = 0; i < n; ++i)
    dequantize_row(tok_embd_.type, tok_embd_.data + (size_t)tokens[i] * tok_embd_.row_bytes,
                   x.data() + i * d, d);
  check_rows_finite(x.data(), n, d, -1, "the token embeddings");

  const float scale = 1.0f / std::sqrt((float)hd);
  for (int il = 0; il < c.n_layer; ++il) {
    const LayerWeights& L = layers_[il];
    for (int64_t i = 0; i < n; ++i)
      rmsnorm(x.data() + i * d, L.attn_norm.data(), xb.data() + i * d, d, c.rms_eps);
    check_rows_finite(xb.data(), n, d, il, "attention norm");
    matmul(L.wq, xb.data(), q.data(), n);
    matmul(L.wk, xb.data(), k.data(), n);
    matmul(L.wv, xb.data(), v.data(), n);
    add_bias_rows(q.data(), L.bq, n);
    add_bias_rows(k.data(), L.bk, n);
    add_bias_rows(v.data(), L.bv, n);
    for (int64_t i = 0; i < n; ++i) {
      rope(q.data() + i * qd, c.n_head, (int)hd, c.n_rot, pos[i], c.rope_base, c.rope_neox);
      rope(k.data() + i * kvd, c.n_kv_head, (int)hd, c.n_rot, pos[i], c.rope_base, c.rope_neox);
    }
    check_rows_finite(q.data(), n, qd, il, "queries");
    check_rows_finite(k.data(), n, kvd, il, "keys");
    check_rows_finite(v.data(), n, kvd, il, "values");
    // Each row attends over its own cache; rows are independent, so they run in parallel. An
    // exception may not leave the parallel region: each row keeps its message for after it.
    std::vector<std::string> row_error(n);
    parallel_for(n, 1, [&](int64_t i, int64_t) {  // thread pool (util/thread_pool.h), a row per chunk
      try {
        LayerCache& lc = caches[i]->layer(il);
        lc.append(1, pos + i, k.data() + i * kvd, v.data() + i * kvd);
        lc.attend(1, pos + i, q.data() + i * qd, scale, att.data() + i * qd);
      } catch (const std::exception& e) {
        row_error[i] = std::string("batch row ") + std::to_string(i) + ": " + e.what();
      }
    });
    for (const std::string& e : row_error) check(e.empty(), e);
    check_rows_finite(att.data(), n, qd, il, "attention output");
    matmul(L.wo, att.data(), xb.data(), n);
    add_inplace(x.data(), xb.data(), n * d);

    for (int64_t i = 0; i < n; ++i)
      rmsnorm(x.data() + i * d, L.ffn_norm.data(), xb.data() + i * d, d, c.rms_eps);
    check_rows_finite(xb.data(), n, d, il, "feed-forward norm");
    matmul(L.w_gate, xb.data(), gate.data(), n);
    matmul(L.w_up, xb.data(), up.data(), n);
    swiglu(gate.data(), up.data(), n * c.n_ff);
    check_rows_finite(gate.data(), n, c.n_ff, il, "feed-forward");
    matmul(L.w_down, gate.data(), xb.data(), n);
    add_inplace(x.data(), xb.data(), n * d);
    check_rows_finite(x.data(), n, d, il, "output");
  }
  for (int64_t i = 0; i < n; ++i)
    rmsnorm(x.data() + i * d, output_norm_.data(), xb.data() + i * d, d, c.rms_eps);
  check_rows_finite(xb.data(), n, d, -1, "the output norm");
  matmul(output_, xb.data(), logits, n);
  check_rows_finite(logits, n, c.n_vocab, -1, "the output logits");
}

}  // namespace h1bkv
