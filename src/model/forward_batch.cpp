// Model::forward_batch: forward() for several independent sequences in one step, each a span of
// one token (decoding) or more (a chunk of its prompt).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
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

// Whether x[0..n) is all finite: inf and NaN have every exponent bit set. Branch-free, so it
// vectorizes (a loop on std::isfinite with an early exit does not: 2 % of an 8-row step).
bool all_finite(const float* x, int64_t n) {
  uint32_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, x + i, sizeof u);
    bad |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
  }
  return bad == 0;
}

// x: [rows][cols], rows the spans' tokens in order (first[s] = first row of span s); throws
// naming the first non-finite value's span (batch row) and stage.
void check_rows_finite(const float* x, const std::vector<int64_t>& first, int64_t cols, int layer,
                       const char* stage) {
  const int64_t rows = first.back();
  if (all_finite(x, rows * cols)) return;
  for (int64_t i = 0; i < rows * cols; ++i)
    if (!std::isfinite(x[i])) {
      const int64_t span = std::upper_bound(first.begin(), first.end(), i / cols) - first.begin() - 1;
      throw Error("non-finite value in " +
                  (layer >= 0 ? "layer " + std::to_string(layer) + "'s " : std::string()) + stage +
                  " of batch row " + std::to_string(span));
    }
}

void add_bias_rows(float* x, const std::vector<float>& b, int64_t n) {
  if (b.empty()) return;
  const int64_t m = (int64_t)b.size();
  for (int64_t i = 0; i < n; ++i) add_inplace(x + i * m, b.data(), m);
}

}  // namespace

void Model::forward_batch(const int32_t* tokens, const int32_t* pos, KvCache* const* caches,
                          int64_t n, float* logits) {
  check(n > 0, "forward_batch: no rows");
  std::vector<BatchSpan> spans(n);
  for (int64_t i = 0; i < n; ++i) spans[i] = {tokens + i, 1, pos[i], caches[i]};
  forward_batch(spans.data(), n, logits);
}

void Model::forward_batch(const BatchSpan* spans, int64_t ns, float* logits) {
  const ModelConfig& c = cfg_;
  check(ns > 0, "forward_batch: no rows");
  std::vector<int64_t> first(ns + 1, 0);  // first row of each span; first[ns] = all rows
  for (int64_t s = 0; s < ns; ++s) {
    const BatchSpan& b = spans[s];
    const std::string row = "batch row " + std::to_string(s);
    check(b.cache != nullptr && b.tokens != nullptr && b.n > 0, "forward_batch: " + row + " is empty");
    for (int64_t j = 0; j < b.n; ++j)
      check(b.tokens[j] >= 0 && b.tokens[j] < c.n_vocab,
            "token id " + std::to_string(b.tokens[j]) + " is out of range [0, " +
                std::to_string(c.n_vocab) + ")");
    check(b.pos0 >= 0 && b.pos0 + b.n <= b.cache->n_ctx(),
          "context overflow: position " + std::to_string(b.pos0 + b.n - 1) + " of " + row +
              " past the context size " + std::to_string(b.cache->n_ctx()));
    for (int64_t j = 0; j < s; ++j)
      check(spans[j].cache != b.cache, "forward_batch: two rows share one cache");
    first[s + 1] = first[s] + b.n;
  }
  const int64_t n = first[ns];
  const int64_t d = c.n_embd, hd = c.head_dim, qd = (int64_t)c.n_head * hd,
                kvd = (int64_t)c.n_kv_head * hd;
  ensure_workspace(n);  // x_ ... up_: [n][...] row-major, as forward()
  pos_.resize(n);
  for (int64_t s = 0; s < ns; ++s)
    for (int64_t j = 0; j < spans[s].n; ++j) {
      pos_[first[s] + j] = spans[s].pos0 + (int32_t)j;
      dequantize_row(tok_embd_.type, tok_embd_.data + (size_t)spans[s].tokens[j] * tok_embd_.row_bytes,
                     x_.data() + (first[s] + j) * d, d);
    }
  check_rows_finite(x_.data(), first, d, -1, "the token embeddings");

  // Decode spans (one token) attend in parallel, one thread each; longer spans (prompt chunks)
  // attend one after another with the cache's own threads. Results do not depend on either.
  std::vector<int64_t> singles, chunks;
  for (int64_t s = 0; s < ns; ++s) (spans[s].n == 1 ? singles : chunks).push_back(s);
  const float scale = 1.0f / std::sqrt((float)hd);
  for (int il = 0; il < c.n_layer; ++il) {
    const LayerWeights& L = layers_[il];
    for (int64_t i = 0; i < n; ++i)
      rmsnorm(x_.data() + i * d, L.attn_norm.data(), xb_.data() + i * d, d, c.rms_eps);
    check_rows_finite(xb_.data(), first, d, il, "attention norm");
    // q: [n][n_head][hd], k and v: [n][n_kv][hd]; one pool job for the three
    matmul_many({{&L.wq, q_.data()}, {&L.wk, k_.data()}, {&L.wv, v_.data()}}, xb_.data(), n);
    add_bias_rows(q_.data(), L.bq, n);
    add_bias_rows(k_.data(), L.bk, n);
    add_bias_rows(v_.data(), L.bv, n);
    for (int64_t i = 0; i < n; ++i) {
      rope(q_.data() + i * qd, c.n_head, (int)hd, c.n_rot, pos_[i], c.rope_base, c.rope_neox);
      rope(k_.data() + i * kvd, c.n_kv_head, (int)hd, c.n_rot, pos_[i], c.rope_base, c.rope_neox);
    }
    check_rows_finite(q_.data(), first, qd, il, "queries");
    check_rows_finite(k_.data(), first, kvd, il, "keys");
    check_rows_finite(v_.data(), first, kvd, il, "values");
    // An exception may not leave the parallel region: each span keeps its message for after it.
    std::vector<std::string> span_error(ns);
    auto attend = [&](int64_t s) {
      try {
        const int64_t r = first[s];
        LayerCache& lc = spans[s].cache->layer(il);
        lc.append(spans[s].n, pos_.data() + r, k_.data() + r * kvd, v_.data() + r * kvd);
        lc.attend(spans[s].n, pos_.data() + r, q_.data() + r * qd, scale, att_.data() + r * qd);
      } catch (const std::exception& e) {
        span_error[s] = std::string("batch row ") + std::to_string(s) + ": " + e.what();
      }
    };
    for (int64_t s : chunks) attend(s);
    const int64_t n1 = (int64_t)singles.size();
    if (n1 > 1)  // thread pool (util/thread_pool.h), a span per chunk
      parallel_for(n1, 1, [&](int64_t i, int64_t) { attend(singles[i]); });
    else if (n1 == 1)
      attend(singles[0]);
    for (const std::string& e : span_error) check(e.empty(), e);
    check_rows_finite(att_.data(), first, qd, il, "attention output");
    matmul(L.wo, att_.data(), xb_.data(), n);
    add_inplace(x_.data(), xb_.data(), n * d);

    for (int64_t i = 0; i < n; ++i)
      rmsnorm(x_.data() + i * d, L.ffn_norm.data(), xb_.data() + i * d, d, c.rms_eps);
    check_rows_finite(xb_.data(), first, d, il, "feed-forward norm");
    matmul_many({{&L.w_gate, gate_.data()}, {&L.w_up, up_.data()}}, xb_.data(), n);  // [n][n_ff] each
    swiglu(gate_.data(), up_.data(), n * c.n_ff);
    check_rows_finite(gate_.data(), first, c.n_ff, il, "feed-forward");
    matmul(L.w_down, gate_.data(), xb_.data(), n);
    add_inplace(x_.data(), xb_.data(), n * d);
    check_rows_finite(x_.data(), first, d, il, "output");
  }
  // Only each span's last token goes through the output norm and the vocabulary matmul.
  std::vector<int64_t> last(ns + 1);
  for (int64_t s = 0; s < ns; ++s) {
    rmsnorm(x_.data() + (first[s + 1] - 1) * d, output_norm_.data(), xb_.data() + s * d, d, c.rms_eps);
    last[s] = s;
  }
  last[ns] = ns;
  check_rows_finite(xb_.data(), last, d, -1, "the output norm");
  matmul(output_, xb_.data(), logits, ns);
  check_rows_finite(logits, last, c.n_vocab, -1, "the output logits");
}

}  // namespace h1bkv
