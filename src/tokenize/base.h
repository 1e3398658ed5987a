// Shared implementation of the Tokenizer interface over a Vocab; SPM and BPE add encode().
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "tokenize/tokenizer.h"
#include "tokenize/vocab.h"

namespace h1bkv {

class VocabTokenizer : public Tokenizer {
 public:
  std::string token_to_piece(int32_t id, bool special = false) const override;
  int32_t n_vocab() const override { return v_.n(); }
  int32_t bos() const override { return v_.bos; }
  int32_t eos() const override { return v_.eos; }
  bool is_eog(int32_t id) const override { return v_.eog.count(id) > 0; }
  bool add_bos() const override { return v_.add_bos; }
  bool add_eos() const override { return v_.add_eos; }
  bool add_space_prefix() const override { return v_.add_space_prefix; }
  bool clean_spaces() const override { return v_.clean_spaces; }
  std::string model_name() const override { return v_.model; }
  std::string pre_name() const override { return v_.pre; }
  int32_t token_id(const std::string& text) const override { return v_.find(text); }
  std::string token_text(int32_t id) const override;

 protected:
  // Fills pieces_ (the special=true pieces) after v_ is loaded.
  void build_pieces();
  virtual std::string make_piece(int32_t id) const = 0;
  int32_t check_id(int32_t id) const;
  Vocab v_;
  std::vector<std::string> pieces_;
};

std::unique_ptr<Tokenizer> make_spm_tokenizer(const GgufFile& gguf);
std::unique_ptr<Tokenizer> make_bpe_tokenizer(const GgufFile& gguf);

}  // namespace h1bkv
