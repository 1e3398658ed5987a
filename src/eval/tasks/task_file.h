// A user's multiple-choice task from a JSON Lines file (`h1bkv eval --task-file FILE.jsonl`):
// one {"query", "choices", "gold"} object per line, optional "context", the form of the ARC/PIQA
// files in ../shared/data/tasks; prompted and scored as those (0-shot "Question: ..\nAnswer:",
// acc and acc_norm by log-likelihood). Every item is in the standard subset.
#pragma once
#include <memory>
#include <string>

#include "eval/tasks/task.h"

namespace h1bkv {

// The task is named after the file ("mytask" for dir/mytask.jsonl). Throws Error "FILE:LINE: ..."
// on a malformed line, "FILE: no items" on an empty file.
std::unique_ptr<Task> make_task_from_file(const std::string& path, const Tokenizer& tok);

}  // namespace h1bkv
