#include "eval/perplexity.h"

#include <cmath>

#include "kv/cache.h"
#include "model/model.h"
#include "util/error.h"
#include "util/thread_pool.h"
#include "util/timer.h"

namespace h1bkv {

void log_softmax(float* x, int32_t n) {
  float mx = x[0];
  for (int32_t i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  double sum = 0;
  for (int32_t i = 0; i < n; ++i) sum += std::exp((double)(x[i] - mx));
  const float lse = mx + (float)std::log(sum);
  for (int32_t i = 0; i < n; ++i) x[i] -= lse;
}

void eval_chunk(Model& model, KvCache& cache, const int32_t* chunk, const PplParams& p,
                float* logprobs) {
  const int32_t n_vocab = model.config().n_vocab;
  cache.clear();
  for (int64_t b = 0; b < p.n_ctx; b += p.n_batch) {
    const int64_t nb = std::min(p.n_batch, p.n_ctx - b);
    model.forward(chunk + b, nb, (int32_t)b, cache, logprobs + b * n_vocab, true);
  }
  // each scored row is independent
  const int64_t j0 = p.n_ctx / 2, rows = p.n_ctx - 1 - j0;
  parallel_for(rows, pool_chunk(rows, pool_threads()), [&](int64_t a, int64_t b) {
    for (int64_t j = j0 + a; j < j0 + b; ++j) log_softmax(logprobs + j * n_vocab, n_vocab);
  });
}

PplResult perplexity(Model& model, KvCache& cache, const std::vector<int32_t>& tokens,
                     const PplParams& p, const LogprobSink& sink, const ChunkCallback& on_chunk) {
  const int64_t n_ctx = p.n_ctx;
  check(n_ctx >= 4, "perplexity needs a context of at least 4 tokens");
  check(n_ctx <= cache.n_ctx(), "perplexity context exceeds the cache size");
  int64_t n_chunks = (int64_t)tokens.size() / n_ctx;
  check(n_chunks > 0, "the text has " + std::to_string(tokens.size()) +
                          " tokens, fewer than one chunk of " + std::to_string(n_ctx) +
                          " (use a smaller -c)");
  if (p.max_chunks >= 0 && p.max_chunks < n_chunks) n_chunks = p.max_chunks;
  const int32_t n_vocab = model.config().n_vocab;
  const int64_t first = n_ctx / 2;
  std::vector<float> logits((size_t)n_ctx * n_vocab);  // [n_ctx][n_vocab]
  std::vector<int32_t> chunk(n_ctx);
  PplResult r;
  double nll = 0, nll2 = 0;
  Timer timer;
  for (int64_t c = 0; c < n_chunks; ++c) {
    std::copy(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx, chunk.begin());
    if (p.bos >= 0) chunk[0] = p.bos;
    eval_chunk(model, cache, chunk.data(), p, logits.data());
    for (int64_t j = first; j < n_ctx - 1; ++j) {
      const float* lp = logits.data() + j * n_vocab;
      const int32_t next = chunk[j + 1];
      const double v = -(double)lp[next];
      nll += v;
      nll2 += v * v;
      ++r.n_scored;
      if (sink) sink(lp, n_vocab, next);
    }
    r.n_chunks = c + 1;
    r.nll = nll / r.n_scored;
    r.ppl = std::exp(r.nll);
    r.chunk_ppl.push_back(r.ppl);
    const double var = nll2 / r.n_scored - r.nll * r.nll;
    r.ppl_err = (var > 0 && r.n_scored > 1) ? std::sqrt(var / (r.n_scored - 1)) * r.ppl : 0;
    r.seconds = timer.seconds();
    if (on_chunk) on_chunk(c, n_chunks, r);
  }
  return r;
}

}  // namespace h1bkv
