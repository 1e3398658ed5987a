#include "eval/compare.h"
#include "eval/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "kv/cache.h"
#include "kv/registry.h"
#include "model/model.h"
#include "util/error.h"
#include "util/timer.h"

namespace h1bkv {

namespace {

struct Acc {
  double nll = 0, nll2 = 0;
  int64_t n = 0;
  KlAccumulator kl;
  double seconds = 0;
};

}  // namespace

CompareResult compare_caches(Model& model, KvCache& base, const std::vector<CompareCache>& caches,
                             const std::vector<int32_t>& tokens, const PplParams& p,
                             const std::function<void(int64_t, int64_t)>& progress) {
  const int64_t n_ctx = p.n_ctx;
  int64_t n_chunks = (int64_t)tokens.size() / n_ctx;
  check(n_chunks > 0, "the text has " + std::to_string(tokens.size()) +
                          " tokens, fewer than one chunk of " + std::to_string(n_ctx));
  if (p.max_chunks >= 0 && p.max_chunks < n_chunks) n_chunks = p.max_chunks;
  const int32_t nv = model.config().n_vocab;
  const int64_t first = n_ctx / 2;
  std::vector<float> base_lp((size_t)n_ctx * nv), run_lp((size_t)n_ctx * nv);  // [n_ctx][n_vocab]
  std::vector<int32_t> chunk(n_ctx);
  Acc base_acc;
  std::vector<Acc> acc(caches.size());
  const int64_t total = n_chunks * (int64_t)(caches.size() + 1);
  int64_t done = 0;
  for (int64_t c = 0; c < n_chunks; ++c) {
    std::copy(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx, chunk.begin());
    if (p.bos >= 0) chunk[0] = p.bos;
    eval_chunk(model, base, chunk.data(), p, base_lp.data());
    for (int64_t j = first; j < n_ctx - 1; ++j) {
      const double v = -(double)base_lp[(size_t)j * nv + chunk[j + 1]];
      base_acc.nll += v;
      ++base_acc.n;
    }
    if (progress) progress(++done, total);
    for (size_t k = 0; k < caches.size(); ++k) {
      Timer t;
      eval_chunk(model, *caches[k].cache, chunk.data(), p, run_lp.data());
      Acc& a = acc[k];
      for (int64_t j = first; j < n_ctx - 1; ++j) {
        const float* lb = base_lp.data() + (size_t)j * nv;
        const float* lr = run_lp.data() + (size_t)j * nv;
        const double v = -(double)lr[chunk[j + 1]];
        a.nll += v;
        a.nll2 += v * v;
        ++a.n;
        a.kl.add(lb, lr, nv, chunk[j + 1]);
      }
      a.seconds += t.seconds();
      if (progress) progress(++done, total);
    }
  }
  CompareResult r;
  r.n_ctx = p.n_ctx;
  r.n_chunks = n_chunks;
  r.n_scored = base_acc.n;
  r.base_ppl = std::exp(base_acc.nll / base_acc.n);
  for (size_t k = 0; k < caches.size(); ++k) {
    const Acc& a = acc[k];
    const KvCache& kc = *caches[k].cache;
    const CacheGeometry& g = kc.geometry();
    CompareRow row;
    row.label = caches[k].label;
    row.spec = kc.spec();
    row.bytes_per_token = kc.bytes_per_token();
    row.fixed_bytes = cache_fixed_bytes(parse_cache_spec(kc.spec()), g);
    row.bits_per_element = row.bytes_per_token * 8.0 / (2.0 * g.n_layer * g.n_kv_head * g.head_dim);
    const double mean = a.nll / a.n, var = a.nll2 / a.n - mean * mean;
    row.ppl = std::exp(mean);
    row.ppl_err = var > 0 && a.n > 1 ? std::sqrt(var / (a.n - 1)) * row.ppl : 0;
    row.dppl_pct = 100.0 * (row.ppl / r.base_ppl - 1.0);
    row.kl = a.kl.stats();
    row.seconds = a.seconds;
    r.rows.push_back(row);
  }
  return r;
}

nlohmann::json compare_to_json(const CompareResult& r) {
  nlohmann::json j = {{"ctx", r.n_ctx}, {"chunks", r.n_chunks}, {"scored", r.n_scored},
                      {"base_ppl", r.base_ppl}, {"rows", nlohmann::json::array()}};
  for (const auto& row : r.rows)
    j["rows"].push_back({{"cache", row.label}, {"spec", row.spec},
                         {"bytes_per_token", row.bytes_per_token}, {"fixed_bytes", row.fixed_bytes},
                         {"bits_per_element", row.bits_per_element}, {"ppl", row.ppl},
                         {"ppl_err", row.ppl_err}, {"dppl_pct", row.dppl_pct},
                         {"kld_mean", row.kl.kl_mean}, {"kld_p99", row.kl.kl_p99},
                         {"top1_agree", row.kl.top1_agree}, {"seconds", row.seconds}});
  return j;
}

CompareResult compare_from_json(const nlohmann::json& j, const std::string& where) {
  CompareResult r;
  try {
    r.n_ctx = j.at("ctx").get<int64_t>();
    r.n_chunks = j.at("chunks").get<int64_t>();
    r.n_scored = j.at("scored").get<int64_t>();
    r.base_ppl = j.at("base_ppl").get<double>();
    for (const auto& x : j.at("rows")) {
      CompareRow row;
      row.label = x.at("cache").get<std::string>();
      row.spec = x.at("spec").get<std::string>();
      row.bytes_per_token = x.at("bytes_per_token").get<double>();
      row.fixed_bytes = x.at("fixed_bytes").get<double>();
      row.bits_per_element = x.at("bits_per_element").get<double>();
      row.ppl = x.at("ppl").get<double>();
      row.ppl_err = x.at("ppl_err").get<double>();
      row.dppl_pct = x.at("dppl_pct").get<double>();
      row.kl.kl_mean = x.at("kld_mean").get<double>();
      row.kl.kl_p99 = x.at("kld_p99").get<double>();
      row.kl.top1_agree = x.at("top1_agree").get<double>();
      row.seconds = x.at("seconds").get<double>();
      r.rows.push_back(row);
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + ": not a compare result (" + std::string(e.what()) + ")");
  }
  check(r.n_ctx > 0, where + ": not a compare result (ctx " + std::to_string(r.n_ctx) + ")");
  return r;
}

std::string display_label(const std::string& label) {
  const size_t at = label.find('@');
  return at == std::string::npos ? label : label.substr(0, at) + " +calib";
}

std::string compare_markdown(const CompareResult& r, int64_t ctx) {
  std::string s;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "| cache | bits/elem | bytes/token | vs f16 | MB @ %lld | MB @ 8192 | PPL | ΔPPL %% | "
                "mean KLD | KLD p99 | top-1 %% |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
                (long long)ctx);
  s += buf;
  for (const auto& row : r.rows) {
    const double ratio = 16.0 / row.bits_per_element;  // f16 stores 16 bits per element
    std::snprintf(buf, sizeof buf,
                  "| %s | %.2f | %.0f | %.2fx | %.2f | %.2f | %.4f ± %.3f | %+.2f | %.5f | %.4f | %.2f |\n",
                  display_label(row.label).c_str(), row.bits_per_element, row.bytes_per_token, ratio,
                  (row.bytes_per_token * ctx + row.fixed_bytes) / 1e6,
                  (row.bytes_per_token * 8192 + row.fixed_bytes) / 1e6, row.ppl, row.ppl_err,
                  row.dppl_pct, row.kl.kl_mean, row.kl.kl_p99, 100.0 * row.kl.top1_agree);
    s += buf;
  }
  std::snprintf(buf, sizeof buf, "\nbase: f16 cache, PPL %.4f over %lld chunks (%lld scored tokens)\n",
                r.base_ppl, (long long)r.n_chunks, (long long)r.n_scored);
  s += buf;
  return s;
}


std::string compare_svg(const CompareResult& r, const std::string& title) {
  const double W = 900, H = 560, L = 80, R = 260, T = 50, B = 60;  // plot area margins (px)
  double xmin = 1e300, xmax = 0, ymin = 1e300, ymax = 0;
  const double ctx = r.n_ctx > 0 ? (double)r.n_ctx : 1e300;
  auto held = [&](const CompareRow& row) { return row.bytes_per_token + row.fixed_bytes / ctx; };
  for (const auto& row : r.rows) {  // the base (KLD 0) is drawn as a vertical line
    xmin = std::min(xmin, held(row));
    xmax = std::max(xmax, held(row));
    if (row.kl.kl_mean > 0) ymin = std::min(ymin, row.kl.kl_mean), ymax = std::max(ymax, row.kl.kl_mean);
  }
  if (ymin > ymax) ymin = 1e-4, ymax = 1;
  if (r.rows.empty()) xmin = 1, xmax = 10, ymin = 1e-4, ymax = 1;
  const double lx0 = std::floor(std::log10(xmin * 0.8)), lx1 = std::ceil(std::log10(xmax * 1.25));
  const double ly0 = std::floor(std::log10(ymin)), ly1 = std::max(ly0 + 1, std::ceil(std::log10(ymax)));
  auto X = [&](double v) { return L + (std::log10(v) - lx0) / (lx1 - lx0) * (W - L - R); };
  auto Y = [&](double v) { return H - B - (std::log10(std::max(v, 1e-6)) - ly0) / (ly1 - ly0) * (H - T - B); };
  std::string s;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                W, H);
  s += buf;
  std::snprintf(buf, sizeof buf, "<text x=\"%.0f\" y=\"25\" font-size=\"15\">%s</text>\n", L,
                xml_escape(title).c_str());
  s += buf;
  // axes, decade grid lines and labels
  for (double e = lx0; e <= lx1 + 1e-9; e += 1) {
    for (int m = 1; m < 10; ++m) {
      const double v = m * std::pow(10.0, e);
      if (std::log10(v) > lx1 + 1e-9) break;
      std::snprintf(buf, sizeof buf, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"%s\"/>\n",
                    X(v), T, X(v), H - B, m == 1 ? "#bbb" : "#eee");
      s += buf;
      if (m == 1 || m == 2 || m == 5) {
        std::snprintf(buf, sizeof buf, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%g</text>\n",
                      X(v), H - B + 18, v);
        s += buf;
      }
    }
  }
  for (double e = ly0; e <= ly1 + 1e-9; e += 1) {
    std::snprintf(buf, sizeof buf, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#bbb\"/>\n"
                  "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">1e%g</text>\n",
                  L, Y(std::pow(10.0, e)), W - R, Y(std::pow(10.0, e)), L - 6, Y(std::pow(10.0, e)) + 4, e);
    s += buf;
  }
  std::snprintf(buf, sizeof buf,
                "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">KV cache bytes per token held at ctx %lld, full-precision tiers included (log)</text>\n"
                "<text x=\"18\" y=\"%.0f\" transform=\"rotate(-90 18 %.0f)\" text-anchor=\"middle\">"
                "mean KL divergence vs f16 (log)</text>\n",
                (L + W - R) / 2, H - 18, (long long)r.n_ctx, (T + H - B) / 2, (T + H - B) / 2);
  s += buf;
  // one colour per cache family, a legend, and each family's Pareto front (points no other point of
  // the family beats with fewer bytes) drawn as its curve
  auto family_of = [](const CompareRow& row) { return row.spec.substr(0, row.spec.find(':')); };
  static const std::string other_color = CacheTypeDef{}.color;
  auto color_of = [&](const std::string& fam) -> const char* {  // the cache type's (kv/registry.h)
    for (const auto& t : cache_types())
      if (t.name == fam) return t.color.c_str();
    return other_color.c_str();
  };
  std::vector<std::string> families;
  for (const auto& row : r.rows)
    if (std::find(families.begin(), families.end(), family_of(row)) == families.end())
      families.push_back(family_of(row));
  double ly = T + 10;
  for (const auto& fam : families) {
    std::vector<const CompareRow*> pts;
    for (const auto& row : r.rows)
      if (family_of(row) == fam) pts.push_back(&row);
    std::sort(pts.begin(), pts.end(), [&](auto* a, auto* b) { return held(*a) < held(*b); });
    std::string path;
    double best = 1e300;
    for (const auto* p : pts)
      if (p->kl.kl_mean < best) {
        best = p->kl.kl_mean;
        std::snprintf(buf, sizeof buf, "%s%.1f,%.1f", path.empty() ? "" : " ", X(held(*p)), Y(p->kl.kl_mean));
        path += buf;
      }
    if (pts.size() > 1) {
      std::snprintf(buf, sizeof buf, "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\"/>\n",
                    path.c_str(), color_of(fam));
      s += buf;
    }
    const char* note = fam == "loki" ? " (holds all tokens; reads fewer)" : fam == "evict" ? " (drops tokens)" : "";
    std::snprintf(buf, sizeof buf,
                  "<circle cx=\"%.0f\" cy=\"%.0f\" r=\"5\" fill=\"%s\"/><text x=\"%.0f\" y=\"%.0f\">%s%s</text>\n",
                  W - R + 20, ly, color_of(fam), W - R + 30, ly + 4, fam.c_str(), note);
    s += buf;
    ly += 18;
  }
  const bool crowded = r.rows.size() > 12;  // then points carry only their options (legend: family)
  for (const auto& row : r.rows) {
    const char* c = color_of(family_of(row));
    const double x = X(held(row)), y = Y(row.kl.kl_mean);
    std::string label = display_label(row.label);
    const size_t colon = label.find(':');
    if (crowded && colon != std::string::npos) label = label.substr(colon + 1);
    if (!(row.kl.kl_mean > 0)) {  // the reference itself
      std::snprintf(buf, sizeof buf,
                    "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"%s\" stroke-dasharray=\"4 3\"/>\n"
                    "<text x=\"%.1f\" y=\"%.0f\" fill=\"%s\" font-size=\"10\">%s (reference)</text>\n",
                    x, T, x, H - B, c, x + 4, T + 12, c, xml_escape(label).c_str());
      s += buf;
      continue;
    }
    std::snprintf(buf, sizeof buf, "<g><title>%s (ΔPPL %+.1f%%)</title><circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/></g>\n",
                  xml_escape(row.label).c_str(), row.dppl_pct, x, y, c);
    s += buf;
    std::snprintf(buf, sizeof buf, "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\" font-size=\"%d\">%s %+.1f%%</text>\n",
                  x + 7, y + 4, c, crowded ? 9 : 10, xml_escape(crowded && colon == std::string::npos ? "" : label).c_str(),
                  row.dppl_pct);
    s += buf;
  }
  s += "</svg>\n";
  return s;
}

}  // namespace h1bkv
