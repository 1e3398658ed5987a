// Vocabulary shared by the SPM and BPE tokenizers: token texts, scores, attributes, special ids,
// flags, the end-of-generation set, and the split of input text on special-token texts
// (llama.cpp's tokenizer_st_partition). Loading follows llama_vocab::impl::load.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace h1bkv {

class GgufFile;

// Token attributes, as llama_token_attr.
enum TokenAttr : uint16_t {
  ATTR_UNDEFINED = 0, ATTR_UNKNOWN = 1 << 0, ATTR_UNUSED = 1 << 1, ATTR_NORMAL = 1 << 2,
  ATTR_CONTROL = 1 << 3, ATTR_USER_DEFINED = 1 << 4, ATTR_BYTE = 1 << 5, ATTR_LSTRIP = 1 << 7,
  ATTR_RSTRIP = 1 << 8,
};

struct Vocab {
  enum class Kind { SPM, BPE };
  Kind kind = Kind::SPM;
  std::string model, pre;
  std::vector<std::string> text;
  std::vector<float> score;
  std::vector<uint16_t> attr;
  std::unordered_map<std::string, int32_t> to_id;

  int32_t bos = -1, eos = -1, eot = -1, eom = -1, unk = -1, sep = -1, pad = -1, mask = -1;
  int32_t fim_pre = -1, fim_suf = -1, fim_mid = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1;
  bool add_bos = false, add_eos = false, add_space_prefix = false, clean_spaces = false;
  std::unordered_set<int32_t> eog;

  // CONTROL / USER_DEFINED / UNKNOWN tokens, longest text first (ties by id).
  std::vector<int32_t> specials;

  // Reads tokenizer.ggml.* (model-specific defaults are applied by the caller before via
  // the Kind). Throws Error on missing or inconsistent arrays.
  void load(const GgufFile& gguf, Kind kind, bool default_add_bos, bool default_clean_spaces);

  int32_t find(const std::string& s) const {
    auto it = to_id.find(s);
    return it == to_id.end() ? -1 : it->second;
  }
  int32_t n() const { return int32_t(text.size()); }

  // Input split into raw text and special tokens. token < 0: raw text [off, off + len).
  struct Fragment {
    int32_t token;
    size_t off, len;
  };
  // parse_special false still splits USER_DEFINED tokens, as llama.cpp does.
  std::vector<Fragment> partition(const std::string& text, bool parse_special) const;

 private:
  struct TrieNode {
    std::vector<std::pair<uint8_t, int32_t>> kids;  // byte -> node
    int32_t special = -1;                           // index into specials
  };
  std::vector<TrieNode> trie_;
  int32_t root_[256];  // first byte -> node (0 = none)
  void build_trie();
};

}  // namespace h1bkv
