// MMLU (data/tasks/mmlu/{dev,test}/<subject>_{dev,test}.csv, 57 subjects): k-shot (default 5)
// with the first k dev questions of the subject as exemplars, in the original MMLU prompt layout
// (Hendrycks et al. 2021, evaluate.py):
//   The following are multiple choice questions (with answers) about {subject}.\n\n
//   {q}\nA. {c0}\nB. {c1}\nC. {c2}\nD. {c3}\nAnswer: {L}\n\n      (k exemplars)
//   {q}\nA. {c0}\nB. {c1}\nC. {c2}\nD. {c3}\nAnswer:             (the test question)
// scored by the log-likelihood of " A" .. " D" (acc). Items of a subject share the k-shot prefix,
// which the session reuses.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "eval/tasks/mc_task.h"

namespace h1bkv {

// RFC 4180 CSV: fields separated by ',', quoted fields may hold ',', '\n' and doubled quotes.
// Throws Error "WHAT: ..." on an unterminated quote.
std::vector<std::vector<std::string>> parse_csv(const std::string& text, const std::string& what);

struct MmluQuestion {
  std::string question;
  std::string choices[4];
  int answer = 0;  // 0-3
};

// Rows of a `question,choice0..choice3,answer` file (header skipped).
std::vector<MmluQuestion> load_mmlu_csv(const std::string& path);
// "abstract_algebra" -> "The following are ... about abstract algebra.\n\n" + exemplars.
std::string mmlu_prefix(const std::string& subject, const std::vector<MmluQuestion>& exemplars);
// One question ending in "Answer:" (answer_letter false) or "Answer: B\n\n" (an exemplar).
std::string mmlu_question(const MmluQuestion& q, bool with_answer);

std::unique_ptr<Task> make_mmlu_task(const TaskOptions& o);

}  // namespace h1bkv
