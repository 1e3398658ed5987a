// `h1bkv finetune` end to end on stories260K: progress lines, the adapter and its checkpoint, a
// resumed run, and bad input as one-line errors.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <unistd.h>

#include "cli/run_cli.h"
#include "kv/calib/adapter.h"
#include "train/safetensors.h"
#include "util/paths.h"

namespace {

using h1bkv::test::run_cli;

std::string base_args(const std::string& out, const std::string& cache = "h1b:bits=64,est=qjl,sink=2,window=4",
                      const std::string& seq = "32") {
  return "finetune -m " + h1bkv::test::stories260k() + " --cache " + cache + " -f " +
         h1bkv::shared_dir() + "/data/tinystories/sample.txt --seq " + seq + " -t 1 -o " + out;
}

}  // namespace

TEST(FinetuneCli, TrainsWritesTheAdapterAndResumes) {
  const std::string out = testing::TempDir() + "ft_" + std::to_string(getpid()) + ".safetensors";
  const auto r = run_cli(base_args(out) + " --steps 4 --warmup 1 --train T,affine");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("step 4  loss "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("4 steps from step 0, 128 tokens"), std::string::npos) << r.out;
  const h1bkv::Adapter a = h1bkv::load_adapter(out);  // T, and mult + value affine per layer
  ASSERT_TRUE(a.temperature.present());
  ASSERT_EQ(a.layers.size(), 5u);
  EXPECT_EQ(a.layers[4].v_scale.shape, (std::vector<int64_t>{8, 8}));  // [n_head][head_dim]
  EXPECT_FALSE(a.layers[0].k_proj.present());
  // the finished run's checkpoint is at step 4 of 4: resuming runs no step
  const auto again = run_cli(base_args(out) + " --steps 4 --warmup 1 --train T,affine --resume " + out + ".ckpt");
  ASSERT_EQ(again.code, 0) << again.out;
  EXPECT_NE(again.out.find("0 steps from step 4"), std::string::npos) << again.out;
  // another schedule is refused
  const auto other = run_cli(base_args(out) + " --steps 8 --warmup 1 --train T,affine --resume " + out + ".ckpt");
  EXPECT_EQ(other.code, 1) << other.out;
  EXPECT_NE(other.out.find("checkpoint schedule is 'steps=4"), std::string::npos) << other.out;
  std::remove(out.c_str());
  std::remove((out + ".ckpt").c_str());
}

TEST(FinetuneCli, CalibOutLoadsIntoPpl) {
  const std::string out = testing::TempDir() + "ft_cal_" + std::to_string(getpid()) + ".safetensors";
  const std::string cal = out + ".json";
  const auto r = run_cli(base_args(out) + " --steps 3 --warmup 1 --train T,mult --lr 0.05 --calib-out " + cal);
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string ppl = "ppl -m " + h1bkv::test::stories260k() + " -f " + h1bkv::shared_dir() +
                          "/data/tinystories/sample.txt -c 64 --chunks 2 -t 1 --cache h1b:bits=64,est=qjl,sink=2,window=4";
  const auto p = run_cli(ppl + " --calib " + cal);
  EXPECT_EQ(p.code, 0) << p.out;
  const size_t at = p.out.find("PPL = ");
  ASSERT_NE(at, std::string::npos) << p.out;
  // the adapter (-o) holds the same T and multipliers. Not bit-identical: the file's multiplier is
  // mult / T rounded once, the adapter's mult and 1 / T apart, and a 3e-7 change of the multipliers
  // moves this 62-token PPL by 2e-4 (activation quantization rounds differently); T alone vs T + mult
  // differ by 4 %
  const auto q = run_cli(ppl + " --calib " + out);
  ASSERT_EQ(q.code, 0) << q.out;
  const size_t qat = q.out.find("PPL = ");
  ASSERT_NE(qat, std::string::npos) << q.out;
  EXPECT_NEAR(std::stod(q.out.substr(qat + 6)) / std::stod(p.out.substr(at + 6)), 1.0, 1e-3);
  // made for these key options only
  const auto other = run_cli("ppl -m " + h1bkv::test::stories260k() + " -f " + h1bkv::shared_dir() +
                             "/data/tinystories/sample.txt -c 64 --chunks 2 -t 1 --cache h1b:bits=128,est=qjl --calib " + cal);
  EXPECT_EQ(other.code, 1) << other.out;
  for (const auto& f : {out, out + ".ckpt", cal}) std::remove(f.c_str());
}

// Stage 2 on top of stage 0/1: calibrate's adapter (orth, center, ridge, an exact first layer)
// starts the student (SPEC@FILE), 2 steps train T and the sketch tensors, and ppl loads the
// adapter finetune writes (mu, R, A, T) into the cache.
TEST(FinetuneCli, StartsFromACalibratedAdapterAndWritesOneThePplLoads) {
  const std::string dir = testing::TempDir() + "ft_fit_" + std::to_string(getpid());
  const std::string fit = dir + ".fit.safetensors", out = dir + ".safetensors";
  const std::string spec = "h1b:bits=64,est=qjl,sink=2,window=4,orth=1,center=1,ridge=0.05,exact_layers=1";
  const std::string text = h1bkv::shared_dir() + "/data/tinystories/sample.txt";
  const auto c = run_cli("calibrate -m " + h1bkv::test::stories260k() + " -f " + text + " -c 64 --chunks 4 -t 1 --cache " +
                         spec + " -o " + fit);
  ASSERT_EQ(c.code, 0) << c.out;
  const auto r = run_cli(base_args(out, spec + "@" + fit) + " --steps 2 --warmup 1 --train T,sketch --lr-sketch 0.01");
  ASSERT_EQ(r.code, 0) << r.out;
  const h1bkv::Adapter a = h1bkv::load_adapter(out);
  ASSERT_EQ(a.layers.size(), 5u);
  EXPECT_FALSE(a.layers[0].k_proj.present());  // the exact-key layer
  EXPECT_TRUE(a.layers[1].k_proj.present() && a.layers[1].q_proj.present() && a.layers[1].k_mean.present());
  const std::string ppl = "ppl -m " + h1bkv::test::stories260k() + " -f " + text + " -c 64 --chunks 2 -t 1 --cache " + spec;
  const auto p0 = run_cli(ppl + " --calib " + fit), p1 = run_cli(ppl + " --calib " + out);
  ASSERT_EQ(p0.code, 0) << p0.out;
  ASSERT_EQ(p1.code, 0) << p1.out;
  const size_t at0 = p0.out.find("PPL = "), at1 = p1.out.find("PPL = ");
  ASSERT_NE(at0, std::string::npos) << p0.out;
  ASSERT_NE(at1, std::string::npos) << p1.out;
  EXPECT_NE(std::stod(p0.out.substr(at0 + 6)), std::stod(p1.out.substr(at1 + 6)));  // the trained tensors are used
  // a JSON calibration is not a start
  const auto bad = run_cli(base_args(out, spec) + " --steps 2 --calib " + text);
  EXPECT_EQ(bad.code, 1) << bad.out;
  for (const auto& f : {fit, out, out + ".ckpt"}) std::remove(f.c_str());
}

// --lora: the adapter holds LoRA tensors; ppl loads them (and applies them: tests/train/test_student_cache.cpp), compare refuses them
TEST(FinetuneCli, LoraAdapterIsAppliedByPplAndRefusedByCompare) {
  const std::string out = testing::TempDir() + "ft_lora_" + std::to_string(getpid()) + ".safetensors";
  const auto r = run_cli(base_args(out) + " --steps 3 --warmup 1 --train T --lora 2 --lr 0.05");
  ASSERT_EQ(r.code, 0) << r.out;
  const h1bkv::Adapter a = h1bkv::load_adapter(out);
  ASSERT_EQ(a.layers.size(), 5u);
  EXPECT_EQ(a.layers[3].q_lora_a.shape, (std::vector<int64_t>{2, 64}));  // [r][n_embd]
  EXPECT_EQ(a.layers[3].k_lora_b.shape, (std::vector<int64_t>{32, 2}));  // [n_kv*hd][r]
  const std::string text = h1bkv::shared_dir() + "/data/tinystories/sample.txt";
  const std::string ppl = "ppl -m " + h1bkv::test::stories260k() + " -f " + text +
                          " -c 64 --chunks 2 -t 1 --cache h1b:bits=64,est=qjl,sink=2,window=4 --calib " + out;
  const auto p = run_cli(ppl);
  ASSERT_EQ(p.code, 0) << p.out;
  const auto c = run_cli("compare -m " + h1bkv::test::stories260k() + " -f " + text +
                         " -c 64 --chunks 2 -t 1 --caches 'h1b:bits=64,est=qjl,sink=2,window=4@" + out + "'");
  EXPECT_EQ(c.code, 1) << c.out;
  EXPECT_NE(c.out.find("has LoRA tensors, which compare does not apply"), std::string::npos) << c.out;
  for (const auto& f : {out, out + ".ckpt"}) std::remove(f.c_str());
}

TEST(FinetuneCli, BadInputIsAOneLineError) {
  const std::string out = testing::TempDir() + "ft_bad_" + std::to_string(getpid()) + ".safetensors";
  const struct {
    std::string cache, seq, args, message;
  } rows[] = {
      {"h1b:bits=64", "32", " --steps 2 --train T,foo", "--train: unknown item 'foo' (valid: T, mult, affine, sketch)"},
      {"f16", "32", " --steps 2", "finetune trains an h1b cache (got --cache f16)"},
      {"h1b:est=angle", "32", " --steps 2", "the h1b estimator must be qjl or hamming (got angle)"},
      {"h1b:bits=64", "8000", " --steps 2", "fewer than --seq 8000"},
      {"h1b:bits=64,est=qjl,center=1", "32", " --steps 2", "starts from its adapter: pass --calib FILE"},
      {"h1b:bits=64,est=qjl,ridge=0.05", "32", " --steps 2", "starts from its adapter: pass --calib FILE"},
      {"h1b:bits=64,est=hamming", "32", " --steps 2 --train T,sketch", "est=hamming scores sign(R q)"},
      {"h1b:bits=64,est=qjl@/nonexistent.safetensors", "32", " --steps 2", "/nonexistent.safetensors: cannot open"},
      {"h1b:bits=64", "32", " --steps 2 --resume /nonexistent.ckpt", "/nonexistent.ckpt: cannot open"},
  };
  for (const auto& row : rows) {
    const auto r = run_cli(base_args(out, row.cache, row.seq) + row.args);
    EXPECT_EQ(r.code, 1) << row.args << "\n" << r.out;
    EXPECT_NE(r.out.find("error: "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(row.message), std::string::npos) << row.args << "\n" << r.out;
  }
  std::remove(out.c_str());
}
