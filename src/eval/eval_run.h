// `h1bkv eval`: tasks x caches. Each (task, cache) pair gets a fresh cache sized to the task and an
// EvalSession, scores the task's selected items in order (so shared prefixes are reused), and
// reports accuracy ± binomial standard error, per-group accuracy, task metrics, the session's
// token counts and wall time. Output as markdown, JSON and an SVG plot of accuracy against bytes.
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "eval/cache_list.h"
#include "eval/session.h"
#include "eval/tasks/task.h"

namespace h1bkv {

class Model;
class SamplesFile;

struct EvalParams {
  int64_t limit = 0;    // > 0: items per task (per group for grouped tasks) instead of the standard subset
  bool full = false;    // every item
  int64_t n_ctx = 0;    // cache size; 0 = the task's ctx_needed(), capped at the model's training context
  int64_t n_batch = 512;
  // Generative tasks: items decoded at once, each on its own cache (eval/generate_parallel.h);
  // results are the same as one at a time.
  int parallel = 1;
  // One line per scored item; items already there (same task, cache, settings) are not scored
  // again (eval/samples_file.h). settings_extra joins each task's settings in the hash: the
  // model file, anything else that changes results.
  SamplesFile* samples = nullptr;
  nlohmann::json settings_extra = nlohmann::json::object();
};

struct GroupAcc {
  std::string name;
  int64_t n = 0, correct = 0;
};

struct EvalRow {
  std::string task, cache, spec;  // cache: label as written; spec: canonical
  int64_t n = 0;                  // items scored
  int64_t resumed = 0;            // of them, taken from the samples file
  double acc = 0, acc_se = 0;
  bool has_norm = false;
  double acc_norm = 0, acc_norm_se = 0;
  std::vector<std::pair<std::string, double>> metrics;  // Task::summarize
  std::vector<GroupAcc> groups;
  SessionStats stats;
  double seconds = 0;
  int64_t n_ctx = 0;
  double bytes_per_token = 0, fixed_bytes = 0;
};

struct EvalResult {
  std::vector<EvalRow> rows;  // task-major: every cache of the first task, then the next task
  nlohmann::json settings;    // task name -> Task::settings() + the selected subset size
};

// sqrt(p (1 - p) / n): the standard error of an accuracy p over n items (0 when n == 0).
double binomial_se(double p, int64_t n);

// progress(done, total): units are items x caches over all tasks, less those the samples file has.
EvalResult run_eval(Model& model, const std::vector<Task*>& tasks, const std::vector<CacheListEntry>& caches,
                    const EvalParams& p, const std::function<void(int64_t, int64_t)>& progress = {});

// Markdown: one row per (task, cache), then per-group tables where a task has several groups
// (only up to `max_groups` groups listed; 0 = none).
std::string eval_markdown(const EvalResult& r, int64_t max_groups = 0);
nlohmann::json eval_json(const EvalResult& r);
// Accuracy (acc_norm where the task has it) against KV bytes per token held at the cache's n_ctx,
// one colour per task, points labelled by cache.
std::string eval_svg(const EvalResult& r, const std::string& title);

}  // namespace h1bkv
