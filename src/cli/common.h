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
std::unique_ptr<KvCache> make_cache_for(const Model& model, const CacheSpec& spec,
                                        const ModelOptions& o);

// Loaded model + tokenizer.
struct Loaded {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tok;
};
Loaded load_model(const std::string& path);

// A one-line progress bar on stderr (only when stderr is a terminal or force is set).
void progress(const std::string& label, int64_t done, int64_t total, double seconds);
void progress_done();

std::string human_bytes(double b);

}  // namespace h1bkv
