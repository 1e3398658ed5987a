// Every task `h1bkv eval --tasks` knows, in display order: one line per task.
#include "eval/tasks/task.h"

namespace h1bkv {

const std::vector<TaskDef>& task_types() {
  static const std::vector<TaskDef> types = [] {
    std::vector<TaskDef> t;
    return t;
  }();
  return types;
}

}  // namespace h1bkv
