// Lists of names in messages and help ("f16, f32, q8_0").
#pragma once
#include <string>
#include <vector>

namespace h1bkv {

inline std::string join_names(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

}  // namespace h1bkv
