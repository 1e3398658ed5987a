// Every task `h1bkv eval --tasks` knows, in display order: one line per task.
#include "eval/tasks/task.h"

#include "eval/tasks/arc_piqa.h"
#include "eval/tasks/gsm8k.h"
#include "eval/tasks/hellaswag.h"
#include "eval/tasks/humaneval.h"
#include "eval/tasks/lambada.h"
#include "eval/tasks/mmlu.h"
#include "eval/tasks/passkey.h"

namespace h1bkv {

const std::vector<TaskDef>& task_types() {
  static const std::vector<TaskDef> types = [] {
    std::vector<TaskDef> t;
    t.push_back({"arc_easy", "ARC-Easy, 0-shot, lm-eval log-likelihood (acc, acc_norm)", make_arc_easy_task});
    t.push_back({"arc_challenge", "ARC-Challenge, 0-shot, lm-eval log-likelihood (acc, acc_norm)", make_arc_challenge_task});
    t.push_back({"piqa", "PIQA, 0-shot, lm-eval log-likelihood (acc, acc_norm)", make_piqa_task});
    t.push_back({"hellaswag", "HellaSwag, 0-shot, lm-eval log-likelihood (acc_norm headline)", make_hellaswag_task});
    t.push_back({"mmlu", "MMLU, 5-shot from dev, original prompt, letters ' A'..' D' (acc)", make_mmlu_task});
    t.push_back({"lambada", "LAMBADA (OpenAI), greedy last word exact (acc) and last-word ppl", make_lambada_task});
    t.push_back({"gsm8k", "GSM8K, 8-shot chain of thought (exemplars from the test file), exact final number", make_gsm8k_task});
    t.push_back({"humaneval", "HumanEval, greedy completion run against its tests in a sandbox (pass@1)", make_humaneval_task});
    t.push_back({"humaneval_chat", "HumanEval through the ChatML template (instruct models), code block of the reply run in the sandbox (pass@1)", make_humaneval_chat_task});
    t.push_back({"passkey", "passkey retrieval, context 1k-8k x depth 0-100% (long context)", make_passkey_task});
    return t;
  }();
  return types;
}

}  // namespace h1bkv
