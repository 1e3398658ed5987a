// One evaluation task (ARC, MMLU, LAMBADA, GSM8K, ...): its items, the prompt of each, and how one
// item is scored on an EvalSession. The harness (eval/eval_run.h) runs tasks x caches, sums the
// item results and prints accuracy ± binomial standard error; tasks are listed by name in
// eval/tasks/registry.cpp (one line per task).
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "eval/generate.h"

namespace h1bkv {

class EvalSession;
class Tokenizer;

// What scoring one item gives.
struct ItemResult {
  bool correct = false;
  bool correct_norm = false;  // length-normalised choice (only read when Task::has_norm())
  // Breakdown key ("" = none): accuracy is also reported per group (MMLU subject, passkey
  // "ctx 4096 depth 50%"). Groups are listed in the order first seen.
  std::string group;
  // Task-specific numbers, summed over the scored items and handed to Task::summarize
  // (LAMBADA: {"target_nll", ...}).
  std::map<std::string, double> sums;
  // What the item produced, for the samples file (eval/samples_file.h): the completion, the
  // extracted answer, the choice picked, ... (a JSON object; may be empty).
  nlohmann::json sample = nlohmann::json::object();
};

// Everything a task is built from.
struct TaskOptions {
  const Tokenizer* tok = nullptr;
  std::string data_dir;  // shared_dir() + "/data"
  int shots = -1;        // few-shot exemplars (-1 = the task's default)
  uint64_t seed = 0;     // fixes any sampling of exemplars / generated items
  int64_t n_ctx = 0;     // the cache size: -c, or the model's training context (tasks cap prompts to it)
  bool unsafe_exec = false;  // humaneval: run model-written programs without bubblewrap (--unsafe-exec)
  std::vector<int64_t> passkey_lengths;  // passkey: the grid's lengths (empty = 1k-8k that fit n_ctx)
  int passkey_keys = 1;                  // passkey: items (keys) per grid cell
};

class Task {
 public:
  virtual ~Task() = default;
  virtual std::string name() const = 0;
  // Scorable items (exemplars taken from the same file are excluded).
  virtual int64_t size() const = 0;
  // The standard subset's size (the first N items in file order; README tables use it).
  virtual int64_t standard_size() const = 0;
  virtual bool has_norm() const { return false; }  // reports acc_norm beside acc
  // The items to score: `limit` > 0 overrides the standard size, full = all items. The default is
  // the first N of size(); tasks with groups (MMLU: N per subject) override it.
  virtual std::vector<int64_t> select(int64_t limit, bool full) const;
  // Tokens of context the cache needs for the longest selected item (prompt + continuation or
  // generation budget); the harness sizes each cache to it.
  virtual int64_t ctx_needed() const { return 2048; }
  // Scores one item on the session (which keeps whatever prefix the previous item left).
  virtual ItemResult score(EvalSession& s, int64_t item) = 0;
  // The prompt settings written into the JSON output so runs compare: shots, seed, exemplar ids,
  // prompt template, subset definition.
  virtual nlohmann::json settings() const = 0;
  // Extra metrics from the summed ItemResult::sums over n scored items (LAMBADA: last-word ppl).
  virtual std::vector<std::pair<std::string, double>> summarize(
      const std::map<std::string, double>& sums, int64_t n) const {
    return {};
  }
};

// A task scored from one greedy generation per item (GSM8K, HumanEval, passkey). score() is
// generate_greedy + judge(); the harness may instead decode several items' requests in one batch
// (eval --parallel, eval/generate_parallel.h), with the same result per item.
class GenerativeTask : public Task {
 public:
  // The prompt and options of item's generation on a cache of n_ctx tokens.
  virtual GenRequest request(int64_t item, int64_t n_ctx) = 0;
  // Scores the item from its generation (HumanEval runs the program here).
  virtual ItemResult judge(int64_t item, const Generation& g) = 0;
  virtual const Tokenizer& tokenizer() const = 0;  // decodes the generated tokens
  ItemResult score(EvalSession& s, int64_t item) override;
};

// A registry entry: eval/tasks/registry.cpp lists one per task, in display order.
struct TaskDef {
  std::string name;
  std::string help;  // one line for --help
  std::function<std::unique_ptr<Task>(const TaskOptions&)> make;
};

const std::vector<TaskDef>& task_types();
// The task of that name, loaded; throws Error listing the valid names.
std::unique_ptr<Task> make_task(const std::string& name, const TaskOptions& o);
std::string task_names();  // "arc_easy, arc_challenge, ..."

}  // namespace h1bkv
