#include "tokenize/unicode.h"

#include <algorithm>
#include <array>

#include "util/error.h"

namespace h1bkv::uc {

namespace {

// Unicode White_Space (same set as llama.cpp's unicode_set_whitespace).
constexpr uint32_t kSpaces[] = {0x09,   0x0A,   0x0B,   0x0C,   0x0D,   0x20,   0x85,
                                0xA0,   0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004,
                                0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A, 0x2028,
                                0x2029, 0x202F, 0x205F, 0x3000};

// One byte of flags per codepoint, expanded once from the range table (1.1 MB).
const std::vector<uint8_t>& flag_table() {
  static const std::vector<uint8_t> table = [] {
    std::vector<uint8_t> t(0x110000, UNDEF);
    for (size_t i = 0; i < kCatRangesCount; ++i) {
      uint32_t first = kCatRanges[i] >> 3;
      uint32_t end = i + 1 < kCatRangesCount ? kCatRanges[i + 1] >> 3 : 0x110000;
      std::fill(t.begin() + first, t.begin() + end, uint8_t(kCatRanges[i] & 7));
    }
    for (uint32_t cp : kSpaces) t[cp] |= kWhitespace;
    return t;
  }();
  return table;
}

struct ByteMap {
  std::array<std::string, 256> to_utf8;
  std::array<int16_t, 324> from_cp;  // all stand-ins are < 256 + 68
};

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100.. in byte order.
const ByteMap& byte_map() {
  static const ByteMap m = [] {
    ByteMap r;
    r.from_cp.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      uint32_t cp = printable ? uint32_t(b) : uint32_t(next++);
      append_utf8(r.to_utf8[b], cp);
      r.from_cp[cp] = int16_t(b);
    }
    return r;
  }();
  return m;
}

}  // namespace

uint8_t flags(uint32_t cp) { return cp < 0x110000 ? flag_table()[cp] : uint8_t(UNDEF); }

size_t find_invalid_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    uint8_t c = p[i];
    if (c < 0x80) { ++i; continue; }
    size_t len;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return i;
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string::npos;
}

void check_utf8(const std::string& s) {
  size_t bad = find_invalid_utf8(s);
  if (bad != std::string::npos)
    throw Error("invalid UTF-8 in input text at byte " + std::to_string(bad));
}

std::vector<uint32_t> decode_utf8(const std::string& s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  for (size_t i = 0; i < s.size();) {
    uint8_t c = p[i];
    size_t len = utf8_len(char(c));
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < len && i + k < s.size(); ++k) cp = (cp << 6) | (p[i + k] & 0x3F);
    out.push_back(cp);
    i += len;
  }
  return out;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

const std::string& byte_to_unicode(uint8_t b) { return byte_map().to_utf8[b]; }

int unicode_to_byte(uint32_t cp) {
  return cp < byte_map().from_cp.size() ? byte_map().from_cp[cp] : -1;
}

}  // namespace h1bkv::uc
