#include "eval/eval_run.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "eval/generate_parallel.h"
#include "eval/samples_file.h"
#include "kv/cache.h"
#include "model/model.h"
#include "util/error.h"
#include "util/timer.h"

namespace h1bkv {

double binomial_se(double p, int64_t n) { return n > 0 ? std::sqrt(p * (1.0 - p) / (double)n) : 0.0; }

namespace {

// The samples-file key of (task, cache) items: what changes a result besides the item.
std::string samples_settings(const nlohmann::json& task_settings, int64_t n_ctx, const CacheListEntry& c,
                             const nlohmann::json& extra) {
  return settings_hash({{"task", task_settings}, {"n_ctx", n_ctx}, {"calib", c.calib}, {"extra", extra}});
}

}  // namespace

EvalResult run_eval(Model& model, const std::vector<Task*>& tasks, const std::vector<CacheListEntry>& caches,
                    const EvalParams& p, const std::function<void(int64_t, int64_t)>& progress) {
  const int64_t train_ctx = model.config().n_ctx_train;
  std::vector<std::vector<int64_t>> selected;
  std::vector<int64_t> task_ctx;
  int64_t total = 0;
  for (Task* t : tasks) {
    selected.push_back(t->select(p.limit, p.full));
    check(!selected.back().empty(), t->name() + ": no items selected");
    int64_t n_ctx = p.n_ctx;
    if (n_ctx <= 0) n_ctx = train_ctx > 0 ? std::min(t->ctx_needed(), train_ctx) : t->ctx_needed();
    task_ctx.push_back(n_ctx);
    for (size_t ci = 0; ci < caches.size() && !p.samples; ++ci) total += (int64_t)selected.back().size();
    for (size_t ci = 0; ci < caches.size() && p.samples; ++ci) {
      const std::string hash = samples_settings(t->settings(), n_ctx, caches[ci], p.settings_extra);
      const std::string spec = make_cache(caches[ci].spec, model.cache_geometry(n_ctx), caches[ci].calib)->spec();
      int64_t stored = 0;
      for (int64_t id : selected.back()) stored += p.samples->find({t->name(), spec, hash, id}) != nullptr;
      if (stored > 0)
        std::fprintf(stderr, "%s: %s / %s: %lld of %zu items already scored there, %lld to go\n",
                     p.samples->path().c_str(), t->name().c_str(), caches[ci].label.c_str(), (long long)stored,
                     selected.back().size(), (long long)selected.back().size() - stored);
      const int64_t other = p.samples->other_settings(t->name(), spec, hash);
      if (other > 0)
        std::fprintf(stderr, "%s: %s / %s: %lld lines from other settings (prompt, model, -c) not used\n",
                     p.samples->path().c_str(), t->name().c_str(), caches[ci].label.c_str(), (long long)other);
      total += (int64_t)selected.back().size() - stored;
    }
  }
  EvalResult r;
  int64_t done = 0;
  for (size_t ti = 0; ti < tasks.size(); ++ti) {
    Task& task = *tasks[ti];
    const std::vector<int64_t>& ids = selected[ti];
    const int64_t n_ctx = task_ctx[ti];
    const nlohmann::json task_settings = task.settings();
    nlohmann::json st = task_settings;
    st["items"] = (int64_t)ids.size();
    st["n_ctx"] = n_ctx;
    r.settings[task.name()] = st;
    for (const CacheListEntry& c : caches) {
      auto cache = make_cache(c.spec, model.cache_geometry(n_ctx), c.calib);
      EvalSession session(model, *cache, p.n_batch);
      EvalRow row;
      row.task = task.name();
      row.cache = c.label;
      row.spec = cache->spec();
      row.n_ctx = n_ctx;
      row.bytes_per_token = cache->bytes_per_token();
      row.fixed_bytes = cache_fixed_bytes(c.spec, cache->geometry());
      row.has_norm = task.has_norm();
      const std::string hash = samples_settings(task_settings, n_ctx, c, p.settings_extra);
      std::map<std::string, double> sums;
      std::map<std::string, size_t> group_index;
      int64_t correct = 0, correct_norm = 0;
      // Generative items not in the samples file, several at a time (--parallel): results by id.
      std::map<int64_t, ItemResult> fresh;
      std::vector<std::unique_ptr<KvCache>> extra_caches;
      std::vector<std::unique_ptr<EvalSession>> extra_sessions;
      auto* gen = dynamic_cast<GenerativeTask*>(&task);
      if (gen && p.parallel > 1) {
        std::vector<int64_t> todo;
        for (int64_t id : ids)
          if (!p.samples || !p.samples->find({row.task, row.spec, hash, id})) todo.push_back(id);
        std::vector<EvalSession*> sessions = {&session};
        for (int i = 1; i < p.parallel && i < (int)todo.size(); ++i) {
          extra_caches.push_back(make_cache(c.spec, model.cache_geometry(n_ctx), c.calib));
          extra_sessions.push_back(std::make_unique<EvalSession>(model, *extra_caches.back(), p.n_batch));
          sessions.push_back(extra_sessions.back().get());
        }
        generate_parallel(
            sessions, gen->tokenizer(), (int64_t)todo.size(),
            [&](int64_t i) { return gen->request(todo[(size_t)i], n_ctx); },
            [&](int64_t i, Generation&& g, const RequestCost& cost) {
              const int64_t id = todo[(size_t)i];
              Timer timer;  // the judge's time (HumanEval runs the program) is the item's own
              const double cpu0 = process_cpu_seconds();
              ItemResult ir = gen->judge(id, g);
              const double sec = cost.seconds + timer.seconds(), cpu = cost.cpu_seconds + process_cpu_seconds() - cpu0;
              row.seconds += sec;
              if (p.samples)
                p.samples->append({row.task, row.spec, hash, id}, c.label, ir, row.has_norm, cost.tokens, sec, cpu,
                                  (int)sessions.size());
              fresh.emplace(id, std::move(ir));
              if (progress) progress(++done, total);
            });
      }
      for (int64_t id : ids) {
        const SampleKey key{row.task, row.spec, hash, id};
        const nlohmann::json* stored = p.samples ? p.samples->find(key) : nullptr;
        ItemResult ir;
        auto it = fresh.find(id);
        if (it != fresh.end()) {
          ir = std::move(it->second);
        } else if (stored) {
          check(!row.has_norm || stored->contains("correct_norm"),
                p.samples->path() + ": item " + std::to_string(id) + " of " + row.task + " has no correct_norm");
          ir = item_result_from_sample(*stored);
          row.seconds += (*stored)["seconds"].get<double>();
          ++row.resumed;
        } else {
          const SessionStats before = session.stats();
          Timer timer;
          const double cpu0 = process_cpu_seconds();
          ir = task.score(session, id);
          const double sec = timer.seconds(), cpu = process_cpu_seconds() - cpu0;
          row.seconds += sec;
          const SessionStats& after = session.stats();
          const int64_t tokens = after.tokens_computed + after.tokens_reused - before.tokens_computed -
                                 before.tokens_reused;
          if (p.samples) p.samples->append(key, c.label, ir, row.has_norm, tokens, sec, cpu);
          if (progress) progress(++done, total);
        }
        correct += ir.correct;
        correct_norm += ir.correct_norm;
        for (const auto& [k, v] : ir.sums) sums[k] += v;
        if (!ir.group.empty()) {
          auto it = group_index.find(ir.group);
          if (it == group_index.end()) {
            it = group_index.emplace(ir.group, row.groups.size()).first;
            row.groups.push_back({ir.group, 0, 0});
          }
          ++row.groups[it->second].n;
          row.groups[it->second].correct += ir.correct;
        }
      }
      row.n = (int64_t)ids.size();
      row.acc = (double)correct / (double)row.n;
      row.acc_se = binomial_se(row.acc, row.n);
      if (row.has_norm) {
        row.acc_norm = (double)correct_norm / (double)row.n;
        row.acc_norm_se = binomial_se(row.acc_norm, row.n);
      }
      row.metrics = task.summarize(sums, row.n);
      row.stats = session.stats();
      for (const auto& es : extra_sessions) row.stats += es->stats();
      r.rows.push_back(std::move(row));
    }
  }
  return r;
}

std::string eval_markdown(const EvalResult& r, int64_t max_groups) {
  std::string s =
      "| task | cache | bytes/token | items | acc % | acc_norm % | other | tokens computed | tokens reused | seconds |\n"
      "|---|---|---:|---:|---:|---:|---|---:|---:|---:|\n";
  char buf[1024];
  for (const auto& row : r.rows) {
    std::string norm = "–", other;
    if (row.has_norm) {
      std::snprintf(buf, sizeof buf, "%.2f ± %.2f", 100 * row.acc_norm, 100 * row.acc_norm_se);
      norm = buf;
    }
    for (const auto& [k, v] : row.metrics) {
      std::snprintf(buf, sizeof buf, "%s%s %.4g", other.empty() ? "" : ", ", k.c_str(), v);
      other += buf;
    }
    std::snprintf(buf, sizeof buf, "| %s | %s | %.0f | %lld | %.2f ± %.2f | %s | %s | %lld | %lld | %.1f |\n",
                  row.task.c_str(), row.cache.c_str(), row.bytes_per_token, (long long)row.n, 100 * row.acc,
                  100 * row.acc_se, norm.c_str(), other.empty() ? "–" : other.c_str(),
                  (long long)row.stats.tokens_computed, (long long)row.stats.tokens_reused, row.seconds);
    s += buf;
  }
  for (const auto& row : r.rows) {
    if (row.groups.size() < 2 || max_groups <= 0) continue;
    std::snprintf(buf, sizeof buf, "\n%s, %s: acc %% by group\n\n| group | items | acc %% |\n|---|---:|---:|\n",
                  row.task.c_str(), row.cache.c_str());
    s += buf;
    for (size_t g = 0; g < row.groups.size() && (int64_t)g < max_groups; ++g) {
      const GroupAcc& ga = row.groups[g];
      const double a = (double)ga.correct / (double)ga.n;
      std::snprintf(buf, sizeof buf, "| %s | %lld | %.1f ± %.1f |\n", ga.name.c_str(), (long long)ga.n, 100 * a,
                    100 * binomial_se(a, ga.n));
      s += buf;
    }
  }
  return s;
}

nlohmann::json eval_json(const EvalResult& r) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& row : r.rows) {
    nlohmann::json j = {{"task", row.task}, {"cache", row.cache}, {"spec", row.spec}, {"items", row.n},
                        {"items_from_samples", row.resumed},
                        {"acc", row.acc}, {"acc_se", row.acc_se}, {"n_ctx", row.n_ctx},
                        {"bytes_per_token", row.bytes_per_token}, {"fixed_bytes", row.fixed_bytes},
                        {"tokens_computed", row.stats.tokens_computed}, {"tokens_reused", row.stats.tokens_reused},
                        {"rewinds", row.stats.rewinds}, {"refills", row.stats.refills}, {"seconds", row.seconds}};
    if (row.has_norm) j["acc_norm"] = row.acc_norm, j["acc_norm_se"] = row.acc_norm_se;
    for (const auto& [k, v] : row.metrics) j[k] = v;
    if (!row.groups.empty()) {
      nlohmann::json g = nlohmann::json::array();
      for (const auto& ga : row.groups) g.push_back({{"group", ga.name}, {"items", ga.n}, {"correct", ga.correct}});
      j["groups"] = g;
    }
    rows.push_back(j);
  }
  return {{"tasks", r.settings}, {"rows", rows}};
}

}  // namespace h1bkv
