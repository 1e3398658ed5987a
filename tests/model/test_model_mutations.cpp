// A seeded mutation harness over stories260K: each damaged copy must either load and run a short
// prompt to finite logits, or fail with one h1bkv::Error line. Never another exception type, and
// (under ASan in scripts/test_sanitize.sh) never a bad memory access or a signal.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "io/gguf_layout.h"
#include "kv/registry.h"
#include "model/model.h"
#include "tokenize/tokenizer.h"
#include "util/error.h"
#include "util/paths.h"

using namespace h1bkv;
using namespace h1bkv::test;

namespace {

const Bytes& stories() {
  static const Bytes b = read_bytes(shared_dir() + "/models/stories260K.gguf");
  return b;
}

struct Outcome {
  bool ran = false;     // loaded and ran to finite logits
  std::string error;    // the Error message otherwise
};

// Loads the image from a temp file, tokenizes a prompt and runs it; returns what happened.
// Anything but h1bkv::Error escapes and fails the test.
Outcome load_and_run(const Bytes& img) {
  // per process: CTest runs each test in its own process, several at once
  const std::string path = ::testing::TempDir() + "/mutated-" + std::to_string(getpid()) + ".gguf";
  h1bkv::test::write_file(path, img);
  Outcome o;
  try {
    auto model = Model::load(path);
    auto tok = Tokenizer::from_gguf(model->gguf());
    const std::vector<int32_t> toks = tok->encode("Once upon a time", true, false);
    auto cache = make_cache(parse_cache_spec("f16"), model->cache_geometry(16));
    std::vector<float> logits(model->config().n_vocab);
    model->forward(toks.data(), (int64_t)toks.size(), 0, *cache, logits.data(), false);
    for (float x : logits)
      if (!std::isfinite(x)) throw std::logic_error("forward returned a non-finite logit");
    o.ran = true;
  } catch (const Error& e) {
    o.error = e.what();
  }
  std::remove(path.c_str());
  return o;
}

void expect_error(const Bytes& img, const std::string& needle, const std::string& what) {
  const Outcome o = load_and_run(img);
  EXPECT_FALSE(o.ran) << what;
  EXPECT_NE(o.error.find(needle), std::string::npos) << what << ": " << o.error;
  EXPECT_EQ(o.error.find('\n'), std::string::npos) << what << ": " << o.error;
}

void expect_error_or_run(const Bytes& img, const std::string& what) {
  const Outcome o = load_and_run(img);
  if (!o.ran) {
    EXPECT_FALSE(o.error.empty()) << what;
    EXPECT_EQ(o.error.find('\n'), std::string::npos) << what << ": " << o.error;
  }
}

}  // namespace

TEST(ModelMutation, UndamagedCopyRuns) {
  EXPECT_TRUE(load_and_run(stories()).ran);
}

TEST(ModelMutation, AllOffsetsZeroIsAnOverlap) {
  expect_error(damage_all_offsets_zero(stories()), "overlap in the file", "all offsets 0");
}

TEST(ModelMutation, SharedOffsetsAreAnOverlap) {
  const GgufLayout L = gguf_layout(stories());
  std::mt19937 rng(14);
  for (int k = 0; k < 20; ++k) {
    const size_t a = rng() % L.tensors.size(), b = rng() % L.tensors.size();
    if (a == b) continue;
    Bytes img = stories();
    set_at<uint64_t>(img, L.tensors[a].offset, L.tensors[b].data_offset);
    expect_error(img, "overlap in the file", L.tensors[a].name + " onto " + L.tensors[b].name);
  }
}

TEST(ModelMutation, BlockCountMustMatchTheBlocks) {
  const GgufLayout L = gguf_layout(stories());
  const uint32_t n = get_at<uint32_t>(stories(), L.key("llama.block_count").value);
  ASSERT_GT(n, 1u);
  for (uint32_t k = 1; k < n; ++k)
    expect_error(damage_block_count(stories(), k), "but llama.block_count is " + std::to_string(k),
                 "block_count " + std::to_string(k));
  for (uint32_t k : {n + 1, 2 * n, 1000u})
    expect_error(damage_block_count(stories(), k), "missing tensor 'blk." + std::to_string(n),
                 "block_count " + std::to_string(k));
}

TEST(ModelMutation, TokenizerSmallerThanEmbedding) {
  expect_error(damage_short_tokenizer(stories()), "but token_embd.weight has", "short tokenizer");
}

// A NaN in any weight a prompt uses is an error naming where it appeared; in an embedding row the
// prompt does not use, the run is correct.
TEST(ModelMutation, NanWeights) {
  const GgufLayout L = gguf_layout(stories());
  std::mt19937 rng(1414);
  for (const auto& t : L.tensors) {
    uint64_t n = 1;
    for (uint32_t d = 0; d < t.n_dims; ++d) n *= get_at<uint64_t>(stories(), t.dims + 8 * d);
    const uint64_t e = rng() % n;
    const Bytes img = damage_nan(stories(), t.name, e);
    if (t.name == "token_embd.weight") expect_error_or_run(img, t.name);
    else expect_error(img, "non-finite value", t.name + " element " + std::to_string(e));
  }
}

TEST(ModelMutation, HyperparametersOutOfRange) {
  const GgufLayout L = gguf_layout(stories());
  // stories260K has no rope.freq_base key (the default applies); its epsilon is an f32
  const KvField& eps = L.key("llama.attention.layer_norm_rms_epsilon");
  ASSERT_EQ(eps.type, kF32);
  for (float v : {NAN, INFINITY, -1.0f, 0.0f, 1e30f}) {
    Bytes img = stories();
    set_at<float>(img, eps.value, v);
    expect_error(img, "rms epsilon = ", "epsilon " + std::to_string(v));
    expect_error(img, "is out of range (0, 1)", "epsilon " + std::to_string(v));
  }
}

// Random damage to type ids, dims, offsets and header bytes: an Error line or a correct run.
TEST(ModelMutation, SeededRandomDamage) {
  const GgufLayout L = gguf_layout(stories());
  std::mt19937_64 rng(20261201);
  const uint64_t specials[] = {0, 1, 2, 31, 32, 255, 256, 65535, 1ull << 31, 1ull << 32,
                               1ull << 40, 1ull << 63, ~0ull};
  int errors = 0, runs = 0;
  for (int k = 0; k < 240; ++k) {
    Bytes img = stories();
    const TensorField& t = L.tensors[rng() % L.tensors.size()];
    const uint64_t v = rng() % 2 ? specials[rng() % std::size(specials)] : rng() % 4096;
    std::string what;
    switch (k % 4) {
      case 0:
        set_at<uint32_t>(img, t.type, (uint32_t)(v % 64));
        what = t.name + " type " + std::to_string(v % 64);
        break;
      case 1: {
        const uint32_t d = (uint32_t)(rng() % t.n_dims);
        set_at<uint64_t>(img, t.dims + 8 * d, v);
        what = t.name + " dim " + std::to_string(d) + " = " + std::to_string(v);
        break;
      }
      case 2:
        set_at<uint64_t>(img, t.offset, v * 32);
        what = t.name + " offset " + std::to_string(v * 32);
        break;
      default: {
        const size_t pos = rng() % L.infos_end;
        img[pos] ^= (uint8_t)(1u << (rng() % 8));
        what = "bit flip at byte " + std::to_string(pos);
      }
    }
    const Outcome o = load_and_run(img);
    if (o.ran) ++runs;
    else ++errors;
    if (!o.ran) {
      EXPECT_EQ(o.error.find('\n'), std::string::npos) << what << ": " << o.error;
    }
  }
  EXPECT_GT(errors, 100);  // most damage is caught, not run
  RecordProperty("runs", runs);
}
