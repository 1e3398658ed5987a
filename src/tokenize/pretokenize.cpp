// Hand-written equivalents of the regexes in llama.cpp's llm_tokenizer_bpe (src/llama-vocab.cpp)
// as run by unicode_regex_split (src/unicode.cpp):
//  - the GPT-2 and LLAMA3 regexes follow llama.cpp's custom splitters (unicode flags);
//  - regexes with \p{..} run in llama.cpp on "collapsed" text: ASCII as is, other codepoints as
//    their category; our category table gives the same classes;
//  - regexes without \p{..} run on codepoints with non-ASCII whitespace replaced by U+000B, so
//    e.g. U+3000 is \s there but never inside an explicit range.
// Matching is leftmost-first per regex; unmatched runs stay as separate pieces.
#include "tokenize/pretokenize.h"

#include "tokenize/unicode.h"
#include "util/error.h"

namespace h1bkv {

namespace {

enum Rule {
  R_GPT2,            // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
  R_LLAMA3,          // (?i:'s|..)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|...
  R_QWEN2,           // as R_LLAMA3 with \p{N}
  R_NUM1,            // \p{N}
  R_NUMRUN,          // \p{N}+
  R_DIGIT3,          // [0-9][0-9][0-9]
  R_PUNCT_FALCON,    // [\p{P}\$\+<=>\^~\|`]+
  R_PUNCT_DEFAULT,   // [\p{P}\$\+<=>\^~\|]+
  R_NEWLINE,         // [\r\n]
  R_SPACE_LETTERS,   // \s?\p{L}+
  R_SPACE_PUNCT,     // \s?\p{P}+
  R_CJK,             // [一-龥ࠀ-一가-퟿]+
  R_DS_LETTERS,      // \s?[A-Za-zµÀ-Ö...]+ (deepseek-llm)
  R_DS_PUNCT,        // \s?[!-/:-~！-／：-～‘-‟　-。]+
  R_TRAIL_SPACE,     // \s+$
};

constexpr uint32_t kOut = 0xFFFFFFFF;  // "past the piece"

struct Piece {
  const uint32_t* cp;
  const uint8_t* fl;  // uc::flags of each codepoint
  size_t b, e;        // [b, e) in the text
  size_t trail;       // start of the trailing whitespace run (for \s+$)

  uint32_t at(size_t p) const { return p < e ? cp[p] : kOut; }
  bool ws(size_t p) const { return p < e && (fl[p] & uc::kWhitespace); }
  bool cat(size_t p, uint8_t c) const { return p < e && (fl[p] & 7) == c; }
  bool L(size_t p) const { return cat(p, uc::LETTER); }
  bool N(size_t p) const { return cat(p, uc::NUMBER); }
  bool P(size_t p) const { return cat(p, uc::PUNCT); }
  // [^\s\p{L}\p{N}]
  bool other(size_t p) const {
    return p < e && !(fl[p] & uc::kWhitespace) && (fl[p] & 7) != uc::LETTER &&
           (fl[p] & 7) != uc::NUMBER;
  }
  // Non-ASCII whitespace is U+000B for the explicit-range regexes.
  bool masked(size_t p) const { return cp[p] >= 128 && (fl[p] & uc::kWhitespace); }
};

bool is_nl(uint32_t c) { return c == '\r' || c == '\n'; }

bool ascii_in(uint32_t c, const char* set) {
  for (; *set; ++set)
    if (c == uint32_t(uint8_t(*set))) return true;
  return false;
}

bool in_cjk(uint32_t c) {
  return (c >= 0x4E00 && c <= 0x9FA5) || (c >= 0x0800 && c <= 0x4E00) ||
         (c >= 0xAC00 && c <= 0xD7FF);
}

bool in_ds_letters(uint32_t c) {
  size_t lo = 0, hi = uc::kDeepseekLettersCount;
  while (lo < hi) {  // first range with last >= c
    size_t mid = (lo + hi) / 2;
    if (uc::kDeepseekLetters[mid][1] < c) lo = mid + 1; else hi = mid;
  }
  return lo < uc::kDeepseekLettersCount && uc::kDeepseekLetters[lo][0] <= c;
}

bool in_ds_punct(uint32_t c) {
  return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x7E) || (c >= 0xFF01 && c <= 0xFF0F) ||
         (c >= 0xFF1A && c <= 0xFF5E) || (c >= 0x2018 && c <= 0x201F) ||
         (c >= 0x3000 && c <= 0x3002);
}

// 's 't 're 've 'm 'll 'd (optionally case-insensitive) at p: length or 0.
size_t contraction(const Piece& s, size_t p, bool icase) {
  if (s.at(p) != '\'' || p + 1 >= s.e) return 0;
  auto low = [&](uint32_t c) { return icase && c >= 'A' && c <= 'Z' ? c + 32 : c; };
  uint32_t a = low(s.at(p + 1));
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (p + 2 >= s.e) return 0;
  uint32_t b = low(s.at(p + 2));
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// Whitespace alternatives \s+(?!\S) | \s+ as llama.cpp's custom splitters take them.
size_t spaces(const Piece& s, size_t p) {
  size_t n = 0;
  while (s.ws(p + n)) ++n;
  if (n > 1 && p + n < s.e) return n - 1;
  return n;
}

// GPT-2 regex, following unicode_regex_split_custom_gpt2.
size_t match_gpt2(const Piece& s, size_t p) {
  if (size_t n = contraction(s, p, false)) return n;
  size_t q = p + (s.at(p) == ' ' ? 1 : 0);
  if (q < s.e) {
    size_t r = q;
    if (s.L(q)) { while (s.L(r)) ++r; return r - p; }
    if (s.N(q)) { while (s.N(r)) ++r; return r - p; }
    if (s.other(q)) { while (s.other(r)) ++r; return r - p; }
  }
  size_t n = spaces(s, p);
  return n ? n : 1;
}

// LLAMA3 regex (max_digits 3) and the QWEN2 variant (1), following
// unicode_regex_split_custom_llama3.
size_t match_llama3(const Piece& s, size_t p, size_t max_digits) {
  if (size_t n = contraction(s, p, true)) return n;
  uint32_t c = s.at(p);
  if (!is_nl(c) && !s.N(p) && (s.L(p) || s.L(p + 1))) {  // [^\r\n\p{L}\p{N}]?\p{L}+
    size_t r = p + 1;
    while (s.L(r)) ++r;
    return r - p;
  }
  if (s.N(p)) {
    size_t r = p;
    while (s.N(r) && r - p < max_digits) ++r;
    return r - p;
  }
  size_t q = p + (c == ' ' && s.other(p + 1) ? 1 : 0);  //  ?[^\s\p{L}\p{N}]+[\r\n]*
  if (s.other(q)) {
    while (s.other(q)) ++q;
    while (is_nl(s.at(q))) ++q;
    return q - p;
  }
  size_t n = 0, last_nl = 0;  // \s*[\r\n]+
  while (s.ws(p + n)) {
    if (is_nl(s.at(p + n))) last_nl = n + 1;
    ++n;
  }
  if (last_nl) return last_nl;
  n = spaces(s, p);
  return n ? n : 1;
}

// \s?X+ where X is given by pred.
template <class Pred>
size_t space_run(const Piece& s, size_t p, Pred pred) {
  size_t q = p;
  if (s.ws(q) && q + 1 < s.e && pred(q + 1)) ++q;
  size_t r = q;
  while (r < s.e && pred(r)) ++r;
  return r > q ? r - p : 0;
}

template <class Pred>
size_t run(const Piece& s, size_t p, Pred pred) {
  size_t r = p;
  while (r < s.e && pred(r)) ++r;
  return r - p;
}

size_t match(Rule rule, const Piece& s, size_t p) {
  switch (rule) {
    case R_GPT2: return match_gpt2(s, p);
    case R_LLAMA3: return match_llama3(s, p, 3);
    case R_QWEN2: return match_llama3(s, p, 1);
    case R_NUM1: return s.N(p) ? 1 : 0;
    case R_NUMRUN: return run(s, p, [&](size_t i) { return s.N(i); });
    case R_DIGIT3: {
      auto dig = [&](size_t i) { return i < s.e && s.cp[i] >= '0' && s.cp[i] <= '9'; };
      return dig(p) && dig(p + 1) && dig(p + 2) ? 3 : 0;
    }
    case R_PUNCT_FALCON:
      return run(s, p, [&](size_t i) { return s.P(i) || ascii_in(s.cp[i], "$+<=>^~|`"); });
    case R_PUNCT_DEFAULT:
      return run(s, p, [&](size_t i) { return s.P(i) || ascii_in(s.cp[i], "$+<=>^~|"); });
    case R_NEWLINE: return is_nl(s.cp[p]) ? 1 : 0;
    case R_SPACE_LETTERS: return space_run(s, p, [&](size_t i) { return s.L(i); });
    case R_SPACE_PUNCT: return space_run(s, p, [&](size_t i) { return s.P(i); });
    case R_CJK:
      return run(s, p, [&](size_t i) { return !s.masked(i) && in_cjk(s.cp[i]); });
    case R_DS_LETTERS:
      return space_run(s, p, [&](size_t i) { return !s.masked(i) && in_ds_letters(s.cp[i]); });
    case R_DS_PUNCT:
      return space_run(s, p, [&](size_t i) { return !s.masked(i) && in_ds_punct(s.cp[i]); });
    case R_TRAIL_SPACE: return p == s.trail ? s.e - p : 0;
  }
  return 0;
}

// Applies one regex to every piece: matches and the runs between them become pieces.
std::vector<uint32_t> apply(Rule rule, const std::vector<uint32_t>& cps,
                            const std::vector<uint8_t>& fl, const std::vector<uint32_t>& lens) {
  std::vector<uint32_t> out;
  out.reserve(lens.size() * 2);
  size_t b = 0;
  for (uint32_t len : lens) {
    Piece s{cps.data(), fl.data(), b, b + len, b + len};
    if (rule == R_TRAIL_SPACE)
      while (s.trail > s.b && (fl[s.trail - 1] & uc::kWhitespace)) --s.trail;
    size_t gap = s.b, p = s.b;
    while (p < s.e) {
      size_t m = match(rule, s, p);
      if (m == 0) { ++p; continue; }
      if (p > gap) out.push_back(uint32_t(p - gap));
      out.push_back(uint32_t(m));
      p += m;
      gap = p;
    }
    if (s.e > gap) out.push_back(uint32_t(s.e - gap));
    b = s.e;
  }
  return out;
}

}  // namespace

PreInfo pre_info(const std::string& pre) {
  auto is = [&](std::initializer_list<const char*> names) {
    for (const char* n : names)
      if (pre == n) return true;
    return false;
  };
  // Names and flags as in llama.cpp's llama_vocab::impl::load.
  if (pre.empty() || pre == "default") return {PreType::DEFAULT, true, false, false};
  if (is({"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0",
          "lfm2"}))
    return {PreType::LLAMA3, true, true, true};
  if (is({"dbrx", "smaug-bpe"})) return {PreType::LLAMA3, true, false, false};
  if (is({"qwen2", "deepseek-r1-qwen", "hunyuan"})) return {PreType::QWEN2, false, false, false};
  if (is({"stablelm2", "megrez"})) return {PreType::QWEN2, true, false, false};
  if (is({"starcoder", "refact", "codeshell", "exaone", "minerva-7b"}))
    return {PreType::STARCODER, true, false, false};
  if (is({"smollm", "command-r"})) return {PreType::STARCODER, false, false, false};
  if (is({"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de",
          "a.x-4.0", "mellum", "jina-v1-en", "jina-v2-code", "roberta-bpe", "mpt", "olmo",
          "jais", "exaone4"}))
    return {PreType::GPT2, true, false, false};
  if (pre == "trillion") return {PreType::GPT2, false, false, false};
  if (pre == "falcon") return {PreType::FALCON, true, false, false};
  if (pre == "deepseek-llm") return {PreType::DEEPSEEK_LLM, false, false, false};
  if (pre == "deepseek-coder") return {PreType::DEEPSEEK_CODER, false, false, false};
  throw Error("unsupported BPE pre-tokenizer '" + pre + "'");
}

std::vector<uint32_t> pre_split(const std::vector<uint32_t>& cps, PreType type) {
  static const std::vector<Rule> kRules[] = {
      /* GPT2 */ {R_GPT2},
      /* LLAMA3 */ {R_LLAMA3},
      /* QWEN2 */ {R_QWEN2},
      /* STARCODER */ {R_NUM1, R_GPT2},
      /* FALCON */ {R_PUNCT_FALCON, R_GPT2, R_DIGIT3},
      /* DEEPSEEK_LLM */
      {R_NEWLINE, R_DS_LETTERS, R_DS_PUNCT, R_TRAIL_SPACE, R_CJK, R_NUMRUN},
      /* DEEPSEEK_CODER */ {R_NEWLINE, R_SPACE_LETTERS, R_SPACE_PUNCT, R_CJK, R_NUM1},
      /* DEFAULT */ {R_PUNCT_DEFAULT, R_GPT2, R_NUMRUN, R_DIGIT3},
  };
  if (cps.empty()) return {};
  std::vector<uint8_t> fl(cps.size());
  for (size_t i = 0; i < cps.size(); ++i) fl[i] = uc::flags(cps[i]);
  std::vector<uint32_t> lens{uint32_t(cps.size())};
  for (Rule r : kRules[int(type)]) lens = apply(r, cps, fl, lens);
  return lens;
}

}  // namespace h1bkv
