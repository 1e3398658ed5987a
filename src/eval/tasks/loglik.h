// Log-likelihood scoring as lm-evaluation-harness does it: a context and a continuation are
// tokenized as a pair (lm-eval's _encode_pair), the model reads context + continuation minus its
// last token, and the continuation's summed log-probability and whether greedy decoding would
// have produced it are read off the logits. Multiple choice picks the choice of highest summed
// log-probability (acc) and of highest log-probability per character of the choice (acc_norm).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "eval/tasks/task.h"

namespace h1bkv {

class EvalSession;
class Tokenizer;

struct EncodedPair {
  std::vector<int32_t> context;       // BOS first when the vocab adds one
  std::vector<int32_t> continuation;  // never empty
};

// lm-eval's _encode_pair: trailing whitespace of the context moves to the front of the
// continuation; continuation tokens = tokens(context + continuation) past the first
// len(tokens(context)) ones. Throws Error when the continuation has no tokens.
EncodedPair encode_pair(const Tokenizer& tok, const std::string& context, const std::string& continuation);

struct ContinuationScore {
  double loglik = 0;    // sum over continuation tokens of log p(token | everything before)
  bool greedy = false;  // every continuation token is the argmax of its position
  int64_t n_tokens = 0;
};

// Scores p on the session. When context + continuation exceed the cache's n_ctx, the context is
// cut from the left (as lm-eval does at its max length).
ContinuationScore score_continuation(EvalSession& s, const EncodedPair& p);

// log softmax(logits)[token] in double; argmax: set to whether token is the (first) argmax.
double log_prob(const float* logits, int64_t n_vocab, int32_t token, bool* argmax = nullptr);

// The chosen index by summed log-likelihood and by log-likelihood / length (first index on ties,
// as numpy's argmax).
struct McPick {
  int by_sum = -1;
  int by_norm = -1;
};
McPick pick_choice(const std::vector<double>& loglik, const std::vector<double>& length);

// Characters (Unicode code points) of a UTF-8 string: lm-eval's len(choice) for acc_norm.
int64_t utf8_length(const std::string& s);

// A multiple-choice item scored: continuation i = delimiter + choices[i]; correct / correct_norm
// against gold.
ItemResult score_multiple_choice(EvalSession& s, const Tokenizer& tok, const std::string& context,
                                 const std::vector<std::string>& choices, int gold,
                                 const std::string& delimiter = " ");

}  // namespace h1bkv
