// The training loop on stories260K: the loss falls below a recorded bound in a few seconds, a
// killed run resumed from its checkpoint ends with the same parameters as an uninterrupted one,
// the adapter file reads back, and a checkpoint of another cache or a damaged file is refused.
// (TrainFinetuneSlow: 2 s each in Release, ~45 s under ASan, which skips "Slow".)
#include <gtest/gtest.h>

#include <omp.h>

#include <cstdio>
#include <fstream>

#include "kv/registry.h"
#include "tokenize/tokenizer.h"
#include "train/finetune.h"
#include "train/safetensors.h"
#include "util/error.h"
#include "util/file.h"
#include "util/paths.h"

using namespace h1bkv;
using namespace h1bkv::train;

namespace {

struct OneThread {  // the tiny model gains nothing from a team; on a loaded machine it waits
  int saved = omp_get_max_threads();
  OneThread() { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(saved); }
};

struct Stories {
  std::unique_ptr<Model> model = Model::load(shared_dir() + "/models/stories260K.gguf");
  std::vector<std::vector<int32_t>> seqs(int64_t seq) {
    auto tok = Tokenizer::from_gguf(model->gguf());
    const auto ids = tok->encode(read_file(shared_dir() + "/data/tinystories/sample.txt"), false, false);
    return make_sequences(ids, seq, tok->bos());
  }
};

std::string temp_path(const std::string& name) {
  return testing::TempDir() + "h1bkv_train_" + std::to_string(getpid()) + "_" + name;
}

DistillOptions t_and_affine() {
  DistillOptions o;
  o.train_value_affine = o.train_logit_mult = true;
  return o;
}

const char* kSpec = "h1b:bits=64,est=qjl,sink=2,window=4";

}  // namespace

// Mean KL over the first 8 of the 29 TinyStories sequences of 64 tokens, before and after 40
// steps training every tensor (T, multipliers, value affine, mu, R, A). Measured 2026-12-01:
// 1.925 -> 0.299 (1.296 with the identity straight-through estimator; the per-step losses vary
// 1.2-2.4 between sequences, so the bound is on this fixed set, with room for another summation
// order's trajectory).
TEST(TrainFinetuneSlow, StoriesRunReachesARecordedLossBound) {
  OneThread one;
  Stories s;
  DistillOptions o = t_and_affine();
  o.train_sketch = true;
  Distiller d(*s.model, parse_cache_spec(kSpec), o);
  FinetuneConfig c;
  c.steps = 40, c.warmup = 4, c.lr = 3e-2f, c.lr_min = 3e-3f;
  const auto seqs = s.seqs(64);
  const double before = mean_kl(d, seqs, 8);
  finetune(d, seqs, c);
  const double after = mean_kl(d, seqs, 8);
  EXPECT_GT(before, 1.8);
  EXPECT_LT(after, 0.6);
}

// The paper's stage 2 with T alone: the mean KL over all 29 sequences falls (measured 2026-12-01:
// 2.006 -> 1.846, T 1 -> 1.22; a scan of fixed multipliers with ppl --kl-base agrees that the
// optimum is below 1/T = 1). With the identity straight-through estimator T went the wrong way
// (0.978, KL 2.027): this test guards the gradient's direction.
TEST(TrainFinetuneSlow, TemperatureAloneLowersTheMeanKl) {
  OneThread one;
  Stories s;
  Distiller d(*s.model, parse_cache_spec(kSpec), DistillOptions{});
  FinetuneConfig c;
  c.steps = 40, c.warmup = 4, c.lr = 1e-2f, c.lr_min = 1e-3f;
  const auto seqs = s.seqs(64);
  const double before = mean_kl(d, seqs, seqs.size());
  finetune(d, seqs, c);
  const double after = mean_kl(d, seqs, seqs.size());
  EXPECT_GT(d.params().values()[0], 1.1f);
  EXPECT_LT(after, before - 0.1);
}

TEST(TrainFinetune, ResumeGivesTheSameParametersAsAnUninterruptedRun) {
  OneThread one;
  Stories s;
  const auto seqs = s.seqs(32);
  FinetuneConfig c;
  c.steps = 6, c.warmup = 2, c.checkpoint_every = 2;
  c.checkpoint = temp_path("full.ckpt");
  Distiller full(*s.model, parse_cache_spec(kSpec), t_and_affine());
  finetune(full, seqs, c);

  c.checkpoint = temp_path("killed.ckpt");
  c.stop_after = 3;  // killed after step 3: the last checkpoint is step 2's
  {
    Distiller killed(*s.model, parse_cache_spec(kSpec), t_and_affine());
    finetune(killed, seqs, c);
  }
  c.stop_after = -1;
  c.resume = c.checkpoint;
  c.checkpoint = temp_path("resumed.ckpt");
  Distiller resumed(*s.model, parse_cache_spec(kSpec), t_and_affine());
  const auto r = finetune(resumed, seqs, c);
  EXPECT_EQ(r.first_step, 2);
  EXPECT_EQ(r.losses.size(), 4u);
  EXPECT_EQ(resumed.params().values(), full.params().values());
  // the training moved them (the equality is not of two untouched buffers)
  Distiller fresh(*s.model, parse_cache_spec(kSpec), t_and_affine());
  EXPECT_NE(fresh.params().values(), full.params().values());
  for (const char* f : {"full.ckpt", "killed.ckpt", "resumed.ckpt"}) std::remove(temp_path(f).c_str());
}

TEST(TrainFinetune, CheckpointOfAnotherCacheIsRefused) {
  OneThread one;
  Stories s;
  FinetuneConfig c;
  c.steps = 1, c.warmup = 1, c.checkpoint = temp_path("other.ckpt");
  Distiller a(*s.model, parse_cache_spec(kSpec), t_and_affine());
  finetune(a, s.seqs(16), c);
  Distiller b(*s.model, parse_cache_spec("h1b:bits=128,est=qjl,sink=2,window=4"), t_and_affine());
  c.resume = c.checkpoint, c.checkpoint.clear();
  try {
    finetune(b, s.seqs(16), c);
    FAIL() << "resumed from another cache's checkpoint";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("checkpoint cache is 'h1b:bits=64"), std::string::npos) << e.what();
  }
  std::remove(temp_path("other.ckpt").c_str());
}

TEST(TrainFinetune, AdapterFileReadsBackWithTheAdapterNames) {
  Stories s;
  Distiller d(*s.model, parse_cache_spec(kSpec), t_and_affine());
  d.params().values()[0] = 0.75f;  // temperature
  const std::string path = temp_path("adapter.safetensors");
  write_safetensors(path, tensor_refs(d.params()), adapter_metadata(d));
  std::map<std::string, std::string> meta;
  const auto t = read_safetensors(path, &meta);
  EXPECT_EQ(meta.at("cache"), d.spec());
  EXPECT_EQ(meta.at("model_id"), s.model->cache_geometry(1).model_id);
  const auto& c = s.model->config();
  ASSERT_EQ(t.size(), 1u + 6u * c.n_layer);
  std::map<std::string, const NamedTensor*> by;
  for (const auto& x : t) by[x.name] = &x;
  EXPECT_EQ(by.at("temperature")->data, std::vector<float>{0.75f});
  EXPECT_EQ(by.at("blk.4.k_proj")->shape, (std::vector<int64_t>{c.n_kv_head, 64, c.head_dim}));
  EXPECT_EQ(by.at("blk.0.v_scale")->shape, (std::vector<int64_t>{c.n_head, c.head_dim}));
  EXPECT_EQ(by.at("blk.2.logit_mult")->shape, (std::vector<int64_t>{c.n_head}));
  // damaged: the header length points past the end
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    const uint64_t big = 1ull << 40;
    f.write(reinterpret_cast<const char*>(&big), 8);
  }
  try {
    read_safetensors(path);
    FAIL() << "read a damaged file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("header length"), std::string::npos) << e.what();
  }
  std::remove(path.c_str());
}
