#include "eval/cache_list.h"

#include <sstream>

#include "util/error.h"

namespace h1bkv {

std::vector<CacheListEntry> parse_cache_list(const std::string& text) {
  std::vector<CacheListEntry> entries;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ';')) {
    if (item.empty()) continue;
    const size_t at = item.find('@');
    CacheListEntry e{item, parse_cache_spec(item.substr(0, at)), at == std::string::npos ? "" : item.substr(at + 1)};
    check_calib_use(e.spec, e.calib);
    entries.push_back(e);
  }
  check(!entries.empty(), "--caches lists no cache");
  return entries;
}

}  // namespace h1bkv
