#include "tokenize/chat.h"

namespace h1bkv {

bool is_chatml_template(const std::string& tmpl) {
  return tmpl.find("<|im_start|>") != std::string::npos;
}

std::string chatml_prompt(const std::string& user) {
  return "<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n";
}

std::string chatml_conversation(const std::vector<std::pair<std::string, std::string>>& turns) {
  std::string out;
  for (const auto& [role, text] : turns) out += "<|im_start|>" + role + "\n" + text + "<|im_end|>\n";
  return out + "<|im_start|>assistant\n";
}

}  // namespace h1bkv
