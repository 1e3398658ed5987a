// Tokenizers built from GGUF metadata (tokenizer.ggml.*), no external library:
// SentencePiece-style ("llama") and byte-level BPE ("gpt2") with llama.cpp's pre-tokenizers.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace h1bkv {

class GgufFile;

class Tokenizer {
 public:
  // Reads tokenizer.ggml.model, .pre, .tokens, .scores, .token_type, .merges, special ids and
  // add_bos/add_eos flags. Unsupported models or pre-tokenizers throw Error naming them.
  static std::unique_ptr<Tokenizer> from_gguf(const GgufFile& gguf);
  virtual ~Tokenizer() = default;

  // Text -> ids. add_special: prepend BOS (and append EOS) as the vocab's add_bos/add_eos flags say,
  // as llama.cpp's llama_tokenize does. parse_special: recognise control-token text such as
  // "<|im_start|>" in the input. Invalid UTF-8 in text throws Error.
  virtual std::vector<int32_t> encode(const std::string& text, bool add_special,
                                      bool parse_special) const = 0;
  // One token -> its UTF-8 bytes (byte tokens give their raw byte; control tokens give "" unless
  // special is true).
  virtual std::string token_to_piece(int32_t id, bool special = false) const = 0;
  // Ids -> text, as llama.cpp's llama_detokenize(remove_special=false): pieces concatenated, one
  // leading space of the first text piece dropped when add_space_prefix (SPM), then llama.cpp's
  // clean_spaces pass where the vocab asks for it. Choice: a leading BOS does not use up that
  // space removal (llama.cpp lets it), so decode(encode(t, true, ..)) == t for SPM too.
  std::string decode(const std::vector<int32_t>& ids, bool special = false) const;

  virtual int32_t n_vocab() const = 0;
  virtual int32_t bos() const = 0;  // -1 if none
  virtual int32_t eos() const = 0;  // -1 if none
  virtual bool is_eog(int32_t id) const = 0;  // end of generation (EOS, EOT, <|im_end|>, ...)
  virtual bool add_bos() const = 0;
  virtual std::string model_name() const = 0;  // "llama" or "gpt2"
  virtual std::string pre_name() const = 0;    // pre-tokenizer, e.g. "smollm"

  // Additions (defaults keep other subclasses compiling).
  virtual bool add_eos() const { return false; }
  virtual bool add_space_prefix() const { return false; }  // SPM "▁" prefix
  virtual bool clean_spaces() const { return false; }      // decode() tidies " ." etc.
  virtual int32_t token_id(const std::string& text) const { return -1; }  // exact vocab text
  virtual std::string token_text(int32_t id) const { return {}; }         // raw vocab text
};

}  // namespace h1bkv
