#include "eval/generate.h"

#include <algorithm>

#include "eval/session.h"
#include "kv/cache.h"
#include "tokenize/tokenizer.h"
#include "util/error.h"

namespace h1bkv {

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::kStopString: return "stop";
    case StopReason::kEndOfGeneration: return "eog";
    case StopReason::kMaxTokens: return "length";
    case StopReason::kContextFull: return "context";
  }
  return "?";
}

std::vector<int32_t> encode_prompt(const Tokenizer& tok, const std::string& text) {
  std::vector<int32_t> ids;
  if (tok.add_bos() && tok.bos() >= 0) ids.push_back(tok.bos());
  const std::vector<int32_t> body = tok.encode(text, false, false);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

int32_t argmax_token(const float* logits, int64_t n_vocab) {
  int64_t best = 0;
  for (int64_t i = 1; i < n_vocab; ++i)
    if (logits[i] > logits[best]) best = i;
  return (int32_t)best;
}

namespace {

// Earliest position in text of any stop string that ends at or after `from`, or npos.
size_t find_stop(const std::string& text, const std::vector<std::string>& stop, size_t from) {
  size_t first = std::string::npos;
  for (const std::string& s : stop) {
    if (s.empty()) continue;
    const size_t start = from >= s.size() ? from - s.size() + 1 : 0;  // new matches only
    const size_t at = text.find(s, start);
    first = std::min(first, at);
  }
  return first;
}

}  // namespace

bool GreedyDecoder::step(const float* logits, int64_t n_vocab, int64_t held, int64_t n_ctx, int32_t* next) {
  const int32_t t = argmax_token(logits, n_vocab);
  if (opt_->stop_at_eog && tok_->is_eog(t)) {
    g_.reason = StopReason::kEndOfGeneration;
    return false;
  }
  g_.tokens.push_back(t);
  const size_t before = g_.text.size();
  g_.text += tok_->token_to_piece(t);
  const size_t at = find_stop(g_.text, opt_->stop, before);
  if (at != std::string::npos) {
    g_.text.resize(at);
    g_.reason = StopReason::kStopString;
    return false;
  }
  if ((int64_t)g_.tokens.size() >= opt_->max_new_tokens) {
    g_.reason = StopReason::kMaxTokens;
    return false;
  }
  if (held >= n_ctx) {  // no slot left for t
    g_.reason = StopReason::kContextFull;
    return false;
  }
  *next = t;
  return true;
}

Generation generate_greedy(EvalSession& session, const Tokenizer& tok,
                           const std::vector<int32_t>& prompt, const GenerateOptions& opt) {
  if (opt.max_new_tokens <= 0) {
    check(!prompt.empty(), "nothing to evaluate (empty prompt)");
    return {};
  }
  const int64_t V = session.n_vocab(), n_ctx = session.cache().n_ctx();
  GreedyDecoder dec(tok, opt);
  const std::vector<float>* logits = &session.eval(prompt);
  int32_t t = 0;
  while (dec.step(logits->data(), V, (int64_t)session.held().size(), n_ctx, &t)) logits = &session.push(t);
  return std::move(dec.result());
}

}  // namespace h1bkv
