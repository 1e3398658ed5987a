// The message of the h1bkv::Error that f throws, or "" when it throws none (tests of one-line
// errors compare against it).
#pragma once
#include <functional>
#include <string>

#include "util/error.h"

namespace h1bkv::test {

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace h1bkv::test
