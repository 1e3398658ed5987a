#include "kv/calib/json_file.h"

#include <fstream>
#include <sstream>

#include "util/error.h"

namespace h1bkv {

nlohmann::json read_json_file(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  check(in.good(), path + ": cannot open " + what);
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
}

void write_json_file(const std::string& path, const nlohmann::ordered_json& j) {
  std::ofstream out(path);
  check(out.good(), path + ": cannot write");
  out << j.dump(1) << "\n";
  check(out.good(), path + ": write failed");
}

}  // namespace h1bkv
