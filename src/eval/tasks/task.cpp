#include "eval/tasks/task.h"

#include <algorithm>

#include "eval/session.h"
#include "kv/cache.h"
#include "util/error.h"

namespace h1bkv {

std::vector<int64_t> Task::select(int64_t limit, bool full) const {
  const int64_t n = full ? size() : std::min(size(), limit > 0 ? limit : standard_size());
  std::vector<int64_t> ids((size_t)n);
  for (int64_t i = 0; i < n; ++i) ids[(size_t)i] = i;
  return ids;
}

ItemResult GenerativeTask::score(EvalSession& s, int64_t item) {
  const GenRequest r = request(item, s.cache().n_ctx());
  return judge(item, generate_greedy(s, tokenizer(), r.prompt, r.opt));
}

std::string task_names() {
  std::string s;
  for (const auto& t : task_types()) s += (s.empty() ? "" : ", ") + t.name;
  return s;
}

std::unique_ptr<Task> make_task(const std::string& name, const TaskOptions& o) {
  for (const auto& t : task_types())
    if (t.name == name) return t.make(o);
  throw Error("unknown task '" + name + "' (tasks: " + task_names() + ")");
}

}  // namespace h1bkv
