#include "eval/samples_file.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace h1bkv {

namespace {

std::string dump_line(const nlohmann::json& j) {
  // completions are token pieces: a multi-byte character may be cut, so bad UTF-8 is replaced
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Checks one parsed line; returns "" or what is wrong with it.
std::string line_problem(const nlohmann::json& j) {
  if (!j.is_object()) return "not a JSON object";
  for (const char* k : {"task", "cache", "spec", "settings"})
    if (!j.contains(k) || !j[k].is_string()) return std::string("no \"") + k + "\" string";
  if (!j.contains("item") || !j["item"].is_number_integer() || j["item"].get<int64_t>() < 0)
    return "no \"item\" index >= 0";
  if (!j.contains("correct") || !j["correct"].is_boolean()) return "no \"correct\" true/false";
  if (j.contains("correct_norm") && !j["correct_norm"].is_boolean()) return "\"correct_norm\" is not true/false";
  if (j.contains("group") && !j["group"].is_string()) return "\"group\" is not a string";
  if (!j.contains("sums") || !j["sums"].is_object()) return "no \"sums\" object";
  for (const auto& [k, v] : j["sums"].items())
    if (!v.is_number()) return "sums \"" + k + "\" is not a number";
  if (!j.contains("tokens") || !j["tokens"].is_number_integer()) return "no \"tokens\" count";
  if (!j.contains("seconds") || !j["seconds"].is_number()) return "no \"seconds\" number";
  return "";
}

}  // namespace

std::string settings_hash(const nlohmann::json& settings) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : dump_line(settings)) h = (h ^ c) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
  return buf;
}

SamplesFile::SamplesFile(std::string path) : path_(std::move(path)) {
  check(!path_.empty(), "--samples: empty file name");
  std::error_code ec;
  const bool exists = std::filesystem::exists(path_, ec);
  if (exists) {
    check(std::filesystem::is_regular_file(path_, ec), path_ + ": not a regular file");
    std::ifstream in(path_, std::ios::binary);
    check(in.good(), path_ + ": cannot read (" + std::strerror(errno) + ")");
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    size_t pos = 0;
    int64_t line_no = 0;
    bool add_newline = false;
    while (pos < text.size()) {
      ++line_no;
      const size_t nl = text.find('\n', pos);
      const bool complete = nl != std::string::npos;
      const std::string line = text.substr(pos, complete ? nl - pos : std::string::npos);
      const std::string where = path_ + ":" + std::to_string(line_no) + ": ";
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      std::string problem = j.is_discarded() ? "not JSON" : line_problem(j);
      // a run killed mid-write: drop the partial line, but only one that starts as our lines do
      // (keys sorted: "cache" first), so another file given by mistake is refused, not cut
      if (!complete && !problem.empty() && line.rfind("{\"cache\":\"", 0) == 0) {
        std::fprintf(stderr, "%sincomplete last line (%zu bytes, a run stopped while writing it) removed\n",
                     where.c_str(), line.size());
        std::filesystem::resize_file(path_, pos, ec);
        check(!ec, path_ + ": cannot cut the incomplete last line (" + ec.message() + ")");
        break;
      }
      if (line.find_first_not_of(" \t\r") == std::string::npos && complete) {
        pos = nl + 1;
        continue;
      }
      check(problem.empty(), where + problem);
      SampleKey k{j["task"].get<std::string>(), j["spec"].get<std::string>(), j["settings"].get<std::string>(),
                  j["item"].get<int64_t>()};
      check(lines_.count(k) == 0, where + "item " + std::to_string(k.item) + " of " + k.task + " / " + k.spec +
                                      " is already on an earlier line");
      lines_.emplace(std::move(k), std::move(j));
      add_newline = !complete;  // a whole line that only lacks its '\n'
      pos = complete ? nl + 1 : text.size();
    }
    if (add_newline) {
      std::ofstream(path_, std::ios::app) << '\n';
    }
  }
  out_ = std::fopen(path_.c_str(), "a");
  check(out_ != nullptr, path_ + ": cannot open for appending (" + std::strerror(errno) + ")");
}

SamplesFile::~SamplesFile() {
  if (out_) std::fclose(out_);
}

const nlohmann::json* SamplesFile::find(const SampleKey& k) const {
  auto it = lines_.find(k);
  return it == lines_.end() ? nullptr : &it->second;
}

int64_t SamplesFile::other_settings(const std::string& task, const std::string& spec,
                                    const std::string& settings) const {
  int64_t n = 0;
  for (const auto& [k, j] : lines_) n += k.task == task && k.spec == spec && k.settings != settings;
  return n;
}

void SamplesFile::append(const SampleKey& k, const std::string& cache_label, const ItemResult& r, bool has_norm,
                         int64_t tokens, double seconds, double cpu_seconds, int parallel) {
  nlohmann::json j = {{"task", k.task}, {"cache", cache_label}, {"spec", k.spec}, {"settings", k.settings},
                      {"item", k.item}, {"correct", r.correct}};
  if (has_norm) j["correct_norm"] = r.correct_norm;
  if (!r.group.empty()) j["group"] = r.group;
  j["sums"] = r.sums;
  j["sample"] = r.sample;
  j["tokens"] = tokens;
  j["seconds"] = seconds;
  j["cpu_seconds"] = cpu_seconds;
  if (parallel > 1) j["parallel"] = parallel;
  const std::string line = dump_line(j) + "\n";
  check(std::fwrite(line.data(), 1, line.size(), out_) == line.size() && std::fflush(out_) == 0,
        path_ + ": write failed (" + std::strerror(errno) + ")");
  lines_[k] = std::move(j);
}

ItemResult item_result_from_sample(const nlohmann::json& line) {
  ItemResult r;
  r.correct = line["correct"].get<bool>();
  if (line.contains("correct_norm")) r.correct_norm = line["correct_norm"].get<bool>();
  if (line.contains("group")) r.group = line["group"].get<std::string>();
  for (const auto& [k, v] : line["sums"].items()) r.sums[k] = v.get<double>();
  if (line.contains("sample")) r.sample = line["sample"];
  return r;
}

}  // namespace h1bkv
