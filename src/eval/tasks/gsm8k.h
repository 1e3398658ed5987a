// GSM8K (grade-school maths word problems), few-shot chain of thought, greedy, the final number
// compared exactly. The exemplars are K problems of the test file itself, chosen by seed and
// excluded from scoring. Prompt (lm-eval's "gsm8k" labels with "gsm8k_cot"'s answer phrase):
//   "Question: <q>\nAnswer: <reasoning> The answer is <N>.\n\n" x K, then "Question: <q>\nAnswer:"
// where <reasoning> is the exemplar's solution with the <<calc>> annotations removed and its lines
// joined by spaces. Generation stops at "Question:" or "\n\n" (or 256 tokens).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "eval/tasks/task.h"

namespace h1bkv {

struct Gsm8kProblem {
  std::string question;
  std::string answer;  // solution lines, then "#### N"
};

// One problem per line of test.jsonl {"question", "answer"}; throws Error naming the line.
std::vector<Gsm8kProblem> load_gsm8k(const std::string& path);

// The number after "####", normalized (commas removed); throws Error when there is none.
std::string gsm8k_target(const std::string& answer);
// The solution before "####" without <<...>> annotations, lines joined by single spaces.
std::string gsm8k_reasoning(const std::string& answer);

// A number written in text -> canonical form: "$1,234.50" -> "1234.5", "-0" -> "0", "5.0" -> "5",
// ".5" -> "0.5", "+3" -> "3", trailing '.' dropped; "" when s holds no number.
std::string normalize_number(const std::string& s);
// The number after the first "The answer is" (case-insensitive), else the last number in the
// completion, normalized; "" when there is none. Numbers: digits with ',' between digits and an
// optional decimal part; a '-' (or "-$", "$-") in front makes it negative unless the '-' follows
// a letter or digit ("16-3" is a subtraction, "3" not "-3").
std::string extract_gsm8k_answer(const std::string& completion);

// k distinct indices of [0, n) from the seed (partial Fisher-Yates on mt19937_64; the same on
// every platform).
std::vector<int64_t> choose_exemplars(int64_t n, int k, uint64_t seed);
// The few-shot prefix for these problems and one question's full prompt.
std::string gsm8k_fewshot_prefix(const std::vector<Gsm8kProblem>& exemplars);
std::string gsm8k_prompt(const std::string& prefix, const std::string& question);

// The task: items = the non-exemplar problems in file order; standard subset = the first 100.
std::unique_ptr<Task> make_gsm8k_task(const TaskOptions& o);

}  // namespace h1bkv
