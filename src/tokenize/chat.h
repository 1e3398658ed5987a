// The ChatML chat template (Qwen2, SmolLM2): "<|im_start|>ROLE\nTEXT<|im_end|>\n" per turn.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace h1bkv {

// True when a GGUF tokenizer.chat_template is a ChatML one (it writes "<|im_start|>").
bool is_chatml_template(const std::string& tmpl);

// One user turn, then the assistant's turn opened for generation, as llama.cpp's built-in
// "chatml" template with add_ass = true. No system turn; no BOS: tokenize it with
// add_special = false and parse_special = true.
std::string chatml_prompt(const std::string& user);

// A whole conversation, (role, text) per turn in order, then the assistant's turn opened, as
// llama.cpp's "chatml" template with add_ass = true. Tokenize as chatml_prompt's text.
std::string chatml_conversation(const std::vector<std::pair<std::string, std::string>>& turns);

}  // namespace h1bkv
