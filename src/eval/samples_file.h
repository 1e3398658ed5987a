// The samples file of `h1bkv eval --samples FILE` (lm-eval's --log_samples + --use_cache): one
// JSON object per line, appended and flushed as soon as an item is scored:
//   {"task", "cache", "spec", "settings", "item", "correct"[, "correct_norm"][, "group"], "sums",
//    "sample", "tokens", "seconds", "cpu_seconds"[, "parallel"]}
// (seconds: wall time of the item; cpu_seconds: this process's CPU time in it, the sandboxed
// Python not included: on a shared machine the second says what an idle one would take; with
// "parallel": N (eval --parallel) both are the item's share: its prompt's time plus, per batched
// decode step, the step's time over the rows in it, so they still sum to the run's time)
// "settings" is a hash of everything that changes an item's result besides the cache (the task's
// prompt settings, n_ctx, the model file, a calibration file); "sample" is the task's own record
// (ItemResult::sample: completion, extracted answer, choice picked). A rerun with the same file
// takes the items found there under the same (task, spec, settings) instead of scoring them, so
// a run killed at any point resumes where it stopped with the same totals.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <tuple>

#include "eval/tasks/task.h"

namespace h1bkv {

// fnv-1a 64 of the compact dump, as 16 hex digits: the "settings" field.
std::string settings_hash(const nlohmann::json& settings);

struct SampleKey {
  std::string task, spec, settings;
  int64_t item = 0;
  bool operator<(const SampleKey& o) const {
    return std::tie(task, spec, settings, item) < std::tie(o.task, o.spec, o.settings, o.item);
  }
};

class SamplesFile {
 public:
  // Reads `path` when it exists. Every complete line must be a JSON object with the fields above,
  // else Error "PATH:LINE: reason"; an item found twice is an error too. A last line with no '\n'
  // that starts as a record but does not parse (a run killed mid-write) is cut from the file,
  // with a note on stderr.
  explicit SamplesFile(std::string path);
  ~SamplesFile();
  SamplesFile(const SamplesFile&) = delete;
  SamplesFile& operator=(const SamplesFile&) = delete;

  // The stored line of that item, nullptr when it was not scored with these settings.
  const nlohmann::json* find(const SampleKey& k) const;
  // Lines of (task, spec) stored under other settings (not used; the harness notes them).
  int64_t other_settings(const std::string& task, const std::string& spec, const std::string& settings) const;
  // Appends one line and flushes it ("correct_norm" only when has_norm).
  void append(const SampleKey& k, const std::string& cache_label, const ItemResult& r, bool has_norm,
              int64_t tokens, double seconds, double cpu_seconds, int parallel = 1);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::map<SampleKey, nlohmann::json> lines_;
  FILE* out_ = nullptr;
};

// The ItemResult a stored line holds (correct, correct_norm, group, sums, sample).
ItemResult item_result_from_sample(const nlohmann::json& line);

}  // namespace h1bkv
