// libFuzzer target for the calibration file loaders (kv/calibration.h: h1b multipliers;
// kv/loki_basis.h: the Loki PCA basis; kv/calib/adapter.h: the safetensors adapter): any file
// must load or throw h1bkv::Error. A file that
// loads is then fitted to a small geometry the way --calib does, which must also either work or
// throw Error. The loaders read a path, so each input is written to a per-process temp file.
// Build and run: scripts/fuzz.sh
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "kv/cache.h"
#include "kv/calib/adapter.h"
#include "kv/calib/h1b_calibration.h"
#include "kv/calib/loki_basis.h"
#include "kv/registry.h"
#include "util/error.h"

namespace {

const std::string& temp_path() {
  static const std::string p = "/tmp/fuzz_calib_json_" + std::to_string(getpid()) + ".json";
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FILE* f = std::fopen(temp_path().c_str(), "wb");
  if (!f) __builtin_trap();
  if (size && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  std::fclose(f);
  const h1bkv::CacheGeometry g{2, 4, 2, 8, 32, ""};
  try {
    const h1bkv::CalibrationFile c = h1bkv::load_calibration(temp_path());
    try {
      const h1bkv::CacheSpec spec = h1bkv::parse_cache_spec(c.cache.empty() ? "h1b:bits=64" : c.cache);
      (void)h1bkv::calibration_for(c, temp_path(), spec, g);
    } catch (const h1bkv::Error&) {
    }
  } catch (const h1bkv::Error&) {
  }
  try {
    const h1bkv::LokiBasis b = h1bkv::load_loki_basis(temp_path());
    try {
      h1bkv::check_loki_basis_fits(b, temp_path(), g);
    } catch (const h1bkv::Error&) {
    }
  } catch (const h1bkv::Error&) {
  }
  try {
    const h1bkv::Adapter a = h1bkv::load_adapter(temp_path());
    try {
      const h1bkv::CacheSpec spec = h1bkv::parse_cache_spec(a.cache.empty() ? "h1b:bits=64" : a.cache);
      h1bkv::check_adapter(a, temp_path(), spec, g);
    } catch (const h1bkv::Error&) {
    }
  } catch (const h1bkv::Error&) {
  }
  std::remove(temp_path().c_str());  // libFuzzer's exit runs no cleanup
  return 0;
}
