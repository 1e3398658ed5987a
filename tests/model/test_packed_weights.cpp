// Weights packed at load (tensor/pack.h) on the test model (SmolLM2-135M: Q4_1 layers, Q8_0 tied
// embedding as the output head): the logits of a prompt and of decode steps equal those of the
// file's layout (H1BKV_REPACK=0) bit for bit, and the packed bytes are counted. Runs where the
// active path has packed kernels (avx512), skipped elsewhere.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "kv/registry.h"
#include "model/model.h"
#include "tensor/isa.h"
#include "util/paths.h"

using namespace h1bkv;

TEST(PackedWeights, SmolLMLogitsEqualTheFileLayouts) {
  const std::string path = models_dir() + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path << " (scripts/get_model.sh)";
  if (active_isa() != Isa::avx512) GTEST_SKIP() << "kernel path " << isa_name(active_isa()) << " has no packed kernels";
  setenv("H1BKV_REPACK", "0", 1);
  auto plain = Model::load(path);
  unsetenv("H1BKV_REPACK");
  auto packed = Model::load(path);
  EXPECT_EQ(plain->packed_bytes(), 0u);
  // every matrix (all but the norm vectors) is packed; Q8_0's 544-byte group-blocks pad to 576
  EXPECT_GT((double)packed->packed_file_bytes(), 0.99 * (double)packed->weight_bytes());
  EXPECT_GE(packed->packed_bytes(), packed->packed_file_bytes());
  EXPECT_LT((double)packed->packed_bytes(), 1.1 * (double)packed->packed_file_bytes());

  const int32_t nv = plain->config().n_vocab;
  std::vector<int32_t> prompt(21);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = (int32_t)((i * 7919 + 11) % nv);
  const CacheSpec spec = parse_cache_spec("f16");
  auto ca = make_cache(spec, plain->cache_geometry(64)), cb = make_cache(spec, packed->cache_geometry(64));
  std::vector<float> la(prompt.size() * nv), lb(prompt.size() * nv);
  plain->forward(prompt.data(), (int64_t)prompt.size(), 0, *ca, la.data(), true);
  packed->forward(prompt.data(), (int64_t)prompt.size(), 0, *cb, lb.data(), true);
  ASSERT_EQ(0, std::memcmp(la.data(), lb.data(), la.size() * 4)) << "prompt logits";
  for (int32_t s = 0, tok = 42; s < 4; ++s, tok += 1000) {
    const int32_t pos = (int32_t)prompt.size() + s;
    plain->forward(&tok, 1, pos, *ca, la.data(), false);
    packed->forward(&tok, 1, pos, *cb, lb.data(), false);
    ASSERT_EQ(0, std::memcmp(la.data(), lb.data(), (size_t)nv * 4)) << "decode step " << s;
  }
}
