#include "util/paths.h"

#include <cstdlib>

namespace h1bkv {

static std::string env_or(const char* name, const char* dflt) {
  const char* v = std::getenv(name);
  return (v && *v) ? std::string(v) : std::string(dflt);
}

std::string shared_dir() { return env_or("H1BKV_SHARED", H1BKV_SHARED_DEFAULT); }
std::string models_dir() { return env_or("H1BKV_MODELS", H1BKV_MODELS_DEFAULT); }

}  // namespace h1bkv
