// Greedy generation on an EvalSession: the prompt is evaluated (reusing the cache's common
// prefix), then the arg-max token is decoded one at a time until a stop string appears in the
// completion text, an end-of-generation token comes, the token budget is spent, or the context
// is full.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace h1bkv {

class EvalSession;
class Tokenizer;

struct GenerateOptions {
  int64_t max_new_tokens = 256;
  std::vector<std::string> stop;  // the completion ends before the first one that appears
  bool stop_at_eog = true;        // end at the vocabulary's end-of-generation tokens
};

enum class StopReason { kStopString, kEndOfGeneration, kMaxTokens, kContextFull };
const char* stop_reason_name(StopReason r);  // "stop", "eog", "length", "context"

struct Generation {
  std::string text;             // completion bytes (token pieces), cut before the stop string
  std::vector<int32_t> tokens;  // tokens generated, the one that completed a stop string
                                // included, an end-of-generation token not
  StopReason reason = StopReason::kMaxTokens;
};

// One generation to run: its prompt and options (a generative task's item).
struct GenRequest {
  std::vector<int32_t> prompt;
  GenerateOptions opt;
};

// A prompt's tokens: BOS first when the vocabulary adds one, then the text (special-token text
// not parsed), as the log-likelihood tasks encode their contexts.
std::vector<int32_t> encode_prompt(const Tokenizer& tok, const std::string& text);

// Index of the greedy choice in logits [n_vocab]; ties go to the lowest index.
int32_t argmax_token(const float* logits, int64_t n_vocab);

// Throws Error when the prompt is empty or longer than the cache's n_ctx. A prompt of exactly
// n_ctx tokens still yields one token (its logits need no further cache slot).
Generation generate_greedy(EvalSession& session, const Tokenizer& tok,
                           const std::vector<int32_t>& prompt, const GenerateOptions& opt);

// generate_greedy's loop as a state machine, so several sequences can decode in one batch
// (eval/generate_parallel.h): feed it the logits of the last token held; it picks the next token
// and says whether that token is to be pushed, or the generation has ended.
class GreedyDecoder {
 public:
  GreedyDecoder(const Tokenizer& tok, const GenerateOptions& opt) : tok_(&tok), opt_(&opt) {}
  // logits: [n_vocab]; held: tokens the cache holds, n_ctx its size. Returns true with *next set
  // when next must be pushed and its logits fed back; false when the generation has ended.
  bool step(const float* logits, int64_t n_vocab, int64_t held, int64_t n_ctx, int32_t* next);
  const Generation& result() const { return g_; }
  Generation& result() { return g_; }

 private:
  const Tokenizer* tok_;
  const GenerateOptions* opt_;
  Generation g_;
};

}  // namespace h1bkv
