// Passkey retrieval (long context, after Mohtashami & Jaggi 2023, "Landmark Attention"): neutral
// filler sentences, one sentence holding a random 5-digit key at a chosen depth of the filler,
// and a question at the end; the model must repeat the key. Layout:
//   kPasskeyHeader + filler[0..k) + " The pass key is NNNNN. Remember it. NNNNN is the pass key. "
//   + filler[k..n) + "\n\nWhat is the pass key? The pass key is"
// with k = round(depth * n) (a sentence boundary) and n chosen so that the prompt has at most the
// target number of tokens and is within one filler sentence of it.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "eval/tasks/task.h"

namespace h1bkv {

class Tokenizer;

struct PasskeyPrompt {
  std::string text;
  std::vector<int32_t> tokens;  // BOS first when the vocabulary adds one
  int64_t key_token = 0;        // index in tokens where the key sentence begins
  int64_t n_sentences = 0;      // filler sentences
};

// Filler sentences whose prompt (for this key length) fits target_tokens: the largest count n
// with tokens(prompt) <= target_tokens (0 when even the empty filler is too long).
int64_t passkey_filler_sentences(const Tokenizer& tok, int64_t target_tokens);
// The prompt with n_sentences of filler and the key at depth (0 = before all filler, 1 = after
// all of it). Throws Error when depth is outside [0, 1] or the key is not 5 digits.
PasskeyPrompt make_passkey_prompt(const Tokenizer& tok, int64_t n_sentences, double depth, const std::string& key);
// Key `index` of one grid cell: 5 digits (10000..99999) from the seed, the length, the depth and
// the index (0 = the one-key grid's key).
std::string passkey_key(uint64_t seed, int64_t length, int depth_pct, int index = 0);
// The first run of digits in the completion equals the key.
bool passkey_answer_matches(const std::string& completion, const std::string& key);

// The grid: lengths {1024, 2048, 4096, 8192} that fit the model's context (n_ctx; when none do,
// the single length n_ctx), or TaskOptions::passkey_lengths, x depths {100, 75, 50, 25, 0} %,
// passkey_keys items (keys) per cell, lengths ascending and depths descending so each item reuses
// the filler prefix of the one before. A length L is the prompt plus the generation budget; every
// item is in the standard subset.
std::unique_ptr<Task> make_passkey_task(const TaskOptions& o);

}  // namespace h1bkv
