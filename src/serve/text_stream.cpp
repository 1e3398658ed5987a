#include "serve/text_stream.h"

#include <algorithm>

#include "util/error.h"

namespace h1bkv {

TextStream::TextStream(std::vector<std::string> stop) {
  for (std::string& s : stop)
    if (!s.empty()) stop_.push_back(std::move(s));
}

bool TextStream::add(const std::string& piece) {
  check(!stopped_ && !finished_, "TextStream: add after the end");
  const size_t before = text_.size();
  text_ += piece;
  size_t first = std::string::npos;
  for (const std::string& s : stop_) {  // only matches that end in the new bytes
    const size_t from = before >= s.size() ? before - s.size() + 1 : 0;
    first = std::min(first, text_.find(s, from));
  }
  if (first == std::string::npos) return false;
  text_.resize(std::max(first, taken_));  // taken_ <= first: held-back bytes cover any match
  stopped_ = true;
  return true;
}

namespace {

// Bytes at the end of t that start an unfinished UTF-8 character (0 when it ends complete).
size_t unfinished_utf8(const std::string& t) {
  const size_t n = t.size();
  for (size_t back = 1; back <= 4 && back <= n; ++back) {
    const unsigned char c = (unsigned char)t[n - back];
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
    const size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    return len > back ? back : 0;
  }
  return 0;
}

}  // namespace

std::string TextStream::take_ready() {
  size_t end = text_.size();
  if (!stopped_ && !finished_) {
    size_t hold = 0;  // longest tail of the text that is a proper prefix of a stop string
    for (const std::string& s : stop_)
      for (size_t k = std::min(s.size() - 1, text_.size()); k > hold; --k)
        if (text_.compare(text_.size() - k, k, s, 0, k) == 0) {
          hold = k;
          break;
        }
    end -= hold;
    end -= unfinished_utf8(text_.substr(0, end));
  }
  if (end <= taken_) return {};
  std::string out = text_.substr(taken_, end - taken_);
  taken_ = end;
  return out;
}

}  // namespace h1bkv
