// The text of one completion as its tokens arrive: cut before the first stop string, and released
// to a stream only once final (no stop string could still begin in it, no UTF-8 character is
// half written), so streamed chunks concatenate to the non-streamed text.
#pragma once
#include <string>
#include <vector>

namespace h1bkv {

class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stop);
  // Appends one token's bytes; true when a stop string is now complete (the text ends before it
  // and nothing more may be added).
  bool add(const std::string& piece);
  // The final text not yet taken (at the end of a completion: finish() first).
  std::string take_ready();
  // The completion is over: every byte held back becomes final.
  void finish() { finished_ = true; }
  const std::string& text() const { return text_; }
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stop_;
  std::string text_;
  size_t taken_ = 0;
  bool stopped_ = false, finished_ = false;
};

}  // namespace h1bkv
