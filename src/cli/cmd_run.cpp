// h1bkv run: generate text from a prompt, streaming it; stats on stderr at the end.
#include <cstdio>
#include <vector>

#include "cli/commands.h"
#include "cli/common.h"
#include "io/gguf.h"
#include "model/model.h"
#include "model/sampler.h"
#include "tokenize/chat.h"
#include "tokenize/tokenizer.h"
#include "util/error.h"
#include "util/file.h"
#include "util/timer.h"

namespace h1bkv {

namespace {

struct RunOptions {
  ModelOptions m;
  std::string prompt;
  std::string prompt_file;
  int64_t batch = 512;
  int n_predict = 128;
  bool chat = false;
  bool ignore_eos = false;
  SamplerParams s;

  void add_to(CLI::App& app) {
    m.add_to(app, 4096);
    auto* p = app.add_option("-p,--prompt", prompt, "prompt text")->capture_default_str();
    app.add_option("-f,--file", prompt_file, "read the prompt text from this file")->excludes(p);
    app.add_option("-b,--batch-size", batch, "prompt tokens per forward call (bounds the prefill's "
                                              "activation memory)")->capture_default_str()
        ->check(int_range(1, kMaxTokens));
    app.add_option("-n,--n-predict", n_predict, "tokens to generate")->capture_default_str()
        ->check(int_range(0, kMaxTokens));
    app.add_flag("--chat", chat, "wrap the prompt in the model's ChatML chat template");
    app.add_flag("--ignore-eos", ignore_eos, "keep generating past end-of-generation tokens");
    app.add_option("--temp", s.temp, "temperature (0 = greedy)")->capture_default_str()
        ->check(float_range(0, 100));
    app.add_option("--top-k", s.top_k, "top-k (0 = off)")->capture_default_str()
        ->check(int_range(0, kMaxTokens));
    app.add_option("--top-p", s.top_p, "top-p (1 = off)")->capture_default_str()
        ->check(float_range(0, 1));
    app.add_option("-s,--seed", s.seed, "sampling seed")->capture_default_str();
  }
};

int run(RunOptions& o) {
  const CacheSpec spec = o.m.resolve();
  check(o.n_predict >= 0, "-n must be >= 0");
  if (!o.prompt_file.empty()) o.prompt = read_file(o.prompt_file);  // a bad path fails before the model loads
  apply_threads(o.m.threads);
  Loaded l = load_model(o.m.model);
  Model& model = *l.model;
  std::string text = o.prompt;
  if (o.chat) {
    const std::string tmpl = model.gguf().get_string("tokenizer.chat_template", "");
    check(is_chatml_template(tmpl),
          "--chat supports ChatML templates only; this model's template is not ChatML");
    text = chatml_prompt(o.prompt);
  }
  // ChatML starts with <|im_start|>, never a BOS
  std::vector<int32_t> toks = l.tok->encode(text, !o.chat, true);
  check(!toks.empty(), "the prompt is empty and the model adds no BOS token");
  const int64_t total = (int64_t)toks.size() + o.n_predict;
  check(total <= o.m.n_ctx, "context overflow: prompt (" + std::to_string(toks.size()) +
                                " tokens) + -n " + std::to_string(o.n_predict) +
                                " exceeds -c " + std::to_string(o.m.n_ctx));
  const int32_t nv = model.config().n_vocab;
  const int64_t batch = std::min<int64_t>(o.batch, (int64_t)toks.size());
  check_memory("run", cache_bytes(spec, model.cache_geometry(o.m.n_ctx)), (double)model.workspace_bytes(batch),
               4.0 * nv);
  auto cache = make_cache_for(model, spec, o.m);
  std::vector<float> logits(nv);
  Sampler sampler(o.s);

  if (!o.chat) std::fputs(o.prompt.c_str(), stdout);
  std::fflush(stdout);
  Timer tp;
  prefill_batched(model, toks.data(), (int64_t)toks.size(), *cache, logits.data(), batch);
  const double t_prefill = tp.seconds();
  Timer td;
  int generated = 0;
  int32_t pos = (int32_t)toks.size();
  for (; generated < o.n_predict; ++generated) {
    const int32_t next = sampler.sample(logits.data(), nv);
    if (!o.ignore_eos && l.tok->is_eog(next)) break;
    std::fputs(l.tok->token_to_piece(next).c_str(), stdout);
    std::fflush(stdout);
    if (generated + 1 == o.n_predict) {
      ++generated;
      break;
    }
    model.forward(&next, 1, pos++, *cache, logits.data(), false);
  }
  const double t_decode = td.seconds();
  std::printf("\n");
  std::fprintf(stderr,
               "\nprefill: %zu tokens in %.3f s (%.1f tok/s)\n"
               "decode:  %d tokens in %.3f s (%.1f tok/s)\n"
               "cache:   %s, %lld tokens, %s held (%.0f bytes/token)\n",
               toks.size(), t_prefill, toks.size() / t_prefill, generated, t_decode,
               generated > 1 ? (generated - 1) / t_decode : 0.0, cache->spec().c_str(),
               (long long)cache->n_tokens(), human_bytes((double)cache->bytes()).c_str(),
               cache->bytes_per_token());
  return 0;
}

}  // namespace

Action register_run(CLI::App& app) {
  auto* sub = app.add_subcommand("run", "generate text from a prompt");
  auto o = std::make_shared<RunOptions>();
  o->add_to(*sub);
  return [o] { return run(*o); };
}

}  // namespace h1bkv
