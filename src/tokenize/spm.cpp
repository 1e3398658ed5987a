// SentencePiece-style tokenizer ("llama" model): llama.cpp's llm_tokenizer_spm_session —
// start from UTF-8 characters, repeatedly merge the adjacent pair whose concatenation is the
// highest-scoring vocab token, and fall back to <0xXX> byte tokens for leftovers.
#include <queue>

#include "io/gguf.h"
#include "tokenize/base.h"
#include "tokenize/unicode.h"
#include "util/error.h"

namespace h1bkv {

namespace {

struct Sym {
  int prev, next;
  size_t off, n;  // bytes in the escaped text; n == 0 once merged away
};

struct Bigram {
  int left, right;
  float score;
  size_t size;
};

struct BigramLess {  // priority_queue top = highest score, then leftmost
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

class SpmTokenizer final : public VocabTokenizer {
 public:
  explicit SpmTokenizer(const GgufFile& g) {
    v_.model = "llama";
    v_.pre = g.get_string("tokenizer.ggml.pre", "default");
    v_.load(g, Vocab::Kind::SPM, true, false);
    for (int b = 0; b < 256; ++b) byte_id_[b] = lookup_byte(uint8_t(b));
    build_pieces();
  }

  std::vector<int32_t> encode(const std::string& text, bool add_special,
                              bool parse_special) const override {
    uc::check_utf8(text);
    std::vector<int32_t> out;
    // As llama.cpp: a space is prefixed to raw text at the start and after each special token.
    bool prev_special = true;
    if (add_special && v_.add_bos) {
      check(v_.bos >= 0, "tokenizer: add_bos set but the vocab has no BOS token");
      out.push_back(v_.bos);
    }
    for (const auto& f : v_.partition(text, parse_special)) {
      if (f.token >= 0) {
        out.push_back(f.token);
        prev_special = true;
        continue;
      }
      std::string s;
      s.reserve(f.len + 16);
      if (v_.add_space_prefix && prev_special) s = "\xE2\x96\x81";
      for (size_t i = f.off; i < f.off + f.len; ++i) {
        if (text[i] == ' ') s += "\xE2\x96\x81"; else s += text[i];  // escape ' ' as U+2581
      }
      tokenize(s, out);
      prev_special = false;
    }
    if (add_special && v_.add_eos) {
      check(v_.eos >= 0, "tokenizer: add_eos set but the vocab has no EOS token");
      out.push_back(v_.eos);
    }
    return out;
  }

 private:
  int32_t lookup_byte(uint8_t b) const {
    static const char* hex = "0123456789ABCDEF";
    const char buf[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
    int32_t id = v_.find(buf);
    if (id < 0) id = v_.find(std::string(1, char(b)));
    return id;
  }

  void tokenize(const std::string& s, std::vector<int32_t>& out) const {
    std::vector<Sym> sym;
    sym.reserve(s.size());
    for (size_t off = 0; off < s.size();) {
      size_t n = std::min(uc::utf8_len(s[off]), s.size() - off);
      int idx = int(sym.size());
      sym.push_back({idx - 1, off + n == s.size() ? -1 : idx + 1, off, n});
      off += n;
    }
    std::priority_queue<Bigram, std::vector<Bigram>, BigramLess> q;
    std::string buf;
    auto try_add = [&](int l, int r) {
      if (l < 0 || r < 0) return;
      buf.assign(s, sym[l].off, sym[l].n + sym[r].n);
      int32_t id = v_.find(buf);
      if (id < 0) return;
      q.push({l, r, v_.score[id], buf.size()});
    };
    for (int i = 1; i < int(sym.size()); ++i) try_add(i - 1, i);
    while (!q.empty()) {
      Bigram bg = q.top();
      q.pop();
      Sym& l = sym[bg.left];
      Sym& r = sym[bg.right];
      if (l.n == 0 || r.n == 0 || l.n + r.n != bg.size) continue;  // stale
      l.n += r.n;
      r.n = 0;
      l.next = r.next;
      if (r.next >= 0) sym[r.next].prev = bg.left;
      try_add(l.prev, bg.left);
      try_add(bg.left, l.next);
    }
    // Every merged symbol is a token; unmerged characters not in the vocab become bytes.
    for (int i = sym.empty() ? -1 : 0; i != -1; i = sym[i].next) {
      buf.assign(s, sym[i].off, sym[i].n);
      int32_t id = v_.find(buf);
      if (id >= 0) { out.push_back(id); continue; }
      for (char c : buf) {
        int32_t b = byte_id_[uint8_t(c)];
        if (b < 0) b = v_.unk;
        if (b < 0) throw Error("tokenizer: no byte token for byte " + std::to_string(uint8_t(c)));
        out.push_back(b);
      }
    }
  }

  // llama.cpp's token_to_piece for SPM: control/unknown/user-defined as text, normal with
  // U+2581 -> ' ', byte tokens as their byte, anything else empty.
  std::string make_piece(int32_t id) const override {
    const uint16_t a = v_.attr[id];
    const std::string& t = v_.text[id];
    if (a & (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED)) return t;
    if (a & ATTR_NORMAL) {
      std::string r;
      for (size_t i = 0; i < t.size(); ++i) {
        if (t.compare(i, 3, "\xE2\x96\x81") == 0) { r += ' '; i += 2; } else r += t[i];
      }
      return r;
    }
    if ((a & ATTR_BYTE) && t.size() == 6 && t.compare(0, 3, "<0x") == 0) {
      auto hex = [](char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
             : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      };
      int hi = hex(t[3]), lo = hex(t[4]);
      if (hi >= 0 && lo >= 0) return std::string(1, char(hi * 16 + lo));
    }
    return {};
  }

  int32_t byte_id_[256];
};

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(const GgufFile& gguf) {
  return std::make_unique<SpmTokenizer>(gguf);
}

}  // namespace h1bkv
