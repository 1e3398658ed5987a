// libFuzzer target for the tokenizers on arbitrary bytes: encode must return ids in range or
// throw h1bkv::Error (invalid UTF-8), with and without special-token parsing; every id decodes.
// The first input byte picks the vocabulary: stories260K (SentencePiece) from $H1BKV_SHARED, or
// SmolLM2 (byte-level BPE, smollm pre-tokenizer) from $H1BKV_MODELS when it is there.
// Build and run: scripts/fuzz.sh
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "tokenize/tokenizer.h"
#include "util/error.h"
#include "util/paths.h"

namespace {

struct Vocab {
  std::unique_ptr<h1bkv::GgufFile> gguf;
  std::unique_ptr<h1bkv::Tokenizer> tok;
};

std::vector<Vocab> load_vocabs() {
  std::vector<Vocab> v;
  for (const std::string& path : {h1bkv::shared_dir() + "/models/stories260K.gguf",
                                  h1bkv::models_dir() + "/SmolLM2-135M-Instruct.Q4_1.gguf"}) {
    try {
      Vocab x;
      x.gguf = h1bkv::GgufFile::open(path);
      x.tok = h1bkv::Tokenizer::from_gguf(*x.gguf);
      v.push_back(std::move(x));
    } catch (const h1bkv::Error&) {
    }
  }
  if (v.empty()) __builtin_trap();  // no vocabulary at all: nothing would be fuzzed
  return v;
}

const std::vector<Vocab>* vocabs_ptr = nullptr;

}  // namespace

// The vocabularies load here, before libFuzzer arms its per-input timeout: SmolLM2's 49k merges
// take seconds under ASan, which on a loaded machine exceeded -timeout on the first input.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  static const std::vector<Vocab> vocabs = load_vocabs();
  vocabs_ptr = &vocabs;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<Vocab>& vocabs = *vocabs_ptr;
  if (size == 0) return 0;
  const h1bkv::Tokenizer& tok = *vocabs[data[0] % vocabs.size()].tok;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  for (bool special : {false, true}) {
    std::vector<int32_t> ids;
    try {
      ids = tok.encode(text, true, special);
    } catch (const h1bkv::Error&) {
      continue;  // invalid UTF-8
    }
    size_t bytes = 0;
    for (int32_t id : ids) {
      if (id < 0 || id >= tok.n_vocab()) __builtin_trap();
      bytes += tok.token_to_piece(id, true).size();
    }
    (void)bytes;
    (void)tok.decode(ids);
  }
  return 0;
}
