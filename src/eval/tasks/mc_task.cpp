#include "eval/tasks/mc_task.h"

#include <map>

#include "eval/tasks/loglik.h"
#include "util/error.h"

namespace h1bkv {

McTask::McTask(McTaskSpec spec, std::vector<McQuestion> items, const Tokenizer& tok)
    : spec_(std::move(spec)), items_(std::move(items)), tok_(tok) {
  for (const auto& q : items_)
    check(q.gold >= 0 && q.gold < (int)q.choices.size(),
          spec_.name + ": gold answer " + std::to_string(q.gold) + " out of range");
}

std::vector<int64_t> McTask::select(int64_t limit, bool full) const {
  if (!spec_.per_group || full) return Task::select(limit, full);
  const int64_t per = limit > 0 ? limit : spec_.standard_size;
  std::map<std::string, int64_t> taken;
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < size(); ++i)
    if (taken[items_[(size_t)i].group]++ < per) ids.push_back(i);
  return ids;
}

ItemResult McTask::score(EvalSession& s, int64_t item) {
  check(item >= 0 && item < size(), spec_.name + ": no item " + std::to_string(item));
  const McQuestion& q = items_[(size_t)item];
  ItemResult r = score_multiple_choice(s, tok_, q.context, q.choices, q.gold, spec_.delimiter);
  r.group = q.group;
  return r;
}

nlohmann::json McTask::settings() const {
  nlohmann::json j = spec_.settings;
  j["scoring"] = "lm-eval log-likelihood: acc = argmax sum log p(continuation), acc_norm = argmax sum / "
                 "characters of the choice; continuation = delimiter + choice";
  j["delimiter"] = spec_.delimiter;
  j["subset"] = spec_.per_group ? "first N items of each group, file order" : "first N items, file order";
  j["standard_size"] = spec_.standard_size;
  return j;
}

}  // namespace h1bkv
