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

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  check(f.good(), path + ": cannot open for writing");
  f << text;
  f.flush();
  check(f.good(), path + ": write failed");
}

}  // namespace h1bkv
