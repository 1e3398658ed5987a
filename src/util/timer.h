#pragma once
#include <chrono>

namespace h1bkv {

// Wall-clock seconds since construction.
class Timer {
 public:
  Timer() : t0_(std::chrono::steady_clock::now()) {}
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }
 private:
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace h1bkv
