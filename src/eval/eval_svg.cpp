// eval_svg (eval/eval_run.h): accuracy against KV bytes per token, in the style of compare_svg.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "eval/eval_run.h"
#include "eval/svg.h"

namespace h1bkv {

namespace {


double held_bytes(const EvalRow& row) {  // bytes per token held at the cache's n_ctx
  return row.bytes_per_token + (row.n_ctx > 0 ? row.fixed_bytes / (double)row.n_ctx : 0.0);
}
double headline(const EvalRow& row) { return 100.0 * (row.has_norm ? row.acc_norm : row.acc); }

}  // namespace

std::string eval_svg(const EvalResult& r, const std::string& title) {
  const double W = 900, H = 560, L = 80, R = 260, T = 50, B = 60;  // plot area margins (px)
  double xmin = 1e300, xmax = 0;
  for (const auto& row : r.rows) xmin = std::min(xmin, held_bytes(row)), xmax = std::max(xmax, held_bytes(row));
  if (r.rows.empty() || xmin <= 0) xmin = 1, xmax = 10;
  const double lx0 = std::floor(std::log10(xmin * 0.8)), lx1 = std::ceil(std::log10(xmax * 1.25));
  auto X = [&](double v) { return L + (std::log10(v) - lx0) / (lx1 - lx0) * (W - L - R); };
  auto Y = [&](double pct) { return H - B - pct / 100.0 * (H - T - B); };  // accuracy 0-100 %
  std::string s;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                "<text x=\"%.0f\" y=\"25\" font-size=\"15\">%s</text>\n",
                W, H, L, xml_escape(title).c_str());
  s += buf;
  for (double e = lx0; e <= lx1 + 1e-9; e += 1)
    for (int m = 1; m < 10; ++m) {
      const double v = m * std::pow(10.0, e);
      if (std::log10(v) > lx1 + 1e-9) break;
      std::snprintf(buf, sizeof buf, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"%s\"/>\n", X(v), T,
                    X(v), H - B, m == 1 ? "#bbb" : "#eee");
      s += buf;
      if (m == 1 || m == 2 || m == 5) {
        std::snprintf(buf, sizeof buf, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%g</text>\n", X(v),
                      H - B + 18, v);
        s += buf;
      }
    }
  for (int pct = 0; pct <= 100; pct += 10) {
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"%s\"/>\n"
                  "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%d</text>\n",
                  L, Y(pct), W - R, Y(pct), pct % 50 == 0 ? "#bbb" : "#eee", L - 6, Y(pct) + 4, pct);
    s += buf;
  }
  std::snprintf(buf, sizeof buf,
                "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">KV cache bytes per token held at the task's "
                "context, full-precision tiers included (log)</text>\n"
                "<text x=\"18\" y=\"%.0f\" transform=\"rotate(-90 18 %.0f)\" text-anchor=\"middle\">"
                "accuracy %% (acc_norm where the task has it) ± s.e.</text>\n",
                (L + W - R) / 2, H - 18, (T + H - B) / 2, (T + H - B) / 2);
  s += buf;
  // one colour per task: a legend, each task's points joined in order of bytes, error bars
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};
  std::vector<std::string> task_order;
  for (const auto& row : r.rows)
    if (std::find(task_order.begin(), task_order.end(), row.task) == task_order.end()) task_order.push_back(row.task);
  for (size_t t = 0; t < task_order.size(); ++t) {
    const char* col = colors[t % 8];
    std::vector<const EvalRow*> pts;
    for (const auto& row : r.rows)
      if (row.task == task_order[t]) pts.push_back(&row);
    std::sort(pts.begin(), pts.end(), [](auto* a, auto* b) { return held_bytes(*a) < held_bytes(*b); });
    std::string path;
    for (const auto* p : pts) {
      std::snprintf(buf, sizeof buf, "%s%.1f,%.1f", path.empty() ? "" : " ", X(held_bytes(*p)), Y(headline(*p)));
      path += buf;
    }
    std::snprintf(buf, sizeof buf, "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-opacity=\"0.5\"/>\n",
                  path.c_str(), col);
    s += buf;
    for (const auto* p : pts) {
      const double x = X(held_bytes(*p)), y = Y(headline(*p));
      const double se = 100.0 * (p->has_norm ? p->acc_norm_se : p->acc_se);
      std::snprintf(buf, sizeof buf,
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>\n"
                    "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>\n"
                    "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\" font-size=\"10\">%s</text>\n",
                    x, Y(headline(*p) - se), x, Y(headline(*p) + se), col, x, y, col, x + 6, y - 4, col,
                    xml_escape(p->cache).c_str());
      s += buf;
    }
    std::snprintf(buf, sizeof buf,
                  "<rect x=\"%.0f\" y=\"%.0f\" width=\"10\" height=\"10\" fill=\"%s\"/>"
                  "<text x=\"%.0f\" y=\"%.0f\">%s</text>\n",
                  W - R + 20, T + 18.0 * t, col, W - R + 36, T + 18.0 * t + 9, xml_escape(task_order[t]).c_str());
    s += buf;
  }
  s += "</svg>\n";
  return s;
}

}  // namespace h1bkv
