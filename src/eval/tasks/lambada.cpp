#include "eval/tasks/lambada.h"

#include <cmath>

#include "eval/data_file.h"
#include "eval/tasks/loglik.h"
#include "util/error.h"

namespace h1bkv {

LambadaItem split_lambada(const std::string& text) {
  const size_t sp = text.rfind(' ');
  check(sp != std::string::npos && sp + 1 < text.size(), "lambada: passage without a last word after a space");
  return {text.substr(0, sp), text.substr(sp)};
}

ItemResult LambadaTask::score(EvalSession& s, int64_t item) {
  check(item >= 0 && item < size(), "lambada: no item " + std::to_string(item));
  const LambadaItem& it = items_[(size_t)item];
  const ContinuationScore c = score_continuation(s, encode_pair(tok_, it.context, it.target));
  ItemResult r;
  r.correct = c.greedy;
  r.sums["target_nll"] = -c.loglik;
  r.sums["target_tokens"] = (double)c.n_tokens;
  return r;
}

nlohmann::json LambadaTask::settings() const {
  return {{"shots", 0}, {"file", "data/tasks/lambada_test.jsonl"},
          {"template", "context = text before the last space, target = ' ' + last word"},
          {"scoring", "acc: greedy decoding reproduces every target token; ppl = exp(mean target NLL per item)"},
          {"subset", "first N items, file order"}, {"standard_size", standard_size()}};
}

std::vector<std::pair<std::string, double>> LambadaTask::summarize(const std::map<std::string, double>& sums,
                                                                   int64_t n) const {
  if (n <= 0) return {};
  const auto get = [&](const char* k) { auto it = sums.find(k); return it == sums.end() ? 0.0 : it->second; };
  return {{"ppl", std::exp(get("target_nll") / (double)n)}, {"target_tokens", get("target_tokens") / (double)n}};
}

std::unique_ptr<Task> make_lambada_task(const TaskOptions& o) {
  check(o.tok != nullptr, "lambada: no tokenizer");
  const std::string path = o.data_dir + "/tasks/lambada_test.jsonl";
  std::vector<LambadaItem> items;
  for (const JsonLine& l : read_jsonl(path)) {
    const std::string text = l.str("text");
    try {
      items.push_back(split_lambada(text));
    } catch (const Error& e) {
      throw Error(l.where + ": " + e.what());
    }
  }
  return std::make_unique<LambadaTask>(std::move(items), *o.tok);
}

}  // namespace h1bkv
