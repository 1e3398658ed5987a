#include "util/file.h"

#include <fstream>
#include <sstream>

#include "util/error.h"

namespace h1bkv {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  check(f.good(), path + ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  check(!f.bad(), path + ": read error");
  return ss.str();
}

}  // namespace h1bkv
