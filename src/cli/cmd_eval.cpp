// h1bkv eval: downstream tasks (ARC, PIQA, HellaSwag, MMLU, LAMBADA, and the generative ones in
// the task registry) on several caches; accuracy ± standard error per (task, cache), markdown or
// JSON, and an SVG plot of accuracy against cache bytes per token.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "eval/cache_list.h"
#include "eval/eval_run.h"
#include "eval/samples_file.h"
#include "eval/tasks/arc_piqa.h"
#include "eval/tasks/task_file.h"
#include "eval/tasks/humaneval.h"
#include "model/model.h"
#include "tokenize/tokenizer.h"
#include "util/error.h"
#include "util/file.h"
#include "util/paths.h"
#include "util/timer.h"

namespace h1bkv {

namespace {

struct EvalOptions {
  std::string model;
  int64_t n_ctx = 0;
  int threads = 0;
  std::string tasks = "arc_easy,arc_challenge,piqa,hellaswag,mmlu,lambada";
  CLI::Option* tasks_opt = nullptr;
  std::vector<std::string> task_files;
  std::string caches = "f16";
  int64_t limit = 0;
  bool full = false;
  int shots = -1;
  uint64_t seed = 0;
  bool json = false;
  std::string json_out, plot, title, samples;
  int64_t groups = 0;
  bool unsafe_exec = false;
  int parallel = 1;
  std::vector<int64_t> passkey_lengths;
  int passkey_keys = 1;

  void add_to(CLI::App& app) {
    app.add_option("-m,--model", model, "GGUF model file")->required();
    app.add_option("-c,--ctx-size", n_ctx, "cache size in tokens (0 = what each task needs, up to the "
                                           "model's training context)")->capture_default_str()
        ->check(int_range(0, kMaxTokens));
    app.add_option("-t,--threads", threads, "threads (0 = all cores)")->capture_default_str()
        ->check(int_range(0, max_threads()));
    tasks_opt = app.add_option("--tasks", tasks, "tasks separated by ',': " + task_names() +
                                                     " (default without --task-file)")->capture_default_str();
    app.add_option("--task-file", task_files, "a multiple-choice task of your own: JSON Lines, one "
                   "{\"query\", \"choices\", \"gold\"[, \"context\"]} per line (repeatable)");
    app.add_option("--caches", caches, "caches separated by ';', each TYPE[:opts][@CALIB.json]")->capture_default_str();
    app.add_option("--limit", limit, "items per task (per subject for mmlu) instead of the standard subset")
        ->check(int_range(0, int64_t{1} << 31));
    app.add_flag("--full", full, "score every item");
    app.add_option("--shots", shots, "few-shot exemplars (mmlu: default 5)")->check(int_range(-1, 64));
    app.add_option("--seed", seed, "seed of any exemplar / item sampling")->capture_default_str();
    app.add_flag("--json", json, "print JSON instead of markdown");
    app.add_option("--json-out", json_out, "also write the JSON to this file");
    app.add_option("--samples", samples, "append one JSON line per scored item to this file (flushed per "
                   "line); items already there with the same task, cache and settings are not scored again, "
                   "so a stopped run resumes");
    app.add_option("--plot", plot, "write an SVG plot of accuracy against bytes per token");
    app.add_option("--title", title, "plot title");
    app.add_option("--groups", groups, "print per-group accuracy (mmlu subjects, ...) up to this many groups")
        ->check(int_range(0, int64_t{1} << 20));
    app.add_option("--parallel", parallel, "generative tasks (gsm8k, humaneval, passkey): items decoded "
                   "at once in one batch, each on its own cache (same results, more tokens/s; also -np)")
        ->capture_default_str()->check(int_range(1, 64));
    app.add_option("--passkey-lengths", passkey_lengths, "passkey: the grid's context lengths in tokens, "
                   "separated by ',' (default 1024,2048,4096,8192, those that fit the context)")
        ->delimiter(',')->check(int_range(1, kMaxTokens));
    app.add_option("--passkey-keys", passkey_keys, "passkey: items per grid cell, each with its own key")
        ->capture_default_str()->check(int_range(1, 16));
    app.add_flag("--unsafe-exec", unsafe_exec, "humaneval: run model-written programs without the bubblewrap "
                                               "sandbox (when it cannot start); recorded in the output");
  }
};

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

int eval(EvalOptions& o) {
  // check every name first, so a typo fails before the model loads
  const std::vector<CacheListEntry> caches = parse_cache_list(o.caches);
  std::vector<std::string> names = split_commas(o.tasks);
  if (!o.task_files.empty() && o.tasks_opt->count() == 0) names.clear();  // only the files
  check(!names.empty() || !o.task_files.empty(), "--tasks lists no task");
  for (const auto& n : names) {
    bool known = false;
    for (const auto& t : task_types()) known = known || t.name == n;
    check(known, "unknown task '" + n + "' (tasks: " + task_names() + ")");
  }
  const bool passkey = std::find(names.begin(), names.end(), "passkey") != names.end();
  check(passkey || (o.passkey_lengths.empty() && o.passkey_keys == 1),
        "--passkey-lengths and --passkey-keys need passkey in --tasks");
  for (const auto& f : o.task_files) load_query_choices_gold(f);  // a bad line fails before the model loads
  check(o.limit >= 0, "--limit must be >= 0");
  check(o.n_ctx >= 0, "-c must be >= 0");
  std::vector<std::string> inputs = {o.model};
  for (const auto& e : caches) inputs.push_back(e.calib);
  inputs.insert(inputs.end(), o.task_files.begin(), o.task_files.end());
  check_outputs_distinct(inputs, {o.json_out, o.plot, o.samples});
  for (const auto& e : caches)
    if (!e.calib.empty()) check_regular_file(e.calib), refuse_lora(e.calib, "eval");
  bool humaneval = false;
  for (const auto& n : names) humaneval = humaneval || n == "humaneval" || n == "humaneval_chat";
  if (humaneval) check_humaneval_can_run(o.unsafe_exec);  // before the model loads
  std::unique_ptr<SamplesFile> samples;  // read and checked before the model loads
  if (!o.samples.empty()) samples = std::make_unique<SamplesFile>(o.samples);
  apply_threads(o.threads);
  Loaded l = load_model(o.model);
  TaskOptions to;
  to.tok = l.tok.get();
  to.data_dir = shared_dir() + "/data";
  to.shots = o.shots;
  to.seed = o.seed;
  to.unsafe_exec = o.unsafe_exec;
  to.passkey_lengths = o.passkey_lengths;
  to.passkey_keys = o.passkey_keys;
  const int64_t train = l.model->config().n_ctx_train;  // tasks that size themselves (passkey) fit -c
  to.n_ctx = o.n_ctx > 0 && (train <= 0 || o.n_ctx < train) ? o.n_ctx : train;
  std::vector<std::unique_ptr<Task>> owned;
  std::vector<Task*> tasks;
  for (const auto& n : names) {
    owned.push_back(make_task(n, to));
    tasks.push_back(owned.back().get());
  }
  for (const auto& f : o.task_files) {
    owned.push_back(make_task_from_file(f, *l.tok));
    tasks.push_back(owned.back().get());
  }
  std::string task_list;
  for (const Task* t : tasks) task_list += (task_list.empty() ? "" : ",") + t->name();
  EvalParams p;
  p.limit = o.limit;
  p.full = o.full;
  p.n_ctx = o.n_ctx;
  p.samples = samples.get();
  p.parallel = o.parallel;
  std::error_code ec;  // the model file by name and size (a copy elsewhere resumes the same items)
  p.settings_extra = {{"model", std::filesystem::path(o.model).filename().string()},
                      {"model_bytes", (int64_t)std::filesystem::file_size(o.model, ec)}};
  Timer t;
  const EvalResult r = run_eval(*l.model, tasks, caches, p, [&](int64_t d, int64_t n) {
    progress("eval", d, n, t.seconds());
  });
  progress_done();
  nlohmann::json j = eval_json(r);
  j["model"] = o.model;
  j["seed"] = o.seed;
  j["limit"] = o.limit;
  j["parallel"] = o.parallel;
  j["full"] = o.full;
  j["unsafe_exec"] = o.unsafe_exec;
  j["seconds"] = t.seconds();
  if (samples) j["samples"] = o.samples;
  if (!o.json_out.empty()) write_file(o.json_out, j.dump(2) + "\n");
  if (!o.plot.empty())
    write_file(o.plot, eval_svg(r, o.title.empty() ? "accuracy per byte: " + task_list : o.title));
  if (o.json) std::printf("%s\n", j.dump(2).c_str());
  else std::printf("%s\n%stotal %.1f s\n", eval_markdown(r, o.groups).c_str(),
                   humaneval && o.unsafe_exec ? "UNSAFE: --unsafe-exec: humaneval programs ran without the "
                                                "bubblewrap sandbox\n" : "",
                   t.seconds());
  return 0;
}

}  // namespace

Action register_eval(CLI::App& app) {
  auto* sub = app.add_subcommand("eval", "downstream task accuracy of several caches");
  auto o = std::make_shared<EvalOptions>();
  o->add_to(*sub);
  return [o] { return eval(*o); };
}

}  // namespace h1bkv
