// h1bkv info: metadata, tensor table, and KV-cache bytes for each cache type — for a model file
// (-m) or for a geometry given on the command line (--geometry LAYERS,KV_HEADS,HEAD_DIM).
#include <algorithm>
#include <cstdio>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "io/ggml_type.h"
#include "io/gguf.h"
#include "model/config.h"
#include "util/error.h"

namespace h1bkv {

namespace {

struct InfoOptions {
  std::string model;
  std::string geometry;  // "layers,kv_heads,head_dim"
  bool tensors = true;
  bool metadata = true;
  std::vector<std::string> caches = {"f32", "f16", "plain:v=int4", "h1b:bits=64", "h1b:bits=128",
                                     "h1b:bits=256", "h1b:bits=512", "h1b:bits=256,est=qjl"};
  std::vector<int64_t> contexts = {512, 2048, 8192, 32768};

  void add_to(CLI::App& app) {
    auto* m = app.add_option("-m,--model", model, "GGUF model file");
    auto* g = app.add_option("--geometry", geometry,
                             "instead of -m: LAYERS,KV_HEADS,HEAD_DIM (e.g. 32,32,128 = Llama-2-7B)");
    m->excludes(g);
    app.add_flag("!--no-tensors", tensors, "omit the tensor table");
    app.add_flag("!--no-metadata", metadata, "omit the metadata table");
    app.add_option("--caches", caches, "cache types for the bytes table")->capture_default_str();
    app.add_option("--contexts", contexts, "context sizes for the bytes table")->delimiter(',')->capture_default_str()
        ->check(int_range(1, kMaxTokens));
  }
};

CacheGeometry parse_geometry(const std::string& s) {
  std::stringstream ss(s);
  std::string item;
  std::vector<int64_t> v;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const long long x = std::strtoll(item.c_str(), &end, 10);
    check(!item.empty() && *end == 0 && x > 0 && x <= 1 << 20,
          "--geometry: '" + item + "' is not a positive integer");
    v.push_back(x);
  }
  check(v.size() == 3, "--geometry needs LAYERS,KV_HEADS,HEAD_DIM, got '" + s + "'");
  return CacheGeometry{(int)v[0], (int)v[1], (int)v[1], (int)v[2], 1};
}

void print_model(const InfoOptions& o, const GgufFile& g) {
  std::printf("file: %s (GGUF v%u, %s, %zu tensors, %zu metadata keys, id %s)\n", o.model.c_str(),
              g.version(), human_bytes((double)g.file_size()).c_str(), g.tensors().size(),
              g.metadata().size(), g.header_hash().c_str());
  if (o.metadata) {
    std::printf("\n| key | type | value |\n|---|---|---|\n");
    for (const auto& [k, v] : g.metadata())
      std::printf("| %s | %s | %s |\n", k.c_str(), gguf_type_name(v.type), v.to_string().c_str());
  }
  if (o.tensors) {
    std::printf("\n| tensor | type | shape | bytes |\n|---|---|---|---|\n");
    for (const auto& t : g.tensors()) {
      std::string shape;
      for (uint32_t d = 0; d < t.n_dims; ++d) shape += (d ? " x " : "") + std::to_string(t.ne[d]);
      std::printf("| %s | %s | %s | %llu |\n", t.name.c_str(), ggml_type_name(t.type).c_str(),
                  shape.c_str(), (unsigned long long)t.n_bytes);
    }
  }
}

int info(InfoOptions& o) {
  check(!o.model.empty() || !o.geometry.empty(), "info needs -m MODEL or --geometry L,H,D");
  std::vector<CacheSpec> specs;
  for (const auto& c : o.caches) specs.push_back(parse_cache_spec(c));
  CacheGeometry geo;
  if (!o.model.empty()) {
    auto g = GgufFile::open(o.model);
    print_model(o, *g);
    const ModelConfig c = ModelConfig::from_gguf(*g);
    std::printf("\nmodel: %s, %d layers, %d heads, %d KV heads, head dim %d, embd %d, ff %d, "
                "vocab %d, rope base %g, trained ctx %d%s\n",
                c.arch.c_str(), c.n_layer, c.n_head, c.n_kv_head, c.head_dim, c.n_embd, c.n_ff,
                c.n_vocab, c.rope_base, c.n_ctx_train, c.tied_embeddings ? ", tied embeddings" : "");
    geo = CacheGeometry{c.n_layer, c.n_head, c.n_kv_head, c.head_dim, 1};
  } else {
    geo = parse_geometry(o.geometry);
    std::printf("geometry: %d layers x %d KV heads x head dim %d\n", geo.n_layer, geo.n_kv_head,
                geo.head_dim);
  }
  const double f16 = cache_bytes_per_token(parse_cache_spec("f16"), geo);
  std::printf("\nKV cache bytes (per token from the formula; totals add the fixed full-precision "
              "tiers; 1 MB = 1e6 bytes)\n\n| cache | bytes/token | vs f16 | fixed |");
  for (int64_t n : o.contexts) std::printf(" @ %lld |", (long long)n);
  std::printf("\n|---|---:|---:|---:|");
  for (size_t i = 0; i < o.contexts.size(); ++i) std::printf("---:|");
  std::printf("\n");
  // budgets and residuals depend on the context (evict keeps a fraction of it, kivi's residual is
  // at most it): the bytes/token and fixed columns are at the largest context, each total at its own
  CacheGeometry at = geo;
  for (int64_t n : o.contexts) at.n_ctx = std::max(at.n_ctx, n);
  for (size_t i = 0; i < specs.size(); ++i) {
    const CacheSpec& s = specs[i];
    const double bpt = cache_bytes_per_token(s, at), fixed = cache_fixed_bytes(s, at);
    std::printf("| %s | %.0f | %.2fx | %s |", o.caches[i].c_str(), bpt, f16 / bpt,
                human_bytes(fixed).c_str());
    for (int64_t n : o.contexts) {
      CacheGeometry gn = geo;
      gn.n_ctx = n;
      std::printf(" %s |", human_bytes(cache_bytes(s, gn)).c_str());
    }
    std::printf("\n");
  }
  return 0;
}

}  // namespace

Action register_info(CLI::App& app) {
  auto* sub = app.add_subcommand("info", "model metadata, tensors and KV bytes per token");
  auto o = std::make_shared<InfoOptions>();
  o->add_to(*sub);
  return [o] { return info(*o); };
}

}  // namespace h1bkv
