// ARC-Easy, ARC-Challenge and PIQA from `{"query","choices","gold"}` JSONL files
// (data/tasks/arc_easy.jsonl, arc_challenge.jsonl, piqa.jsonl), zero-shot with lm-eval's prompt
// "Question: {question}\nAnswer:" and continuations " {choice}".
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "eval/tasks/mc_task.h"

namespace h1bkv {

// "Question: {q}\nAnswer:" from a query that may already start with "Question: " and may end in
// whitespace (the files' PIQA queries end in "\n").
std::string question_answer_prompt(const std::string& query);
// One McQuestion per line: {"query": str, "choices": [str, ...], "gold": int} and an optional
// "context": str put before the question ("{context}\nQuestion: {q}\nAnswer:").
// Throws Error "PATH:LINE: ..." on a malformed line.
std::vector<McQuestion> load_query_choices_gold(const std::string& path);

std::unique_ptr<Task> make_arc_easy_task(const TaskOptions& o);
std::unique_ptr<Task> make_arc_challenge_task(const TaskOptions& o);
std::unique_ptr<Task> make_piqa_task(const TaskOptions& o);

}  // namespace h1bkv
