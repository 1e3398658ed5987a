// Where shared data and downloaded models live: $H1BKV_SHARED (default ../shared beside the repo)
// and $H1BKV_MODELS (default ./models in the repo).
#pragma once
#include <string>

namespace h1bkv {
std::string shared_dir();
std::string models_dir();
}  // namespace h1bkv
