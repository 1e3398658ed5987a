// JSON files of the kv layer (calibration multipliers, Loki bases): read and write with errors that
// name the file.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace h1bkv {

// Reads through util's read_file (a regular file, checked before it is opened; bounded size);
// throws Error "PATH: cannot open: ...", "PATH: not a regular file (...)" or "PATH: not valid JSON (...)".
nlohmann::json read_json_file(const std::string& path);
// Writes j.dump(1) and a newline; throws Error "PATH: cannot write" / "PATH: write failed".
void write_json_file(const std::string& path, const nlohmann::ordered_json& j);

}  // namespace h1bkv
