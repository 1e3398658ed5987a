// The `--caches` list of compare and eval: entries separated by ';', each TYPE[:opts][@CALIB.json].
#pragma once
#include <string>
#include <vector>

#include "kv/registry.h"

namespace h1bkv {

struct CacheListEntry {
  std::string label;  // the entry as the user wrote it
  CacheSpec spec;
  std::string calib;  // "" or the file after '@'
};

// Parses and validates every entry (spec and calibration use), so a typo fails before any work;
// throws Error on a bad entry or an empty list.
std::vector<CacheListEntry> parse_cache_list(const std::string& text);

}  // namespace h1bkv
