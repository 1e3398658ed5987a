#include "eval/tasks/loglik.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "eval/session.h"
#include "kv/cache.h"
#include "tokenize/tokenizer.h"
#include "util/error.h"

namespace h1bkv {

EncodedPair encode_pair(const Tokenizer& tok, const std::string& context, const std::string& continuation) {
  size_t end = context.size();
  while (end > 0 && std::isspace((unsigned char)context[end - 1])) --end;
  const std::string ctx = context.substr(0, end);
  const std::string cont = context.substr(end) + continuation;
  const std::vector<int32_t> whole = tok.encode(ctx + cont, false, false);
  const std::vector<int32_t> ctx_enc = tok.encode(ctx, false, false);
  EncodedPair p;
  if (tok.add_bos() && tok.bos() >= 0) p.context.push_back(tok.bos());
  p.context.insert(p.context.end(), ctx_enc.begin(), ctx_enc.end());
  if (whole.size() > ctx_enc.size()) p.continuation.assign(whole.begin() + (ptrdiff_t)ctx_enc.size(), whole.end());
  check(!p.continuation.empty(), "continuation '" + continuation + "' has no tokens after its context");
  return p;
}

double log_prob(const float* logits, int64_t n_vocab, int32_t token, bool* argmax) {
  float mx = logits[0];
  int64_t best = 0;
  for (int64_t i = 1; i < n_vocab; ++i)
    if (logits[i] > mx) mx = logits[i], best = i;
  double sum = 0;
  for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp((double)logits[i] - mx);
  if (argmax) *argmax = best == token;
  return (double)logits[token] - mx - std::log(sum);
}

ContinuationScore score_continuation(EvalSession& s, const EncodedPair& p) {
  const int64_t n_cont = (int64_t)p.continuation.size();
  const int64_t n_ctx = s.cache().n_ctx();
  check(n_cont < n_ctx, "continuation of " + std::to_string(n_cont) + " tokens does not fit the context of " +
                            std::to_string(n_ctx));
  // input = (context + continuation)[:-1], its last n_ctx tokens
  std::vector<int32_t> input = p.context;
  input.insert(input.end(), p.continuation.begin(), p.continuation.end() - 1);
  if ((int64_t)input.size() > n_ctx) input.erase(input.begin(), input.end() - n_ctx);
  const std::vector<float>& logits = s.eval(input, n_cont);  // row j predicts continuation[j]
  const int64_t V = s.n_vocab();
  ContinuationScore r;
  r.greedy = true;
  r.n_tokens = n_cont;
  for (int64_t j = 0; j < n_cont; ++j) {
    bool top = false;
    r.loglik += log_prob(logits.data() + j * V, V, p.continuation[(size_t)j], &top);
    r.greedy = r.greedy && top;
  }
  return r;
}

McPick pick_choice(const std::vector<double>& loglik, const std::vector<double>& length) {
  check(!loglik.empty() && loglik.size() == length.size(), "pick_choice: no choices or a length missing");
  McPick p{0, 0};
  for (size_t i = 1; i < loglik.size(); ++i) {
    if (loglik[i] > loglik[(size_t)p.by_sum]) p.by_sum = (int)i;
    if (loglik[i] / length[i] > loglik[(size_t)p.by_norm] / length[(size_t)p.by_norm]) p.by_norm = (int)i;
  }
  return p;
}

int64_t utf8_length(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;  // count every byte that starts a code point
  return n;
}

ItemResult score_multiple_choice(EvalSession& s, const Tokenizer& tok, const std::string& context,
                                 const std::vector<std::string>& choices, int gold,
                                 const std::string& delimiter) {
  check(gold >= 0 && gold < (int)choices.size(), "gold answer " + std::to_string(gold) + " out of range");
  std::vector<double> ll, len;
  for (const auto& c : choices) {
    ll.push_back(score_continuation(s, encode_pair(tok, context, delimiter + c)).loglik);
    len.push_back((double)std::max<int64_t>(1, utf8_length(c)));
  }
  const McPick p = pick_choice(ll, len);
  ItemResult r;
  r.correct = p.by_sum == gold;
  r.correct_norm = p.by_norm == gold;
  r.sample = {{"gold", gold}, {"pick", p.by_sum}, {"pick_norm", p.by_norm}, {"loglik", ll}};
  return r;
}

}  // namespace h1bkv
