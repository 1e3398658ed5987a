// h1bkv ppl: perplexity of a text file (llama-perplexity's method), optional KL divergence
// against a saved base run.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "eval/kl.h"
#include "eval/perplexity.h"
#include "model/model.h"
#include "tokenize/tokenizer.h"
#include "util/error.h"
#include "util/file.h"

namespace h1bkv {

namespace {

struct PplOptions {
  ModelOptions m;
  std::string file;
  int64_t chunks = -1;
  int64_t batch = 512;
  bool json = false;
  std::string save_logits, kl_base;

  void add_to(CLI::App& app) {
    m.add_to(app, 512);
    app.add_option("-f,--file", file, "text file to score")->required();
    app.add_option("--chunks", chunks, "score at most N chunks (-1 = all)")->capture_default_str()
        ->check(chunks_range());
    app.add_option("-b,--batch-size", batch, "tokens per forward call")->capture_default_str()
        ->check(int_range(1, kMaxTokens));
    app.add_flag("--json", json, "print the result as JSON on stdout");
    app.add_option("--save-logits", save_logits, "save this run's log-probabilities as a KL base");
    app.add_option("--kl-base", kl_base, "report KL divergence against a saved base run");
  }
};

int ppl(PplOptions& o) {
  const CacheSpec spec = o.m.resolve();
  check(o.batch > 0, "-b must be positive");
  check(o.save_logits.empty() || o.kl_base.empty(), "--save-logits and --kl-base exclude each other");
  check_outputs_distinct({o.m.model, o.file, o.m.calib, o.kl_base}, {o.save_logits});
  check_regular_file(o.file);
  if (!o.kl_base.empty()) check_regular_file(o.kl_base);
  apply_threads(o.m.threads);
  Loaded l = load_model(o.m.model);
  Model& model = *l.model;
  const int32_t nv = model.config().n_vocab;
  const int64_t batch = std::min(o.batch, o.m.n_ctx);
  check_memory("ppl", cache_bytes(spec, model.cache_geometry(o.m.n_ctx)),
               (double)model.workspace_bytes(batch), 4.0 * (double)o.m.n_ctx * nv);
  const std::string text = read_file(o.file);
  const std::vector<int32_t> toks = l.tok->encode(text, true, false);
  auto cache = make_cache_for(model, spec, o.m);

  PplParams p;
  p.n_ctx = o.m.n_ctx;
  p.n_batch = batch;
  p.max_chunks = o.chunks;
  p.bos = l.tok->add_bos() ? l.tok->bos() : -1;

  std::unique_ptr<LogprobWriter> writer;
  std::unique_ptr<LogprobReader> reader;
  KlAccumulator kl;
  std::vector<float> base(nv);
  if (!o.save_logits.empty()) writer = std::make_unique<LogprobWriter>(o.save_logits, nv, (int32_t)o.m.n_ctx);
  if (!o.kl_base.empty()) reader = std::make_unique<LogprobReader>(o.kl_base, nv, (int32_t)o.m.n_ctx);
  LogprobSink sink;
  if (writer) sink = [&](const float* lp, int32_t, int32_t next) { writer->add(lp, next); };
  if (reader)
    sink = [&](const float* lp, int32_t n, int32_t next) {
      const int32_t bnext = reader->next(base.data());
      check(bnext == next, o.kl_base + ": base run scored other tokens (different text or model)");
      kl.add(base.data(), lp, n, next);
    };
  if (!o.json)
    std::fprintf(stderr, "%s: %zu tokens, %lld-token chunks, cache %s (%.0f bytes/token)%s%s\n",
                 o.file.c_str(), toks.size(), (long long)o.m.n_ctx, cache->spec().c_str(),
                 cache->bytes_per_token(), o.m.calib.empty() ? "" : ", calibration ",
                 o.m.calib.c_str());
  const PplResult r = perplexity(model, *cache, toks, p, sink,
                                 [&](int64_t c, int64_t n, const PplResult& s) {
                                   if (!o.json) std::printf("[%lld]%.4f,", (long long)c + 1, s.ppl);
                                   std::fflush(stdout);
                                   progress("ppl", c + 1, n, s.seconds);
                                 });
  progress_done();
  check_finite_result("the perplexity", r.ppl);
  if (writer) writer->close();
  const KlStats ks = kl.stats();
  if (reader) {
    check_finite_result("the mean KL divergence", ks.kl_mean);
    check_finite_result("the base run's perplexity", ks.base_ppl);
  }
  check(!reader || (uint64_t)ks.n == reader->n_positions(),
        o.kl_base + ": base run has " + std::to_string(reader ? reader->n_positions() : 0) +
            " positions, this run scored " + std::to_string(ks.n) + " (use the same --chunks)");
  if (o.json) {
    nlohmann::json j = {{"model", o.m.model}, {"file", o.file}, {"ctx", o.m.n_ctx},
                        {"cache", cache->spec()}, {"calib", o.m.calib},
                        {"bytes_per_token", cache->bytes_per_token()},
                        {"chunks", r.n_chunks}, {"scored", r.n_scored}, {"ppl", r.ppl},
                        {"ppl_err", r.ppl_err}, {"nll", r.nll}, {"seconds", r.seconds}};
    if (reader)
      j["kl"] = {{"mean", ks.kl_mean}, {"stderr", ks.kl_stderr}, {"median", ks.kl_median},
                 {"p90", ks.kl_p90}, {"p95", ks.kl_p95}, {"p99", ks.kl_p99}, {"max", ks.kl_max},
                 {"top1_agree", ks.top1_agree}, {"base_ppl", ks.base_ppl}};
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("\nFinal estimate: PPL = %.4f +/- %.5f  (%lld chunks, %lld scored tokens, %.1f s)\n",
              r.ppl, r.ppl_err, (long long)r.n_chunks, (long long)r.n_scored, r.seconds);
  if (reader) {
    std::printf("base PPL            = %.4f\n", ks.base_ppl);
    std::printf("PPL ratio           = %.5f\n", r.ppl / ks.base_ppl);
    std::printf("mean KLD            = %.6f +/- %.6f\n", ks.kl_mean, ks.kl_stderr);
    std::printf("KLD median/90/95/99 = %.6f / %.6f / %.6f / %.6f  (max %.6f)\n", ks.kl_median,
                ks.kl_p90, ks.kl_p95, ks.kl_p99, ks.kl_max);
    std::printf("same top token      = %.3f %%\n", 100.0 * ks.top1_agree);
  }
  if (writer) std::printf("saved base log-probabilities of %lld positions to %s\n",
                          (long long)r.n_scored, o.save_logits.c_str());
  return 0;
}

}  // namespace

Action register_ppl(CLI::App& app) {
  auto* sub = app.add_subcommand("ppl", "perplexity of a text file (and KL divergence vs a base)");
  auto o = std::make_shared<PplOptions>();
  o->add_to(*sub);
  return [o] { return ppl(*o); };
}

}  // namespace h1bkv
