// Task data files as text: plain, gzip (.gz) or bzip2 (.bz2), chosen by the file name.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace h1bkv {

// The whole decompressed file; throws Error "PATH: ..." when it is missing or corrupt.
std::string read_data_file(const std::string& path);
// The file split at '\n' (a trailing '\r' removed from each line; no empty last line).
std::vector<std::string> read_data_lines(const std::string& path);

// A JSON Lines file: one object per non-empty line, each with "PATH:LINE" for error messages.
struct JsonLine {
  std::string where;  // "PATH:LINE"
  nlohmann::json obj;
  // The string field key; throws Error "PATH:LINE: needs a string field \"key\"".
  std::string str(const char* key) const;
};
// Throws Error "PATH:LINE: not a JSON object (...)" on a bad line and "PATH: no items" when empty.
std::vector<JsonLine> read_jsonl(const std::string& path);

}  // namespace h1bkv
