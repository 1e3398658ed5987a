#include "tokenize/vocab.h"

#include <algorithm>
#include <cctype>
#include <string_view>

#include "io/gguf.h"
#include "util/error.h"

namespace h1bkv {

namespace {

bool c_isspace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

bool contains_any(const std::string& s, std::initializer_list<const char*> subs) {
  for (const char* x : subs)
    if (s.find(x) != std::string::npos) return true;
  return false;
}

}  // namespace

void Vocab::load(const GgufFile& g, Kind k, bool default_add_bos, bool default_clean_spaces) {
  kind = k;
  const std::string key = "tokenizer.ggml.";
  // Defaults per model, as llama_vocab::impl::load.
  if (kind == Kind::SPM) {
    bos = 1; eos = 2; unk = 0;
    add_bos = true; add_eos = false; add_space_prefix = true; clean_spaces = false;
  } else {
    bos = 11; eos = 11;
    add_bos = default_add_bos; add_eos = false; add_space_prefix = false;
    clean_spaces = default_clean_spaces;
  }
  add_space_prefix = g.get_bool(key + "add_space_prefix", add_space_prefix);

  const auto& toks = g.get_array(key + "tokens", GgufType::STRING).arr_str;
  const size_t n_tok = toks.size();
  if (n_tok == 0) throw Error("tokenizer.ggml.tokens is empty");
  const GgufValue* sc = g.find(key + "scores");
  const GgufValue* ty = g.find(key + "token_type");
  if (sc && (sc->type != GgufType::ARRAY || sc->arr_float.size() != n_tok))
    throw Error("tokenizer.ggml.scores: expected " + std::to_string(n_tok) + " floats");
  if (ty && (ty->type != GgufType::ARRAY || ty->arr_int.size() != n_tok))
    throw Error("tokenizer.ggml.token_type: expected " + std::to_string(n_tok) + " integers");

  text.resize(n_tok);
  score.assign(n_tok, 0.0f);
  attr.assign(n_tok, ATTR_NORMAL);
  to_id.reserve(n_tok * 2);
  for (size_t i = 0; i < n_tok; ++i) {
    text[i] = toks[i].empty() ? "[EMPTY_" + std::to_string(i) + "]" : toks[i];
    to_id[text[i]] = int32_t(i);  // a repeated text maps to its last id, as in llama.cpp
    if (sc) score[i] = float(sc->arr_float[i]);
    if (ty) {
      switch (ty->arr_int[i]) {  // llama_token_type -> llama_token_attr
        case 1: attr[i] = ATTR_NORMAL; break;
        case 2: attr[i] = ATTR_UNKNOWN; break;
        case 3: attr[i] = ATTR_CONTROL; break;
        case 4: attr[i] = ATTR_USER_DEFINED; break;
        case 5: attr[i] = ATTR_UNUSED; break;
        case 6: attr[i] = ATTR_BYTE; break;
        default: attr[i] = ATTR_UNDEFINED; break;
      }
    }
  }

  // Special ids from metadata; out-of-range ids keep the default.
  const std::pair<const char*, int32_t*> ids[] = {
      {"bos_token_id", &bos},       {"eos_token_id", &eos},         {"eot_token_id", &eot},
      {"eom_token_id", &eom},       {"unknown_token_id", &unk},     {"seperator_token_id", &sep},
      {"padding_token_id", &pad},   {"mask_token_id", &mask},       {"fim_pre_token_id", &fim_pre},
      {"fim_suf_token_id", &fim_suf}, {"fim_mid_token_id", &fim_mid},
      {"fim_pad_token_id", &fim_pad}, {"fim_rep_token_id", &fim_rep},
      {"fim_sep_token_id", &fim_sep}, {"prefix_token_id", &fim_pre},
      {"suffix_token_id", &fim_suf},  {"middle_token_id", &fim_mid},
  };
  for (const auto& [name, dst] : ids) {
    int64_t v = g.get_int(key + name, -1);
    if (v >= 0 && v < int64_t(n_tok)) *dst = int32_t(v);
  }
  add_bos = g.get_bool(key + "add_bos_token", add_bos);
  add_eos = g.get_bool(key + "add_eos_token", add_eos);

  // Auto-detect EOT/EOM/FIM tokens by text; such tokens are forced to CONTROL.
  auto detect = [&](int32_t& id, std::initializer_list<const char*> names) {
    if (id >= 0) return;
    for (int32_t i = 0; i < int32_t(n_tok) && id < 0; ++i)
      for (const char* nm : names)
        if (text[i] == nm) { id = i; attr[i] = ATTR_CONTROL; break; }
  };
  detect(eot, {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>",
               "_<EOT>", "<｜end▁of▁sentence｜>", "<end_of_utterance>"});
  detect(eom, {"<|eom_id|>"});
  detect(fim_pre, {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>",
                   "▁<PRE>", "<|code_prefix|>"});
  detect(fim_suf, {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>",
                   "▁<SUF>", "<|code_suffix|>"});
  detect(fim_mid, {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>",
                   "▁<MID>", "<|code_middle|>"});
  detect(fim_pad, {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>"});
  detect(fim_rep, {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"});
  detect(fim_sep, {"<|file_sep|>"});

  // End-of-generation set (llama.cpp marks these by text, see its issue 9606).
  eog.clear();
  for (int32_t id : {fim_pad, fim_rep, fim_sep, eos, eot, eom})
    if (id >= 0) eog.insert(id);
  static const char* kEogText[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>",
                                   "<|call|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
                                   "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>"};
  for (const char* t : kEogText) {
    int32_t id = find(t);
    if (id >= 0) { eog.insert(id); attr[id] = ATTR_CONTROL; }
  }
  for (const char* t : {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"})
    if (int32_t id = find(t); id >= 0) attr[id] = ATTR_USER_DEFINED;  // gpt-oss
  // o200k_harmony: with <|return|> and <|call|>, <|end|> is not end of generation.
  int32_t id_ret = find("<|return|>"), id_call = find("<|call|>"), id_end = find("<|end|>");
  if (id_ret >= 0 && id_call >= 0 && id_end >= 0 && eog.count(id_end)) {
    eog.erase(id_end);
    attr[id_end] = ATTR_USER_DEFINED;
  }

  specials.clear();
  for (int32_t i = 0; i < int32_t(n_tok); ++i)
    if (attr[i] & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN)) specials.push_back(i);
  std::stable_sort(specials.begin(), specials.end(), [&](int32_t a, int32_t b) {
    return text[a].size() > text[b].size();
  });

  // Per-model strip attributes (llama.cpp sets them by general.name).
  std::string name = g.get_string("general.name", "");
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  if (contains_any(name, {"phi-3", "phi3"})) {
    for (int32_t id : specials) attr[id] |= ATTR_RSTRIP;
    if (int32_t id = find("</s>"); id >= 0) attr[id] |= ATTR_RSTRIP;
    for (const char* t : {"<unk>", "<s>", "<|endoftext|>"})
      if (int32_t id = find(t); id >= 0) attr[id] &= uint16_t(~ATTR_RSTRIP);
  }
  build_trie();
}

void Vocab::build_trie() {
  trie_.assign(1, TrieNode{});
  for (size_t si = 0; si < specials.size(); ++si) {
    int32_t node = 0;
    for (char ch : text[specials[si]]) {
      uint8_t c = uint8_t(ch);
      int32_t next = -1;
      for (auto& [b, kid] : trie_[node].kids)
        if (b == c) { next = kid; break; }
      if (next < 0) {
        next = int32_t(trie_.size());
        trie_[node].kids.emplace_back(c, next);
        trie_.emplace_back();
      }
      node = next;
    }
    if (trie_[node].special < 0) trie_[node].special = int32_t(si);
  }
  for (int c = 0; c < 256; ++c) root_[c] = 0;
  for (auto& [b, kid] : trie_[0].kids) root_[b] = kid;
}

std::vector<Vocab::Fragment> Vocab::partition(const std::string& s, bool parse_special) const {
  std::vector<Fragment> frags;
  if (s.empty()) return frags;
  frags.push_back({-1, 0, s.size()});
  if (specials.empty()) return frags;

  // One pass with the trie finds which special texts occur at all, so the per-token splitting
  // below (llama.cpp's algorithm) only runs for those.
  std::vector<char> present(specials.size(), 0);
  bool any = false;
  for (size_t i = 0; i < s.size(); ++i) {
    int32_t node = root_[uint8_t(s[i])];
    if (node == 0) continue;
    if (trie_[node].special >= 0) present[trie_[node].special] = any = true;
    for (size_t j = i + 1; j < s.size(); ++j) {
      int32_t next = -1;
      for (auto& [b, kid] : trie_[node].kids)
        if (b == uint8_t(s[j])) { next = kid; break; }
      if (next < 0) break;
      node = next;
      if (trie_[node].special >= 0) present[trie_[node].special] = any = true;
    }
  }
  if (!any) return frags;

  std::string_view all(s);
  for (size_t si = 0; si < specials.size(); ++si) {
    if (!present[si]) continue;
    const int32_t id = specials[si];
    if (!parse_special && (attr[id] & (ATTR_CONTROL | ATTR_UNKNOWN))) continue;
    const std::string& tok = text[id];
    std::vector<Fragment> out;
    out.reserve(frags.size() + 8);
    for (const Fragment& f : frags) {
      if (f.token >= 0) { out.push_back(f); continue; }
      size_t pos = f.off, end = f.off + f.len;
      while (pos < end) {
        size_t m = all.substr(0, end).find(tok, pos);
        if (m == std::string_view::npos) break;
        size_t left_len = m - pos;
        if (attr[id] & ATTR_LSTRIP)
          while (left_len > 0 && c_isspace(s[pos + left_len - 1])) --left_len;
        if (left_len > 0) out.push_back({-1, pos, left_len});
        out.push_back({id, m, tok.size()});
        pos = m + tok.size();
        if (attr[id] & ATTR_RSTRIP)
          while (pos < end && c_isspace(s[pos])) ++pos;
      }
      if (pos < end) out.push_back({-1, pos, end - pos});
    }
    frags.swap(out);
  }
  return frags;
}

}  // namespace h1bkv
