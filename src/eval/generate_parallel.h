// Greedy generation of many requests with several in flight (eval --parallel), as a server's
// continuous batching decodes its slots: one request per session (each session its own cache);
// a request's prompt runs alone on its session (EvalSession::eval, reusing what that session
// holds), then each step decodes one token of every request in flight in one
// Model::forward_batch, so the weights are read once per step for all of them. A request's
// Generation is the same as generate_greedy's (Model::forward_batch gives each row the logits
// forward() gives it alone).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "eval/generate.h"

namespace h1bkv {

class EvalSession;

// What one request cost: its prompt's time plus, per decode step, the step's time over the rows
// in it (the shares sum to the run's time); tokens: held when it ended (prompt + generated).
struct RequestCost {
  double seconds = 0, cpu_seconds = 0;
  int64_t tokens = 0;
};

// Runs requests 0 .. n-1 in order of start; request(i) is asked when a session is free, done(i,
// generation, cost) is called as each ends (not in index order). sessions: one model, distinct
// caches. Errors (a prompt too long for the cache, ...) propagate as generate_greedy's.
void generate_parallel(const std::vector<EvalSession*>& sessions, const Tokenizer& tok, int64_t n,
                       const std::function<GenRequest(int64_t)>& request,
                       const std::function<void(int64_t, Generation&&, const RequestCost&)>& done);

// This process's CPU seconds so far (all threads).
double process_cpu_seconds();

}  // namespace h1bkv
