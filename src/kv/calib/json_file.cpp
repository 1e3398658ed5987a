#include "kv/calib/json_file.h"

#include <fstream>

#include "util/error.h"
#include "util/file.h"

namespace h1bkv {

nlohmann::json read_json_file(const std::string& path) {
  const std::string text = read_file(path);  // a regular file (stat before open), bounded
  try {
    return nlohmann::json::parse(text);
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
