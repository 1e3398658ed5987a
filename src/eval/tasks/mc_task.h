// A multiple-choice task by log-likelihood (ARC, PIQA, HellaSwag, MMLU): items whose prompt is
// already built, each scored with score_multiple_choice (eval/tasks/loglik.h).
#pragma once
#include <string>
#include <vector>

#include "eval/tasks/task.h"

namespace h1bkv {

struct McQuestion {
  std::string context;               // the full prompt, ending where the continuation starts
  std::vector<std::string> choices;  // without the delimiter
  int gold = 0;
  std::string group;                 // "" or a breakdown key (MMLU subject)
};

struct McTaskSpec {
  std::string name;
  int64_t standard_size = 500;  // first N items (per group when per_group)
  bool per_group = false;       // standard size / --limit count per group (MMLU: per subject)
  bool has_norm = true;
  int64_t ctx_needed = 1024;
  std::string delimiter = " ";  // between context and choice (lm-eval's target_delimiter)
  nlohmann::json settings;      // prompt settings for the JSON output
};

class McTask : public Task {
 public:
  McTask(McTaskSpec spec, std::vector<McQuestion> items, const Tokenizer& tok);
  std::string name() const override { return spec_.name; }
  int64_t size() const override { return (int64_t)items_.size(); }
  int64_t standard_size() const override { return spec_.standard_size; }
  bool has_norm() const override { return spec_.has_norm; }
  std::vector<int64_t> select(int64_t limit, bool full) const override;
  int64_t ctx_needed() const override { return spec_.ctx_needed; }
  ItemResult score(EvalSession& s, int64_t item) override;
  nlohmann::json settings() const override;
  const std::vector<McQuestion>& items() const { return items_; }

 private:
  McTaskSpec spec_;
  std::vector<McQuestion> items_;
  const Tokenizer& tok_;
};

}  // namespace h1bkv
