#include "eval/generate_parallel.h"

#include <ctime>
#include <optional>

#include "eval/session.h"
#include "kv/cache.h"
#include "util/error.h"
#include "util/timer.h"

namespace h1bkv {

double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

namespace {

struct Slot {
  EvalSession* session = nullptr;
  int64_t index = -1;  // request in flight, -1: free
  GenRequest req;
  std::optional<GreedyDecoder> dec;  // reads req.opt: the slot never moves
  int32_t next = 0;                  // token to push in the next step
  RequestCost cost;
};

}  // namespace

void generate_parallel(const std::vector<EvalSession*>& sessions, const Tokenizer& tok, int64_t n,
                       const std::function<GenRequest(int64_t)>& request,
                       const std::function<void(int64_t, Generation&&, const RequestCost&)>& done) {
  check(!sessions.empty(), "generate_parallel: no sessions");
  std::vector<Slot> slots(sessions.size());
  for (size_t i = 0; i < slots.size(); ++i) slots[i].session = sessions[i];
  const int64_t V = sessions[0]->n_vocab();

  auto finish = [&](Slot& s) {
    s.cost.tokens = (int64_t)s.session->held().size();
    const int64_t index = s.index;
    s.index = -1;
    done(index, std::move(s.dec->result()), s.cost);
  };
  // Feeds the slot's last logits to its decoder; ends the request when the decoder is done.
  auto advance = [&](Slot& s) {
    const int64_t held = (int64_t)s.session->held().size(), n_ctx = s.session->cache().n_ctx();
    if (!s.dec->step(s.session->logits().data(), V, held, n_ctx, &s.next)) finish(s);
  };
  auto start = [&](Slot& s, int64_t index) {
    s.index = index;
    s.req = request(index);
    s.dec.emplace(tok, s.req.opt);
    s.cost = {};
    if (s.req.opt.max_new_tokens <= 0) {  // as generate_greedy: nothing to decode
      check(!s.req.prompt.empty(), "nothing to evaluate (empty prompt)");
      return finish(s);
    }
    Timer t;
    const double cpu0 = process_cpu_seconds();
    s.session->eval(s.req.prompt);
    s.cost.seconds += t.seconds();
    s.cost.cpu_seconds += process_cpu_seconds() - cpu0;
    advance(s);
  };

  int64_t next_request = 0;
  std::vector<EvalSession*> batch;
  std::vector<int32_t> tokens;
  std::vector<Slot*> rows;
  for (;;) {
    for (Slot& s : slots)
      while (s.index < 0 && next_request < n) start(s, next_request++);
    batch.clear(), tokens.clear(), rows.clear();
    for (Slot& s : slots)
      if (s.index >= 0) batch.push_back(s.session), tokens.push_back(s.next), rows.push_back(&s);
    if (rows.empty()) break;
    Timer t;
    const double cpu0 = process_cpu_seconds();
    EvalSession::push_batch(batch.data(), tokens.data(), (int64_t)batch.size());
    const double sec = t.seconds() / (double)rows.size(), cpu = (process_cpu_seconds() - cpu0) / (double)rows.size();
    for (Slot* s : rows) {
      s->cost.seconds += sec;
      s->cost.cpu_seconds += cpu;
      advance(*s);
    }
  }
}

}  // namespace h1bkv
