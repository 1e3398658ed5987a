// Quality per byte: several caches scored on the same chunks against one f16 base run, as
// `h1bkv compare` prints it. Base log-probabilities are computed once per chunk and kept in memory
// only for that chunk ([n_ctx/2 - 1][n_vocab] floats).
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/kl.h"
#include "eval/perplexity.h"

namespace h1bkv {

class KvCache;

struct CompareRow {
  std::string label;          // as the user wrote it
  std::string spec;           // canonical cache spec
  double bytes_per_token = 0;  // all layers, from the formula
  double fixed_bytes = 0;      // full-precision tiers beside the per-token bytes
  double bits_per_element = 0;  // bytes_per_token * 8 / (2 * layers * kv_heads * head_dim)
  double ppl = 0, ppl_err = 0;
  double dppl_pct = 0;  // 100 * (ppl / base_ppl - 1)
  KlStats kl;
  double seconds = 0;
};

struct CompareResult {
  double base_ppl = 0;
  int64_t n_ctx = 0, n_chunks = 0, n_scored = 0;
  std::vector<CompareRow> rows;
};

struct CompareCache {
  std::string label;
  KvCache* cache = nullptr;
};

// progress(done, total): units are (chunk, cache) evaluations including the base.
CompareResult compare_caches(Model& model, KvCache& base, const std::vector<CompareCache>& caches,
                             const std::vector<int32_t>& tokens, const PplParams& p,
                             const std::function<void(int64_t, int64_t)>& progress = {});

// The result as JSON ({"ctx","chunks","scored","base_ppl","rows":[{"cache","spec",
// "bytes_per_token","fixed_bytes","bits_per_element","ppl","ppl_err","dppl_pct","kld_mean",
// "kld_p99","top1_agree","seconds"}]}) and back; from_json throws Error "WHERE: ..." on a
// malformed document.
nlohmann::json compare_to_json(const CompareResult& r);
CompareResult compare_from_json(const nlohmann::json& j, const std::string& where);

// A row's label for tables and plots: "TYPE:opts@FILE" shown as "TYPE:opts +calib" (the files are
// in the command line and the JSON).
std::string display_label(const std::string& label);

// Markdown table of the result (ctx, and MB at `ctx` and at 8192 tokens).
std::string compare_markdown(const CompareResult& r, int64_t ctx);

// An SVG scatter plot: mean KLD (log scale) against the bytes per token a cache holds at n_ctx
// tokens (per-token bytes + its full-precision tiers / n_ctx), one point per row, one curve per
// cache family.
std::string compare_svg(const CompareResult& r, const std::string& title);

}  // namespace h1bkv
