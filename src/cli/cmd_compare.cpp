// h1bkv compare: several caches on the same text against one f16 base run — PPL, ΔPPL, KL
// divergence, top-1 agreement and exact bytes per token; markdown (or JSON) and an SVG plot of
// quality against bytes.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "eval/cache_list.h"
#include "eval/compare.h"
#include "kv/calib/h1b_calibration.h"
#include "model/model.h"
#include "tokenize/tokenizer.h"
#include "util/error.h"
#include "util/file.h"
#include "util/timer.h"

namespace h1bkv {

namespace {

struct CompareOptions {
  std::string model;
  int64_t n_ctx = 512;
  int threads = 0;
  std::string file;
  std::string caches = "f16;plain:v=int4;h1b:bits=256;h1b:bits=256,est=qjl";
  int64_t chunks = 10;
  bool json = false;
  std::string json_out;  // also write the JSON here
  std::string plot;  // SVG path
  std::string title;
  std::string replot;  // a saved JSON result

  void add_to(CLI::App& app) {
    app.add_option("-m,--model", model, "GGUF model file (required unless --replot)");
    app.add_option("-c,--ctx-size", n_ctx, "chunk (context) size in tokens")->capture_default_str()
        ->check(int_range(4, kMaxTokens));
    app.add_option("-t,--threads", threads, "threads (0 = all cores)")->capture_default_str()
        ->check(int_range(0, max_threads()));
    app.add_option("-f,--file", file, "text file to score (required unless --replot)");
    app.add_option("--caches", caches,
                   "caches separated by ';', each TYPE[:opts][@CALIB.json]")->capture_default_str();
    app.add_option("--chunks", chunks, "chunks to score (-1 = all)")->capture_default_str()
        ->check(chunks_range());
    app.add_flag("--json", json, "print JSON instead of markdown");
    app.add_option("--json-out", json_out, "also write the JSON to this file");
    app.add_option("--plot", plot, "write an SVG plot of KLD against bytes per token");
    app.add_option("--title", title, "plot title");
    app.add_option("--replot", replot, "redo the table and --plot from a saved --json-out file (no model run)");
  }
};

void write_plot(const CompareOptions& o, const CompareResult& r) {
  if (o.plot.empty()) return;
  write_file(o.plot, compare_svg(r, o.title.empty() ? "quality per byte, ctx " + std::to_string(r.n_ctx) : o.title));
}

int replot(const CompareOptions& o) {
  check_outputs_distinct({o.replot}, {o.plot});
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(o.replot));
  } catch (const nlohmann::json::exception& e) {
    throw Error(o.replot + ": bad JSON (" + std::string(e.what()) + ")");
  }
  const CompareResult r = compare_from_json(j, o.replot);
  write_plot(o, r);
  std::printf("%s", compare_markdown(r, r.n_ctx).c_str());
  return 0;
}

int compare(CompareOptions& o) {
  if (!o.replot.empty()) return replot(o);
  check(!o.model.empty(), "compare needs -m MODEL (or --replot FILE.json)");
  check(!o.file.empty(), "compare needs -f FILE, the text to score");
  // parse every entry first, so a typo fails before any work
  const std::vector<CacheListEntry> entries = parse_cache_list(o.caches);
  check(o.n_ctx >= 4, "-c must be at least 4");
  std::vector<std::string> inputs = {o.model, o.file};
  for (const auto& e : entries) inputs.push_back(e.calib);
  check_outputs_distinct(inputs, {o.json_out, o.plot});
  check_regular_file(o.file);
  for (const auto& e : entries)
    if (!e.calib.empty()) check_regular_file(e.calib), refuse_lora(e.calib, "compare");
  apply_threads(o.threads);
  Loaded l = load_model(o.model);
  Model& model = *l.model;
  const CacheGeometry geo = model.cache_geometry(o.n_ctx);
  double all_caches = cache_bytes(parse_cache_spec("f16"), geo);
  for (const auto& e : entries) all_caches += cache_bytes(e.spec, geo);
  // base and run log-probabilities [n_ctx][n_vocab] each (eval/compare.cpp)
  check_memory("compare", all_caches, (double)model.workspace_bytes(o.n_ctx),
               8.0 * (double)o.n_ctx * model.config().n_vocab);
  std::vector<std::unique_ptr<KvCache>> owned;
  std::vector<CompareCache> caches;
  for (const auto& e : entries) {
    owned.push_back(make_cache(e.spec, geo, e.calib));
    caches.push_back({e.label, owned.back().get()});
  }
  auto base = make_cache(parse_cache_spec("f16"), geo);
  const std::vector<int32_t> toks = l.tok->encode(read_file(o.file), true, false);
  PplParams p;
  p.n_ctx = o.n_ctx;
  p.n_batch = o.n_ctx;
  p.max_chunks = o.chunks;
  p.bos = l.tok->add_bos() ? l.tok->bos() : -1;
  Timer t;
  const CompareResult r = compare_caches(model, *base, caches, toks, p, [&](int64_t d, int64_t n) {
    progress("compare", d, n, t.seconds());
  });
  progress_done();
  write_plot(o, r);
  if (o.json || !o.json_out.empty()) {
    nlohmann::json j = compare_to_json(r);
    j["model"] = o.model;
    j["file"] = o.file;
    if (!o.json_out.empty()) write_file(o.json_out, j.dump(2) + "\n");
    if (o.json) {
      std::printf("%s\n", j.dump(2).c_str());
      return 0;
    }
  }
  std::printf("%s", compare_markdown(r, o.n_ctx).c_str());
  return 0;
}

}  // namespace

Action register_compare(CLI::App& app) {
  auto* sub = app.add_subcommand("compare", "quality per byte of several caches against f16");
  auto o = std::make_shared<CompareOptions>();
  o->add_to(*sub);
  return [o] { return compare(*o); };
}

}  // namespace h1bkv
