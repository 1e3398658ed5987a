// h1bkv bench: llama-bench-style throughput table. pp<N>: prefill of N tokens from an empty
// cache; tg<N> @ d<D>: N single-token decode steps after an untimed prefill of D tokens;
// "tg<N> @ d<D> x<S>" (--parallel S, as llama-batched-bench): S sequences, each with its own
// cache filled to D, decode N steps of one token each in one Model::forward_batch per step (what
// `serve` and `eval --parallel` do); t/s counts the tokens of all S.
// Mean +/- sample std over repetitions; peak RSS reported after the table, then the kernel path
// (tensor/isa.h) and for each decode test the bytes it read per token (weights + cache) per second
// beside this machine's streaming read with the same threads.
#include <nlohmann/json.hpp>
#include <sys/resource.h>

#include <cmath>
#include <cstdio>
#include <random>

#include "cli/commands.h"
#include "cli/common.h"
#include "io/ggml_type.h"
#include "io/gguf.h"
#include "model/model.h"
#include "tensor/bandwidth.h"
#include "tensor/isa.h"
#include "util/error.h"
#include "util/timer.h"

namespace h1bkv {

namespace {

struct BenchOptions {
  ModelOptions m;
  std::vector<int64_t> pp = {512};
  std::vector<int64_t> tg = {128};
  std::vector<int64_t> depths = {0, 512, 2048};
  std::vector<int64_t> parallel = {1};
  int reps = 3;
  bool json = false;

  void add_to(CLI::App& app) {
    m.add_to(app, 0);
    app.add_option("-p,--n-prompt", pp, "prefill sizes (comma-separated)")->delimiter(',')->capture_default_str()
        ->check(int_range(1, kMaxTokens));
    app.add_option("-n,--n-gen", tg, "decode lengths (comma-separated)")->delimiter(',')->capture_default_str()
        ->check(int_range(1, kMaxTokens));
    app.add_option("-d,--n-depth", depths, "decode depths, tokens already in the cache (comma-separated)")->delimiter(',')
        ->capture_default_str()->check(int_range(0, kMaxTokens));
    app.add_option("--parallel", parallel, "sequences decoded at once in the tg tests, one cache each "
                   "(comma-separated; also -np)")->delimiter(',')->capture_default_str()->check(int_range(1, 64));
    app.add_option("-r,--repetitions", reps, "repetitions per test")->capture_default_str()
        ->check(int_range(1, 1000));
    app.add_flag("--json", json, "print JSON instead of markdown");
  }
};

struct Row {
  std::string test;
  double mean = 0, sd = 0;
  std::vector<double> samples;
  double read_bytes = 0;  // decode: bytes read per token (weights + cache), 0 for prefill
};

double peak_rss_bytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_maxrss * 1024.0;
}

int bench(BenchOptions& o) {
  check(o.reps >= 1, "-r must be >= 1");
  int64_t need = 1;
  for (int64_t p : o.pp) need = std::max(need, p);
  for (int64_t d : o.depths)
    for (int64_t n : o.tg) need = std::max(need, d + n);
  const bool ctx_given = o.m.n_ctx > 0;
  if (!ctx_given) o.m.n_ctx = need;
  const CacheSpec spec = o.m.resolve();
  check(need <= o.m.n_ctx, "context overflow: the tests need " + std::to_string(need) +
                               " tokens, -c is " + std::to_string(o.m.n_ctx));
  const int threads = apply_threads(o.m.threads);
  auto model = Model::load(o.m.model);
  const ModelConfig& c = model->config();
  // the model bounds the depth: past its training context only when -c asks for it
  check(ctx_given || need <= c.n_ctx_train,
        "the tests need " + std::to_string(need) + " tokens (largest -p, or -d + -n), more than "
        "the model's training context " + std::to_string(c.n_ctx_train) +
        "; pass -c to run past it anyway");
  int64_t max_par = 1;
  for (int64_t s : o.parallel) max_par = std::max(max_par, s);
  check_memory("bench", (double)max_par * cache_bytes(spec, model->cache_geometry(o.m.n_ctx)),
               (double)model->workspace_bytes(std::min<int64_t>(512, need)) + 4.0 * (double)need,
               4.0 * c.n_vocab);
  auto cache = make_cache_for(*model, spec, o.m);
  std::mt19937 rng(1234);
  std::vector<int32_t> toks(need);
  for (auto& t : toks) t = (int32_t)(rng() % c.n_vocab);
  std::vector<float> logits(c.n_vocab);
  double weights_read = (double)model->weight_bytes();
  if (const GgufTensor* out = model->gguf().find_tensor("output.weight"))
    if (const GgufTensor* emb = model->gguf().find_tensor("token_embd.weight"); emb && out != emb)
      weights_read -= (double)emb->n_bytes;
  weights_read += (double)model->packed_bytes() - (double)model->packed_file_bytes();  // packed copies' padding
  const Isa isa = active_isa();

  auto fill = [&](KvCache& kv, int64_t n) {  // untimed fill to depth n in 512-token batches
    prefill_batched(*model, toks.data(), n, kv, logits.data(), 512);
  };
  auto prefill = [&](int64_t n) { fill(*cache, n); };
  std::vector<std::unique_ptr<KvCache>> more;  // the other sequences' caches (--parallel)
  std::vector<Row> rows;
  auto finish = [&](Row& r) {
    double s = 0, s2 = 0;
    for (double x : r.samples) s += x;
    r.mean = s / r.samples.size();
    for (double x : r.samples) s2 += (x - r.mean) * (x - r.mean);
    r.sd = r.samples.size() > 1 ? std::sqrt(s2 / (r.samples.size() - 1)) : 0;
    rows.push_back(r);
  };
  for (int64_t p : o.pp) {
    Row r;
    r.test = "pp" + std::to_string(p);
    for (int k = 0; k < o.reps + 1; ++k) {  // first run warms up, not counted
      cache->clear();
      Timer t;
      prefill(p);
      if (k > 0) r.samples.push_back(p / t.seconds());
    }
    finish(r);
  }
  for (int64_t d : o.depths)
    for (int64_t n : o.tg)
      for (int64_t np : o.parallel) {
        Row r;
        r.test = "tg" + std::to_string(n) + (d ? " @ d" + std::to_string(d) : "") +
                 (np > 1 ? " x" + std::to_string(np) : "");
        // every matrix is read once per step (a tied embedding as the output head; an untied
        // one only a row) plus each cache as held at the mean depth of the run, per token made
        r.read_bytes = weights_read / (double)np + cache->bytes_per_token() * ((double)d + (double)(n - 1) / 2);
        while ((int64_t)more.size() < np - 1) more.push_back(make_cache_for(*model, spec, o.m));
        std::vector<KvCache*> caches = {cache.get()};
        for (int64_t i = 0; i + 1 < np; ++i) caches.push_back(more[i].get());
        std::vector<int32_t> step_tok(np), step_pos(np);
        std::vector<float> step_logits((size_t)np * c.n_vocab);
        for (int k = 0; k < o.reps; ++k) {
          for (KvCache* kv : caches) kv->clear(), fill(*kv, d);
          Timer t;
          for (int64_t i = 0; i < n; ++i) {
            if (np == 1) {
              model->forward(&toks[d + i], 1, (int32_t)(d + i), *cache, logits.data(), false);
              continue;
            }
            for (int64_t q = 0; q < np; ++q)  // each sequence its own tokens
              step_tok[q] = toks[(d + i + 7 * q) % need], step_pos[q] = (int32_t)(d + i);
            model->forward_batch(step_tok.data(), step_pos.data(), caches.data(), np, step_logits.data());
          }
          r.samples.push_back((double)(n * np) / t.seconds());
        }
        finish(r);
      }

  uint64_t params = 0;
  for (const auto& t : model->gguf().tensors()) params += t.n_elements;
  const std::string ftype = ggml_type_name(model->gguf().find_tensor("blk.0.attn_q.weight")->type);
  const double rss = peak_rss_bytes();
  bool decode = false;
  for (const auto& r : rows) decode = decode || r.read_bytes > 0;
  const double stream = decode ? stream_read_gbps(threads) : 0;  // after the RSS: its buffer is not the model's
  if (o.json) {
    nlohmann::json j = {{"model", o.m.model}, {"arch", c.arch}, {"weights_type", ftype},
                        {"size_bytes", model->weight_bytes()}, {"params", params},
                        {"cache", cache->spec()}, {"threads", threads},
                        {"peak_rss_bytes", rss}, {"kernel_path", isa_name(isa)}, {"parallel", o.parallel},
                        {"tests", nlohmann::json::array()}};
    if (decode) j["stream_read_gb_per_s"] = stream;
    for (const auto& r : rows) {
      nlohmann::json t = {{"test", r.test}, {"tok_per_s", r.mean}, {"std", r.sd}, {"samples", r.samples}};
      if (r.read_bytes > 0) t["read_bytes_per_token"] = r.read_bytes, t["read_gb_per_s"] = r.read_bytes * r.mean / 1e9;
      j["tests"].push_back(t);
    }
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("| model | size | params | cache | threads | test | t/s |\n");
  std::printf("| --- | ---: | ---: | --- | ---: | --- | ---: |\n");
  for (const auto& r : rows)
    std::printf("| %s %s | %s | %.1f M | %s | %d | %s | %.2f ± %.2f |\n", c.arch.c_str(),
                ftype.c_str(), human_bytes((double)model->weight_bytes()).c_str(), params / 1e6,
                cache->spec().c_str(), threads, r.test.c_str(), r.mean, r.sd);
  const std::string packed = model->packed_bytes() ? " (" + human_bytes((double)model->packed_bytes()) +
                                                         " of them copied packed at load, H1BKV_REPACK=0: none)"
                                                   : "";
  std::printf("\npeak RSS %s = weights %s%s + cache %s (at its largest, %.0f bytes/token%s) "
              "+ workspace and runtime\n",
              human_bytes(rss).c_str(), human_bytes((double)model->weight_bytes()).c_str(), packed.c_str(),
              human_bytes(cache->bytes_per_token() * need * (double)(1 + more.size())).c_str(), cache->bytes_per_token(),
              more.empty() ? "" : (", " + std::to_string(1 + more.size()) + " caches").c_str());
  std::printf("kernel path %s (H1BKV_ISA=scalar|avx2|avx512|neon forces a lower one)\n", isa_name(isa));
  for (const auto& r : rows)
    if (r.read_bytes > 0)
      std::printf("%s: %.1f GB/s read (%s per token: weights + cache), %.0f %% of the streaming read "
                  "%.1f GB/s (%d threads)\n",
                  r.test.c_str(), r.read_bytes * r.mean / 1e9, human_bytes(r.read_bytes).c_str(),
                  100.0 * r.read_bytes * r.mean / 1e9 / stream, stream, threads);
  return 0;
}

}  // namespace

Action register_bench(CLI::App& app) {
  auto* sub = app.add_subcommand("bench", "llama-bench-style prefill/decode throughput table");
  auto o = std::make_shared<BenchOptions>();
  o->add_to(*sub);
  return [o] { return bench(*o); };
}

}  // namespace h1bkv
