#pragma once
#include <string>

namespace h1bkv {

// The whole file as bytes; throws Error("<path>: cannot open") when it cannot be read.
std::string read_file(const std::string& path);

}  // namespace h1bkv
