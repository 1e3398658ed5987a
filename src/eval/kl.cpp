#include "eval/kl.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "util/error.h"
#include "util/file.h"
#include "util/fp16.h"

namespace h1bkv {

namespace {
constexpr char kMagic[8] = {'H', '1', 'B', 'K', 'V', 'L', 'P', '1'};
constexpr long kCountOffset = 16;
}  // namespace

LogprobWriter::LogprobWriter(const std::string& path, int32_t n_vocab, int32_t n_ctx)
    : path_(path), n_vocab_(n_vocab), buf_(n_vocab) {
  out_ = std::make_unique<OutputFile>(path);
  const uint32_t nv = n_vocab, nc = n_ctx;
  const uint64_t zero = 0;
  out_->write(kMagic, 8);
  out_->write(&nv, 4);
  out_->write(&nc, 4);
  out_->write(&zero, 8);
}

// Without close() (an error unwinding) the temporary file is removed, nothing is renamed.
LogprobWriter::~LogprobWriter() = default;

void LogprobWriter::add(const float* lp, int32_t next) {
  for (int32_t i = 0; i < n_vocab_; ++i) buf_[i] = f32_to_fp16(std::max(lp[i], -65000.0f));
  out_->write(&next, 4);
  out_->write(buf_.data(), 2 * (size_t)n_vocab_);
  ++n_;
}

void LogprobWriter::close() {
  if (!out_) return;
  // a device written in place (/dev/null) cannot seek; it keeps no count to patch
  if (std::fseek(out_->stream(), kCountOffset, SEEK_SET) == 0) out_->write(&n_, 8);
  out_->commit();
  out_.reset();
}

LogprobReader::LogprobReader(const std::string& path, int32_t n_vocab, int32_t n_ctx)
    : path_(path), n_vocab_(n_vocab), buf_(n_vocab) {
  check_regular_file(path);
  f_ = std::fopen(path.c_str(), "rb");
  check(f_ != nullptr, path + ": cannot open base logits file");
  char magic[8];
  uint32_t nv = 0, nc = 0;
  check(std::fread(magic, 1, 8, f_) == 8 && std::memcmp(magic, kMagic, 8) == 0,
        path + ": not an h1bkv base logits file (bad magic)");
  check(std::fread(&nv, 4, 1, f_) == 1 && std::fread(&nc, 4, 1, f_) == 1 &&
            std::fread(&n_, 8, 1, f_) == 1,
        path + ": truncated header");
  check(nv == (uint32_t)n_vocab, path + ": base logits have vocab " + std::to_string(nv) +
                                     ", this model has " + std::to_string(n_vocab));
  check(nc == (uint32_t)n_ctx, path + ": base logits were computed with -c " + std::to_string(nc) +
                                   ", this run uses -c " + std::to_string(n_ctx));
  std::fseek(f_, 0, SEEK_END);
  const long size = std::ftell(f_);
  std::fseek(f_, 24, SEEK_SET);
  const uint64_t rec = 4 + 2 * (uint64_t)n_vocab;
  check(size >= 24 && (uint64_t)(size - 24) / rec >= n_,
        path + ": file holds fewer positions than its header says (truncated)");
}

LogprobReader::~LogprobReader() {
  if (f_) std::fclose(f_);
}

int32_t LogprobReader::next(float* lp) {
  check(read_ < n_, path_ + ": base run has only " + std::to_string(n_) +
                        " positions; this run scores more (use the same -f, -c and --chunks)");
  int32_t tok = 0;
  check(std::fread(&tok, 4, 1, f_) == 1 &&
            std::fread(buf_.data(), 2, n_vocab_, f_) == (size_t)n_vocab_,
        path_ + ": truncated");
  check(tok >= 0 && tok < n_vocab_, path_ + ": position " + std::to_string(read_) +
                                        " has next token " + std::to_string(tok) + ", out of range");
  for (int32_t i = 0; i < n_vocab_; ++i) {
    lp[i] = fp16_to_f32(buf_[i]);
    if (!std::isfinite(lp[i]) || lp[i] > 0.001f)
      throw Error(path_ + ": position " + std::to_string(read_) + ", token " + std::to_string(i) +
                  ": log-probability " + std::to_string(lp[i]) +
                  " is not a finite value <= 0 (damaged base file)");
  }
  ++read_;
  return tok;
}

void KlAccumulator::add(const float* base, const float* run, int32_t n, int32_t next) {
  double kl = 0;
  int32_t ab = 0, ar = 0;
  for (int32_t i = 0; i < n; ++i) {
    const double pb = std::exp((double)base[i]);
    kl += pb * ((double)base[i] - (double)run[i]);
    if (base[i] > base[ab]) ab = i;
    if (run[i] > run[ar]) ar = i;
  }
  kl_.push_back(std::max(kl, 0.0));
  agree_ += ab == ar;
  base_nll_ -= base[next];
}

KlStats KlAccumulator::stats() const {
  KlStats s;
  s.n = (int64_t)kl_.size();
  if (s.n == 0) return s;
  double sum = 0, sum2 = 0;
  for (double v : kl_) {
    sum += v;
    sum2 += v * v;
  }
  s.kl_mean = sum / s.n;
  const double var = sum2 / s.n - s.kl_mean * s.kl_mean;
  s.kl_stderr = s.n > 1 && var > 0 ? std::sqrt(var / (s.n - 1)) : 0;
  std::vector<double> sorted = kl_;
  std::sort(sorted.begin(), sorted.end());
  auto pct = [&](double q) { return sorted[std::min<size_t>(sorted.size() - 1, (size_t)(q * (s.n - 1) + 0.5))]; };
  s.kl_median = pct(0.5);
  s.kl_p90 = pct(0.9);
  s.kl_p95 = pct(0.95);
  s.kl_p99 = pct(0.99);
  s.kl_max = sorted.back();
  s.top1_agree = (double)agree_ / s.n;
  s.base_ppl = std::exp(base_nll_ / s.n);
  return s;
}

}  // namespace h1bkv
