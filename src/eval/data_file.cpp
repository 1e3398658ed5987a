#include "eval/data_file.h"

#include <bzlib.h>
#include <zlib.h>

#include <cstdio>
#include <memory>

#include "util/error.h"
#include "util/file.h"

namespace h1bkv {

namespace {

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

std::string read_gzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  check(f != nullptr, path + ": cannot open");
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, (size_t)n);
  int err = 0;
  const char* msg = gzerror(f, &err);
  const std::string what = n < 0 ? std::string(msg ? msg : "read error") : "";
  gzclose(f);
  check(n == 0, path + ": corrupt gzip data (" + what + ")");
  return out;
}

std::string read_bzip2(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  check(f != nullptr, path + ": cannot open");
  int err = BZ_OK;
  BZFILE* bz = BZ2_bzReadOpen(&err, f.get(), 0, 0, nullptr, 0);
  check(err == BZ_OK, path + ": not a bzip2 file");
  std::string out;
  char buf[1 << 16];
  while (err == BZ_OK) {
    const int n = BZ2_bzRead(&err, bz, buf, sizeof buf);
    if (err == BZ_OK || err == BZ_STREAM_END) out.append(buf, (size_t)n);
  }
  const int last = err;
  BZ2_bzReadClose(&err, bz);
  check(last == BZ_STREAM_END, path + ": corrupt bzip2 data");
  return out;
}

}  // namespace

std::string read_data_file(const std::string& path) {
  if (ends_with(path, ".gz")) return read_gzip(path);
  if (ends_with(path, ".bz2")) return read_bzip2(path);
  return read_file(path);
}

std::vector<std::string> read_data_lines(const std::string& path) {
  const std::string text = read_data_file(path);
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = end + 1;
  }
  return lines;
}

std::string JsonLine::str(const char* key) const {
  check(obj.contains(key) && obj[key].is_string(), where + ": needs a string field \"" + std::string(key) + "\"");
  return obj[key].get<std::string>();
}

std::vector<JsonLine> read_jsonl(const std::string& path) {
  std::vector<JsonLine> out;
  const std::vector<std::string> lines = read_data_lines(path);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    JsonLine l{path + ":" + std::to_string(i + 1), {}};
    try {
      l.obj = nlohmann::json::parse(lines[i]);
    } catch (const nlohmann::json::exception& e) {
      throw Error(l.where + ": not JSON (" + e.what() + ")");
    }
    check(l.obj.is_object(), l.where + ": not a JSON object");
    out.push_back(std::move(l));
  }
  check(!out.empty(), path + ": no items");
  return out;
}

}  // namespace h1bkv
