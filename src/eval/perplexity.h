// Perplexity as llama.cpp's llama-perplexity computes it: the token stream is cut into chunks of
// n_ctx tokens (the first token of each chunk replaced by BOS when the vocab adds BOS), each chunk
// is evaluated from an empty cache, and the second half of each chunk is scored:
// the log-probability of token j+1 given logits at j, for j in [n_ctx/2, n_ctx-1).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace h1bkv {

class Model;
class KvCache;

struct PplParams {
  int64_t n_ctx = 512;
  int64_t n_batch = 512;  // tokens per forward call inside a chunk
  int64_t max_chunks = -1;  // -1 = all
  int32_t bos = -1;         // replaces each chunk's first token when >= 0
};

struct PplResult {
  int64_t n_chunks = 0;
  int64_t n_scored = 0;
  double nll = 0;   // mean negative log-likelihood (nats)
  double ppl = 0;
  double ppl_err = 0;  // llama.cpp's estimate: ppl * sqrt(var(nll) / (count - 1))
  std::vector<double> chunk_ppl;  // running PPL after each chunk
  double seconds = 0;
};

// Called after each scored position with log-probabilities [n_vocab] of that position (for KL
// and saving logits) and the index of the actual next token. May be empty.
using LogprobSink = std::function<void(const float* logprobs, int32_t n_vocab, int32_t next)>;
// Called after each chunk (progress).
using ChunkCallback = std::function<void(int64_t chunk, int64_t n_chunks, const PplResult& sofar)>;

PplResult perplexity(Model& model, KvCache& cache, const std::vector<int32_t>& tokens,
                     const PplParams& p, const LogprobSink& sink = {},
                     const ChunkCallback& on_chunk = {});

// In place: logits [n] -> log-softmax.
void log_softmax(float* x, int32_t n);

// Evaluates one chunk of p.n_ctx tokens from an empty cache (chunk[0] already replaced by BOS if
// wanted) and leaves log-probabilities in rows [n_ctx/2, n_ctx-1) of logprobs [n_ctx][n_vocab]
// (other rows hold raw logits). Row j predicts chunk[j+1].
void eval_chunk(Model& model, KvCache& cache, const int32_t* chunk, const PplParams& p,
                float* logprobs);

}  // namespace h1bkv
