// Byte-level BPE tokenizer ("gpt2" model): llama.cpp's llm_tokenizer_bpe_session — pre-tokenize
// (pretokenize.cpp), map each word's bytes to GPT-2's printable codepoints, then merge adjacent
// symbols by lowest merge rank from tokenizer.ggml.merges.
#include <map>
#include <queue>
#include <unordered_map>

#include "io/gguf.h"
#include "tokenize/base.h"
#include "tokenize/pretokenize.h"
#include "tokenize/unicode.h"
#include "util/error.h"

namespace h1bkv {

namespace {

struct Sym {
  int prev, next;
  uint32_t off, n;  // bytes of the raw word; n == 0 once merged away
  int32_t id;       // vocab id of the symbol's (encoded) text, -1 if none
};

struct Bigram {
  int left, right;
  int rank;
  uint32_t ln, rn;  // symbol sizes when queued (stale check)
  int32_t merged;   // id of the merged text
};

struct BigramGreater {  // priority_queue top = lowest rank, then leftmost
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

class BpeTokenizer final : public VocabTokenizer {
 public:
  explicit BpeTokenizer(const GgufFile& g) {
    v_.model = "gpt2";
    v_.pre = g.get_string("tokenizer.ggml.pre", "");
    info_ = pre_info(v_.pre);
    if (v_.pre.empty()) v_.pre = "default";
    v_.load(g, Vocab::Kind::BPE, info_.force_add_bos, info_.clean_spaces);
    const auto& merges = g.get_array("tokenizer.ggml.merges", GgufType::STRING).arr_str;
    for (size_t i = 0; i < merges.size(); ++i) {
      const std::string& m = merges[i];
      size_t sp = m.find(' ', 1);  // as llama.cpp: split at the first space after the start
      std::string a, b;
      if (sp != std::string::npos) { a = m.substr(0, sp); b = m.substr(sp + 1); }
      int32_t ia = v_.find(a), ib = v_.find(b);
      if (ia >= 0 && ib >= 0)
        pair_rank_.emplace(key(ia, ib), Rank{int(i), v_.find(a + b)});
      else
        str_rank_.emplace(std::make_pair(a, b), int(i));  // rare: a side is not a token
    }
    for (int b = 0; b < 256; ++b) byte_id_[b] = v_.find(uc::byte_to_unicode(uint8_t(b)));
    build_pieces();
  }

  std::vector<int32_t> encode(const std::string& text, bool add_special,
                              bool parse_special) const override {
    uc::check_utf8(text);
    std::vector<int32_t> out;
    if (add_special && v_.add_bos) {
      check(v_.bos >= 0, "tokenizer: add_bos set but the vocab has no BOS token");
      out.push_back(v_.bos);
    }
    std::unordered_map<std::string, std::vector<int32_t>> cache;  // word -> ids, per call
    for (const auto& f : v_.partition(text, parse_special)) {
      if (f.token >= 0) { out.push_back(f.token); continue; }
      const std::string frag = text.substr(f.off, f.len);
      const std::vector<uint32_t> cps = uc::decode_utf8(frag);
      size_t byte = 0, cp = 0;
      std::string word;
      for (uint32_t len : pre_split(cps, info_.type)) {
        size_t start = byte;
        for (uint32_t k = 0; k < len; ++k, ++cp)
          byte += cps[cp] < 0x80 ? 1 : cps[cp] < 0x800 ? 2 : cps[cp] < 0x10000 ? 3 : 4;
        word.assign(frag, start, byte - start);
        auto it = cache.find(word);
        if (it == cache.end()) it = cache.emplace(word, bpe_word(word)).first;
        out.insert(out.end(), it->second.begin(), it->second.end());
      }
    }
    if (add_special && v_.add_eos) {
      check(v_.eos >= 0, "tokenizer: add_eos set but the vocab has no EOS token");
      out.push_back(v_.eos);
    }
    return out;
  }

 private:
  struct Rank {
    int rank;
    int32_t merged;
  };
  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

  std::string encoded(const std::string& word, uint32_t off, uint32_t n) const {
    std::string e;
    for (uint32_t i = off; i < off + n; ++i) e += uc::byte_to_unicode(uint8_t(word[i]));
    return e;
  }

  // Merge rank of two adjacent symbols, or -1.
  Rank rank(const std::string& w, const Sym& l, const Sym& r) const {
    if (l.id >= 0 && r.id >= 0) {
      auto it = pair_rank_.find(key(l.id, r.id));
      return it == pair_rank_.end() ? Rank{-1, -1} : it->second;
    }
    if (str_rank_.empty()) return {-1, -1};
    std::string a = encoded(w, l.off, l.n), b = encoded(w, r.off, r.n);
    auto it = str_rank_.find({a, b});
    return it == str_rank_.end() ? Rank{-1, -1} : Rank{it->second, v_.find(a + b)};
  }

  std::vector<int32_t> bpe_word(const std::string& w) const {
    std::vector<int32_t> out;
    if (info_.ignore_merges) {
      int32_t id = v_.find(encoded(w, 0, uint32_t(w.size())));
      if (id >= 0) return {id};
    }
    // One symbol per byte: each byte is one codepoint after the byte-to-unicode mapping.
    std::vector<Sym> sym(w.size());
    for (size_t i = 0; i < w.size(); ++i)
      sym[i] = {int(i) - 1, i + 1 == w.size() ? -1 : int(i) + 1, uint32_t(i), 1,
                byte_id_[uint8_t(w[i])]};
    std::priority_queue<Bigram, std::vector<Bigram>, BigramGreater> q;
    auto try_add = [&](int l, int r) {
      if (l < 0 || r < 0) return;
      Rank rk = rank(w, sym[l], sym[r]);
      if (rk.rank >= 0) q.push({l, r, rk.rank, sym[l].n, sym[r].n, rk.merged});
    };
    for (int i = 1; i < int(sym.size()); ++i) try_add(i - 1, i);
    while (!q.empty()) {
      Bigram bg = q.top();
      q.pop();
      Sym& l = sym[bg.left];
      Sym& r = sym[bg.right];
      if (l.n == 0 || r.n == 0 || l.n != bg.ln || r.n != bg.rn) continue;  // stale
      l.n += r.n;
      l.id = bg.merged;
      r.n = 0;
      l.next = r.next;
      if (r.next >= 0) sym[r.next].prev = bg.left;
      try_add(l.prev, bg.left);
      try_add(bg.left, l.next);
    }
    for (int i = sym.empty() ? -1 : 0; i != -1; i = sym[i].next) {
      if (sym[i].id >= 0) { out.push_back(sym[i].id); continue; }
      // As llama.cpp: a symbol that is no token falls back to single-byte tokens of its
      // encoded text, silently dropping bytes without one.
      for (char c : encoded(w, sym[i].off, sym[i].n)) {
        int32_t id = v_.find(std::string(1, c));
        if (id >= 0) out.push_back(id);
      }
    }
    return out;
  }

  // llama.cpp's token_to_piece for BPE: control/unknown/user-defined as text, normal tokens
  // mapped back from GPT-2 codepoints to bytes, anything else empty.
  std::string make_piece(int32_t id) const override {
    const uint16_t a = v_.attr[id];
    const std::string& t = v_.text[id];
    if (a & (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED)) return t;
    if (!(a & ATTR_NORMAL)) return {};
    std::string r;
    for (uint32_t cp : uc::decode_utf8(t)) {
      int b = uc::unicode_to_byte(cp);
      if (b >= 0) { r += char(b); continue; }
      std::string u;
      uc::append_utf8(u, cp);
      r += "[UNK_BYTE_0x";  // llama.cpp's llama_decode_text marker
      static const char* hex = "0123456789abcdef";
      for (char c : u) { r += hex[uint8_t(c) >> 4]; r += hex[uint8_t(c) & 15]; }
      r += t + "]";
    }
    return r;
  }

  PreInfo info_;
  std::unordered_map<uint64_t, Rank> pair_rank_;
  std::map<std::pair<std::string, std::string>, int> str_rank_;
  int32_t byte_id_[256];
};

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(const GgufFile& gguf) {
  return std::make_unique<BpeTokenizer>(gguf);
}

}  // namespace h1bkv
