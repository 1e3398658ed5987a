// Small pieces shared by the SVG plots (compare, eval).
#pragma once
#include <string>

namespace h1bkv {

inline std::string xml_escape(const std::string& t) {
  std::string o;
  for (char ch : t) {
    if (ch == '<') o += "&lt;";
    else if (ch == '>') o += "&gt;";
    else if (ch == '&') o += "&amp;";
    else o += ch;
  }
  return o;
}

}  // namespace h1bkv
