// Task data files as text: plain, gzip (.gz) or bzip2 (.bz2), chosen by the file name.
#pragma once
#include <string>
#include <vector>

namespace h1bkv {

// The whole decompressed file; throws Error "PATH: ..." when it is missing or corrupt.
std::string read_data_file(const std::string& path);
// The file split at '\n' (a trailing '\r' removed from each line; no empty last line).
std::vector<std::string> read_data_lines(const std::string& path);

}  // namespace h1bkv
