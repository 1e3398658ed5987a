// h1bkv info: metadata, tensor table, and KV-cache bytes per token for each cache type.
#include <cstdio>

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
  bool tensors = true;
  bool metadata = true;
  std::vector<std::string> caches = {"f32", "f16"};
  std::vector<int64_t> contexts = {512, 2048, 8192, 32768};

  void add_to(CLI::App& app) {
    app.add_option("-m,--model", model, "GGUF model file")->required();
    app.add_flag("!--no-tensors", tensors, "omit the tensor table");
    app.add_flag("!--no-metadata", metadata, "omit the metadata table");
    app.add_option("--caches", caches, "cache types for the bytes table")->capture_default_str();
    app.add_option("--contexts", contexts, "context sizes for the bytes table")->capture_default_str();
  }
};

int info(InfoOptions& o) {
  std::vector<CacheSpec> specs;
  for (const auto& c : o.caches) specs.push_back(parse_cache_spec(c));
  auto g = GgufFile::open(o.model);
  std::printf("file: %s (GGUF v%u, %s, %zu tensors, %zu metadata keys)\n", o.model.c_str(),
              g->version(), human_bytes((double)g->file_size()).c_str(), g->tensors().size(),
              g->metadata().size());
  if (o.metadata) {
    std::printf("\n| key | type | value |\n|---|---|---|\n");
    for (const auto& [k, v] : g->metadata())
      std::printf("| %s | %s | %s |\n", k.c_str(), gguf_type_name(v.type), v.to_string().c_str());
  }
  if (o.tensors) {
    std::printf("\n| tensor | type | shape | bytes |\n|---|---|---|---|\n");
    for (const auto& t : g->tensors()) {
      std::string shape;
      for (uint32_t d = 0; d < t.n_dims; ++d) shape += (d ? " x " : "") + std::to_string(t.ne[d]);
      std::printf("| %s | %s | %s | %llu |\n", t.name.c_str(), ggml_type_name(t.type).c_str(),
                  shape.c_str(), (unsigned long long)t.n_bytes);
    }
  }
  const ModelConfig c = ModelConfig::from_gguf(*g);
  std::printf("\nmodel: %s, %d layers, %d heads, %d KV heads, head dim %d, embd %d, ff %d, "
              "vocab %d, rope base %g, trained ctx %d%s\n",
              c.arch.c_str(), c.n_layer, c.n_head, c.n_kv_head, c.head_dim, c.n_embd, c.n_ff,
              c.n_vocab, c.rope_base, c.n_ctx_train, c.tied_embeddings ? ", tied embeddings" : "");
  CacheGeometry geo{c.n_layer, c.n_head, c.n_kv_head, c.head_dim, 1};
  std::printf("\n| cache | bytes/token |");
  for (int64_t n : o.contexts) std::printf(" @ %lld |", (long long)n);
  std::printf("\n|---|---|");
  for (size_t i = 0; i < o.contexts.size(); ++i) std::printf("---|");
  std::printf("\n");
  for (const auto& s : specs) {
    const double bpt = cache_bytes_per_token(s, geo);
    std::printf("| %s | %.0f |", s.str().c_str(), bpt);
    for (int64_t n : o.contexts) std::printf(" %s |", human_bytes(bpt * n).c_str());
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
