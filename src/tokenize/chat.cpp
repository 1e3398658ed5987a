#include "tokenize/chat.h"

namespace h1bkv {

bool is_chatml_template(const std::string& tmpl) {
  return tmpl.find("<|im_start|>") != std::string::npos;
}

std::string chatml_prompt(const std::string& user) {
  return "<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n";
}

}  // namespace h1bkv
