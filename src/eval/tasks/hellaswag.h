// HellaSwag validation in llama.cpp's 6-line format (data/tasks/hellaswag_val_full.txt.bz2): the
// context line (already "{activity}: {ctx_a} {Ctx_b}" as lm-eval preprocesses it), the gold label
// 0-3, four endings. Zero-shot; continuation " " + ending; acc_norm is the headline number.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "eval/tasks/mc_task.h"

namespace h1bkv {

// Items from the lines of the file; throws Error "hellaswag line N: ..." on a malformed item.
std::vector<McQuestion> parse_hellaswag(const std::vector<std::string>& lines);

std::unique_ptr<Task> make_hellaswag_task(const TaskOptions& o);

}  // namespace h1bkv
