#include "tokenize/tokenizer.h"

#include "io/gguf.h"
#include "tokenize/base.h"
#include "util/error.h"

namespace h1bkv {

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile& gguf) {
  const std::string model = gguf.get_string("tokenizer.ggml.model", "");
  if (model == "llama") return make_spm_tokenizer(gguf);
  if (model == "gpt2") return make_bpe_tokenizer(gguf);
  if (model.empty()) throw Error(gguf.path() + ": no tokenizer.ggml.model");
  throw Error(gguf.path() + ": unsupported tokenizer model '" + model + "'");
}

// llama.cpp's llama_vocab::impl::detokenize with remove_special = false (see tokenizer.h for
// the BOS choice).
std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool special) const {
  std::string out;
  bool remove_space = add_space_prefix();
  for (size_t i = 0; i < ids.size(); ++i) {
    std::string piece = token_to_piece(ids[i], special);
    if (i == 0 && ids[i] == bos() && bos() >= 0) {
      out += piece;  // the space removal carries to the next token
      continue;
    }
    if (remove_space && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    remove_space = false;
    out += piece;
  }
  if (!clean_spaces() || out.empty()) return out;

  // 1: " ?" " !" " ." " ," lose the space.
  std::string a;
  a += out[0];
  for (size_t i = 1; i < out.size(); ++i) {
    char x = out[i];
    if (out[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) a.pop_back();
    a += x;
  }
  // 2: " ' " -> "'" (the dropped space reads as NUL afterwards, as in llama.cpp's in-place loop).
  std::string b;
  b += a[0];
  for (size_t i = 1; i < a.size(); ++i) {
    char x = a[i];
    if (x == '\'' && i + 1 < a.size() && a[i - 1] == ' ' && a[i + 1] == ' ') {
      b.pop_back();
      a[++i] = '\0';
    }
    b += x;
  }
  // 3: " 's" " 'm" " 're" " 've" lose the space.
  std::string c;
  c += b[0];
  for (size_t i = 1; i < b.size(); ++i) {
    char x = b[i];
    if (b[i - 1] == ' ' && x == '\'' && i + 1 < b.size()) {
      char x1 = b[i + 1];
      if (x1 == 's' || x1 == 'm') c.pop_back();
      else if (i + 2 < b.size() && ((x1 == 'r' && b[i + 2] == 'e') || (x1 == 'v' && b[i + 2] == 'e')))
        c.pop_back();
    }
    c += x;
  }
  return c;
}

int32_t VocabTokenizer::check_id(int32_t id) const {
  if (id < 0 || id >= v_.n())
    throw Error("token id " + std::to_string(id) + " out of range (n_vocab " +
                std::to_string(v_.n()) + ")");
  return id;
}

std::string VocabTokenizer::token_text(int32_t id) const { return v_.text[check_id(id)]; }

std::string VocabTokenizer::token_to_piece(int32_t id, bool special) const {
  check_id(id);
  if (!special && (v_.attr[id] & (ATTR_UNKNOWN | ATTR_CONTROL))) return {};
  return pieces_[id];
}

void VocabTokenizer::build_pieces() {
  pieces_.resize(v_.text.size());
  for (int32_t i = 0; i < v_.n(); ++i) pieces_[i] = make_piece(i);
}

}  // namespace h1bkv
