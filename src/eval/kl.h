// KL divergence of a run's next-token distributions against a saved base run (how KV-cache
// quality is judged in llama.cpp's perplexity --kl-divergence).
// Base file layout (little-endian): "H1BKVLP1" | u32 n_vocab | u32 n_ctx | u64 n_positions |
// n_positions x { i32 next_token ; fp16 logprob[n_vocab] }. n_positions is patched at close.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace h1bkv {

class OutputFile;

// Writes to a temporary file beside path; close() renames it into place, so a run that fails
// midway leaves no file a later --kl-base would take as complete.
class LogprobWriter {
 public:
  LogprobWriter(const std::string& path, int32_t n_vocab, int32_t n_ctx);
  ~LogprobWriter();
  void add(const float* logprobs, int32_t next);  // logprobs: [n_vocab]
  void close();
 private:
  std::string path_;
  std::unique_ptr<OutputFile> out_;
  int32_t n_vocab_;
  uint64_t n_ = 0;
  std::vector<uint16_t> buf_;
};

class LogprobReader {
 public:
  // Throws Error if the file is missing, malformed, or its n_vocab/n_ctx differ from the run's.
  LogprobReader(const std::string& path, int32_t n_vocab, int32_t n_ctx);
  ~LogprobReader();
  uint64_t n_positions() const { return n_; }
  // Reads the next position into logprobs [n_vocab]; returns its next token. Throws at the end,
  // and on a non-finite log-probability (naming the position and token).
  int32_t next(float* logprobs);
 private:
  std::string path_;
  FILE* f_ = nullptr;
  int32_t n_vocab_;
  uint64_t n_ = 0, read_ = 0;
  std::vector<uint16_t> buf_;
};

struct KlStats {
  int64_t n = 0;
  double kl_mean = 0, kl_stderr = 0;
  double kl_median = 0, kl_p90 = 0, kl_p95 = 0, kl_p99 = 0, kl_max = 0;
  double top1_agree = 0;  // fraction of positions whose argmax matches the base
  double base_ppl = 0;    // PPL of the base run on the same positions
};

class KlAccumulator {
 public:
  // base, run: log-probabilities [n_vocab] of one position; next: the true next token
  void add(const float* base, const float* run, int32_t n_vocab, int32_t next);
  KlStats stats() const;
 private:
  std::vector<double> kl_;
  int64_t agree_ = 0;
  double base_nll_ = 0;
};

}  // namespace h1bkv
