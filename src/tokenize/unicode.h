// Unicode helpers for the tokenizers: UTF-8 decode/validate/encode, general-category classes
// (generated table, see gen/gen_unicode_tables.py), the White_Space set llama.cpp uses, and
// GPT-2's byte <-> unicode mapping.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace h1bkv::uc {

// General-category class of a codepoint (\p{L}, \p{N}, ...). UNDEF is unassigned (Cn).
enum UcCat : uint8_t { UNDEF = 0, LETTER = 1, NUMBER = 2, PUNCT = 3, SYMBOL = 4, MARK = 5,
                       SEPAR = 6, CONTROL = 7 };
constexpr uint8_t kWhitespace = 8;  // flag bit OR-ed onto the class by flags()

extern const uint32_t kCatRanges[];  // generated: (first << 3) | class
extern const size_t kCatRangesCount;
extern const uint32_t kDeepseekLetters[][2];  // generated: deepseek-llm's letter class
extern const size_t kDeepseekLettersCount;

// Class | kWhitespace for cp (cp > 0x10FFFF gives UNDEF).
uint8_t flags(uint32_t cp);
inline UcCat category(uint32_t cp) { return UcCat(flags(cp) & 7); }
inline bool is_space(uint32_t cp) { return flags(cp) & kWhitespace; }
inline bool is_letter(uint32_t cp) { return category(cp) == LETTER; }
inline bool is_number(uint32_t cp) { return category(cp) == NUMBER; }
inline bool is_punct(uint32_t cp) { return category(cp) == PUNCT; }

// Byte offset of the first invalid UTF-8 sequence (overlong, surrogate, > U+10FFFF, truncated),
// or npos when the whole string is valid.
size_t find_invalid_utf8(const std::string& s);
// Throws Error("invalid UTF-8 in input text at byte N") unless s is valid UTF-8.
void check_utf8(const std::string& s);
// Decodes valid UTF-8 (call check_utf8 first).
std::vector<uint32_t> decode_utf8(const std::string& s);
void append_utf8(std::string& out, uint32_t cp);
// Length of the UTF-8 sequence starting with lead byte c (1 for stray continuation bytes), as
// llama.cpp's unicode_len_utf8.
inline size_t utf8_len(char c) {
  static const uint8_t lut[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return lut[uint8_t(c) >> 4];
}

// GPT-2 byte-level BPE: byte -> UTF-8 of its printable stand-in codepoint, and back (-1 if the
// text is not one mapped codepoint).
const std::string& byte_to_unicode(uint8_t b);
int unicode_to_byte(uint32_t cp);

}  // namespace h1bkv::uc
