#pragma once
#include <string>

namespace h1bkv {

// The whole file as bytes; throws Error("<path>: cannot open") when it cannot be read.
std::string read_file(const std::string& path);
// Writes text as the whole file; throws Error("<path>: cannot open for writing" / "write failed").
void write_file(const std::string& path, const std::string& text);

}  // namespace h1bkv
