// Options and helpers shared by the subcommands: model, context, threads, cache selection.
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "kv/registry.h"

namespace h1bkv {

class Model;
class Tokenizer;
class KvCache;

// Largest token count any option accepts (-c, -n, -p, -d, ...): the largest context a model
// config may declare (model/config.cpp). Tighter bounds come from the model or memory later.
constexpr int64_t kMaxTokens = int64_t{1} << 24;
// Most threads -t accepts: 8 per core of this machine.
int max_threads();

// CLI11 validators that parse the text themselves (a strict integer; a finite float) and name the
// valid range in the message, so '1e9', 'nan', 'inf' or an overflowing value never reaches a cast.
CLI::Validator int_range(int64_t lo, int64_t hi);
CLI::Validator float_range(double lo, double hi);
// --chunks: -1 (all) or 1 .. 2^31.
CLI::Validator chunks_range();

// Throws Error when a result that must be a number is NaN or infinite, naming it.
void check_finite_result(const std::string& what, double v);

// Refuses to start when the memory a command will allocate (weights are mapped and not counted)
// exceeds MemAvailable of /proc/meminfo (or $H1BKV_MEM_LIMIT bytes when set, for tests), with
// the numbers in the message. Skipped when neither is known.
void check_memory(const std::string& what, double cache_bytes, double workspace_bytes,
                  double logits_bytes);
// Bytes of the cache of spec for geo (its n_ctx tokens), from the registry's formula.
double cache_bytes(const CacheSpec& spec, const CacheGeometry& geo);

// The flags every model-running command takes (llama.cpp names where they exist).
struct ModelOptions {
  std::string model;        // -m
  int64_t n_ctx = 0;        // -c (0 = command default)
  int threads = 0;          // -t (0 = all cores)
  std::string cache = "f16";  // --cache TYPE[:opts]
  std::string ctk, ctv;     // -ctk / -ctv: key / value codec (plain cache)
  std::string calib;        // --calib FILE: h1b multipliers (kv/calibration.h)

  // with_calib: also declare --calib (the commands that run a cache made by make_cache_for)
  void add_to(CLI::App& app, int64_t default_ctx, bool with_calib = true);
  // Applies -t (OpenMP team size) and resolves the cache spec; throws Error on a bad spec.
  CacheSpec resolve() const;
};

int apply_threads(int threads);  // returns the team size used

// The cache of spec for model with o.n_ctx tokens, --calib applied; throws Error on a bad file.
// An adapter with LoRA tensors (model/lora.h) also sets the model's forward hook that applies them
// (owned here, for the life of the process).
std::unique_ptr<KvCache> make_cache_for(Model& model, const CacheSpec& spec, const ModelOptions& o);
// Throws Error when calib is an adapter with LoRA tensors: cmd (compare, eval, serve) runs several
// caches or batches through the model and does not apply them; run, ppl and bench do.
void refuse_lora(const std::string& calib, const std::string& cmd);

// Loaded model + tokenizer.
struct Loaded {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tok;
};
Loaded load_model(const std::string& path);

// Runs toks [n] at positions 0..n-1 into cache in forwards of at most `batch` tokens (bounds the
// activation memory: Model::workspace_bytes(batch)); logits [n_vocab] end as the last token's.
void prefill_batched(Model& model, const int32_t* toks, int64_t n, KvCache& cache, float* logits, int64_t batch);

// Progress on stderr: a bar redrawn in place on a terminal; otherwise (a log) a line per 5 % of
// the items and one for the last.
void progress(const std::string& label, int64_t done, int64_t total, double seconds);
void progress_done();

std::string human_bytes(double b);

}  // namespace h1bkv
