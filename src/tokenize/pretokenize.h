// Pre-tokenizers for byte-level BPE: the regex splits llama.cpp applies per tokenizer.ggml.pre
// (src/llama-vocab.cpp, llm_tokenizer_bpe), hand-written instead of std::regex. Each regex is
// applied in turn to every piece left by the previous one; text a regex does not match stays as
// its own piece, as in llama.cpp's unicode_regex_split.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace h1bkv {

enum class PreType {
  GPT2,            // gpt-2, mpt, olmo, jais, phi-2, ...: the GPT-2 regex
  LLAMA3,          // llama3 / llama-bpe / dbrx / smaug / chatglm: \p{N}{1,3} variant
  QWEN2,           // qwen2 / stablelm2 / megrez: as LLAMA3 with single digits
  STARCODER,       // starcoder, refact, smollm, command-r, codeshell, exaone, minerva
  FALCON,
  DEEPSEEK_LLM,
  DEEPSEEK_CODER,
  DEFAULT,         // missing or "default" pre for a gpt2 model
};

struct PreInfo {
  PreType type;
  bool clean_spaces;   // llama.cpp's detokenize clean-up of " ." etc.
  bool ignore_merges;  // a whole word that is a token is taken as is
  bool force_add_bos;  // add_bos default true (llama3 family)
};

// Maps a tokenizer.ggml.pre name to its splitter; throws Error for names not supported.
PreInfo pre_info(const std::string& pre);

// Splits codepoints into pieces; returns each piece's length in codepoints.
std::vector<uint32_t> pre_split(const std::vector<uint32_t>& cps, PreType type);

}  // namespace h1bkv
