// LAMBADA, OpenAI's detokenized test set (data/tasks/lambada_test.jsonl, `{"text": ...}`), as
// lm-eval's lambada_openai: context = the text up to its last space, target = " " + last word;
// correct iff greedy decoding reproduces every target token; perplexity of the last word =
// exp(mean over items of the target's summed negative log-likelihood).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "eval/tasks/task.h"

namespace h1bkv {

struct LambadaItem {
  std::string context;  // text before the last space
  std::string target;   // " " + last word
};

// Splits a passage at its last space; throws Error when there is none or the last word is empty.
LambadaItem split_lambada(const std::string& text);

class LambadaTask : public Task {
 public:
  LambadaTask(std::vector<LambadaItem> items, const Tokenizer& tok) : items_(std::move(items)), tok_(tok) {}
  std::string name() const override { return "lambada"; }
  int64_t size() const override { return (int64_t)items_.size(); }
  int64_t standard_size() const override { return 500; }
  int64_t ctx_needed() const override { return 1024; }
  ItemResult score(EvalSession& s, int64_t item) override;
  nlohmann::json settings() const override;
  // "ppl": exp(sum target_nll / n), "target_tokens": mean tokens per target word
  std::vector<std::pair<std::string, double>> summarize(const std::map<std::string, double>& sums,
                                                        int64_t n) const override;
  const std::vector<LambadaItem>& items() const { return items_; }

 private:
  std::vector<LambadaItem> items_;
  const Tokenizer& tok_;
};

std::unique_ptr<Task> make_lambada_task(const TaskOptions& o);

}  // namespace h1bkv
