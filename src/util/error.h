// Errors: recoverable problems (bad file, bad flag, bad text, context overflow) are thrown as
// h1bkv::Error with a one-line message; the CLI prints it and exits non-zero. Invariants use assert.
#pragma once
#include <stdexcept>
#include <string>

namespace h1bkv {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// Throws Error(msg) when cond is false. For checks on user input, not for invariants.
inline void check(bool cond, const std::string& msg) {
  if (!cond) throw Error(msg);
}

}  // namespace h1bkv
