// The student (Distiller: the model with train::SketchAttention) computes what the h1b cache
// computes for the cache's options, on stories260K (5 layers, head dim 8): orthogonal blocks,
// centering, a ridge decoder and an exact first layer, started from an adapter fitted as
// `h1bkv calibrate` fits it; and the adapter finetuning writes (kv_adapter) loads into that cache
// and gives the student's own logits. (exact_type=q4 needs head dim % 32 == 0: the layer-level
// test in test_cache_agreement.cpp covers it at d = 64.)
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <cstdio>

#include "kv/calib/adapter.h"
#include "kv/calib/h1b_fit.h"
#include "kv/calib/h1b_record.h"
#include "kv/registry.h"
#include "model/lora.h"
#include "tokenize/tokenizer.h"
#include "train/finetune.h"
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

const char* kSpec = "h1b:bits=64,est=qjl,sink=2,window=4,orth=1,center=1,ridge=0.05,exact_layers=1";

struct Fixture {
  std::unique_ptr<Model> model = Model::load(shared_dir() + "/models/stories260K.gguf");
  std::vector<std::vector<int32_t>> seqs;
  Adapter adapter;
  Fixture() {
    auto tok = Tokenizer::from_gguf(model->gguf());
    const auto ids = tok->encode(read_file(shared_dir() + "/data/tinystories/sample.txt"), false, false);
    seqs = make_sequences(ids, 64, tok->bos());
    // the stage 0/1 fit of `calibrate` on the last 8 sequences (the tests evaluate the first)
    const CacheSpec spec = parse_cache_spec(kSpec);
    auto rec = make_recording_cache(spec, model->cache_geometry(64), 4);
    std::vector<float> logits(64 * (size_t)model->config().n_vocab);
    for (size_t i = seqs.size() - 8; i < seqs.size(); ++i) {
      rec->clear();
      model->forward(seqs[i].data(), 64, 0, *rec, logits.data(), true);
    }
    adapter = fit_h1b_adapter(spec, model->cache_geometry(64), recorded_keys(*rec));
  }
};

// Mean negative log-likelihood of the next tokens under logits [n][V] of seq.
double mean_nll(const std::vector<float>& logits, const std::vector<int32_t>& seq, int64_t V) {
  double s = 0;
  const int64_t n = (int64_t)seq.size();
  for (int64_t i = 0; i + 1 < n; ++i) {
    const float* l = &logits[i * V];
    double mx = l[0], z = 0;
    for (int64_t j = 1; j < V; ++j) mx = std::max(mx, (double)l[j]);
    for (int64_t j = 0; j < V; ++j) z += std::exp(l[j] - mx);
    s += mx + std::log(z) - l[seq[i + 1]];
  }
  return s / (n - 1);
}

// PPL over the first 4 sequences: the student's, and the model's with the h1b cache made by the
// registry from (spec, calib) as ppl --cache SPEC --calib FILE makes it.
std::pair<double, double> ppl_student_and_cache(Fixture& f, Distiller& d, const std::string& calib,
                                                const std::string& spec = kSpec) {
  const int64_t V = f.model->config().n_vocab, n = 64;
  std::vector<float> ls(n * V), lc(n * V);
  double ns = 0, nc = 0;
  std::unique_ptr<LoraHook> lora;  // as make_cache_for (cli) sets it for ppl
  if (!calib.empty()) {
    const Adapter a = load_adapter(calib);
    if (adapter_has_lora(a)) lora = std::make_unique<LoraHook>(f.model->config(), a, calib);
  }
  for (int i = 0; i < 4; ++i) {
    d.student_logits(f.seqs[i].data(), n, ls.data());
    auto cache = make_cache(parse_cache_spec(spec), f.model->cache_geometry(n), calib);
    f.model->set_forward_hook(lora.get());
    f.model->forward(f.seqs[i].data(), n, 0, *cache, lc.data(), true);
    f.model->set_forward_hook(nullptr);
    ns += mean_nll(ls, f.seqs[i], V) / 4, nc += mean_nll(lc, f.seqs[i], V) / 4;
  }
  return {std::exp(ns), std::exp(nc)};
}

std::string temp_path(const std::string& name) {
  return testing::TempDir() + "h1bkv_student_" + std::to_string(getpid()) + "_" + name;
}

}  // namespace

// The PPLs differ by the cache's 7-bit qjl query tables, fp16 norms and f16 exact tier, which at
// head dim 8 and b = 64 are not small. Measured 2026-12-01 over these 4 x 63 tokens: student /
// cache 7.7427 / 7.7097 (+0.43 %); the uncalibrated specs give the same size of gap (bits=64 plain
// 58.44 / 58.87, orth=1 55.90 / 55.67, exact_layers=1 20.12 / 20.55, bits=256 26.59 / 26.13), so the
// bound is 1 %, and a student without the adapter's tensors is further than that from this cache.
TEST(TrainStudentCache, StudentFromAFittedAdapterMatchesTheCache) {
  OneThread one;
  Fixture f;
  ASSERT_TRUE(f.adapter.layers[1].k_mean.present() && f.adapter.layers[1].q_proj.present());
  DistillOptions o;
  o.init = &f.adapter, o.init_path = "fitted";
  Distiller d(*f.model, parse_cache_spec(kSpec), o);
  // the adapter is in the cache as well as the student: ridge's decoder and mu, orth's R
  std::string path = temp_path("fit.safetensors");
  save_adapter(path, f.adapter);
  const auto [ps, pc] = ppl_student_and_cache(f, d, path);
  std::printf("stories260K PPL, student %.5f, cache %.5f\n", ps, pc);
  EXPECT_NEAR(ps / pc, 1.0, 1e-2);
  // and a student without the adapter (plain orth R, no mu) is far from that cache
  DistillOptions plain;
  const CacheSpec no_fit = parse_cache_spec("h1b:bits=64,est=qjl,sink=2,window=4,orth=1,exact_layers=1");
  Distiller p(*f.model, no_fit, plain);
  const auto [pp, unused] = ppl_student_and_cache(f, p, path);
  (void)unused;
  EXPECT_GT(std::fabs(pp / pc - 1.0), 1e-2) << pp << " " << pc;
  std::remove(path.c_str());
}

// exact=LIST: the student keeps exact keys in the listed layer only (here a later one, not the
// first), as the cache does. Uncalibrated specs differ by up to about 2 % (above); a student that
// sketches every layer is further from this cache than that.
TEST(TrainStudentCache, StudentFollowsTheExactLayerList) {
  OneThread one;
  Fixture f;
  const std::string spec = "h1b:bits=64,est=qjl,sink=2,window=4,orth=1,exact=1";
  Distiller d(*f.model, parse_cache_spec(spec), DistillOptions{});
  for (int il = 0; il < f.model->config().n_layer; ++il) EXPECT_EQ(d.exact_key_layer(il), il == 1) << il;
  const auto [ps, pc] = ppl_student_and_cache(f, d, "", spec);
  Distiller all(*f.model, parse_cache_spec("h1b:bits=64,est=qjl,sink=2,window=4,orth=1"), DistillOptions{});
  const auto [pa, unused] = ppl_student_and_cache(f, all, "", spec);
  (void)unused;
  std::printf("stories260K PPL with exact=1: student %.5f, cache %.5f; all-sketched student %.5f\n", ps, pc, pa);
  EXPECT_NEAR(ps / pc, 1.0, 2e-2);
  EXPECT_GT(std::fabs(pa / pc - 1.0), 3 * std::fabs(ps / pc - 1.0));
}

TEST(TrainStudentCache, CenterWithoutAnAdapterIsRefused) {
  OneThread one;
  Fixture f;
  try {
    Distiller d(*f.model, parse_cache_spec(kSpec), DistillOptions{});
    FAIL() << "center=1 without an adapter";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--calib"), std::string::npos) << e.what();
  }
}

// 2 steps of T + sketch (mu, R, A) + value affine + LoRA (rank 2) from the fitted adapter; the
// written adapter loads into the cache (--calib) and the LoRA hook, and gives the PPL the student
// gives, within the gap above (measured 2026-12-01 without LoRA: 8.1456 / 8.1222, +0.29 %).
TEST(TrainStudentCache, FinetunedSketchAdapterLoadsIntoTheCache) {
  OneThread one;
  Fixture f;
  DistillOptions o;
  o.train_sketch = true, o.train_value_affine = true, o.lora_rank = 2;
  o.init = &f.adapter, o.init_path = "fitted";
  Distiller d(*f.model, parse_cache_spec(kSpec), o);
  FinetuneConfig c;
  c.steps = 2, c.warmup = 1, c.lr = 3e-2f;
  const std::vector<float> before = d.params().values();
  finetune(d, f.seqs, c);
  const Adapter a = kv_adapter(d, /*f16=*/true, "2", "sample.txt", 128);
  EXPECT_NE(d.params().values(), before);
  ASSERT_TRUE(a.layers[1].k_proj.present() && a.layers[1].q_proj.present() && a.layers[1].k_mean.present());
  EXPECT_FALSE(a.layers[0].k_proj.present());  // exact-key layer: no sketch tensors
  EXPECT_TRUE(a.layers[0].v_scale.present());
  ASSERT_TRUE(a.layers[0].q_lora_b.present() && a.layers[4].k_lora_a.present());
  double bsum = 0;  // B left zero
  for (float x : a.layers[2].q_lora_b.data) bsum += std::fabs(x);
  EXPECT_GT(bsum, 0);
  const std::string path = temp_path("ft.safetensors");
  save_adapter(path, a, /*f16=*/true);
  const auto [ps, pc] = ppl_student_and_cache(f, d, path);
  std::printf("stories260K PPL after 2 steps, student %.5f, cache %.5f\n", ps, pc);
  EXPECT_NEAR(ps / pc, 1.0, 1e-2);
  std::remove(path.c_str());
}
