// Calibration on a real model (stories260K, TinyStories sample as calibration text): the KL fit
// lowers the KL of the fit samples at every granularity, its multipliers land in an h1b cache,
// and the lm objective does not raise the LM loss.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "eval/calibrate.h"
#include "eval/perplexity.h"
#include "kv/calib/h1b_calibration.h"
#include "kv/registry.h"
#include "model/model.h"
#include "tokenize/tokenizer.h"
#include "util/error.h"
#include "util/paths.h"

using namespace h1bkv;

namespace {

struct Stories {
  std::unique_ptr<Model> model;
  std::vector<int32_t> toks;
  int32_t bos = -1;
};

Stories load_stories() {
  Stories s;
  s.model = Model::load(shared_dir() + "/models/stories260K.gguf");
  auto tok = Tokenizer::from_gguf(s.model->gguf());
  std::ifstream f(shared_dir() + "/data/tinystories/sample.txt", std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  s.toks = tok->encode(ss.str(), true, false);
  s.bos = tok->add_bos() ? tok->bos() : -1;
  return s;
}

}  // namespace

TEST(Calibrate, KlFitLowersKlStories260K) {
  Stories s = load_stories();
  for (const char* spec : {"h1b:bits=128", "h1b:est=angle,bits=64", "h1b:est=qjl,sink=1,window=8"}) {
    for (const char* gran : {"head", "layer", "global"}) {
      CalibParams p;
      p.n_ctx = 128;
      p.max_chunks = 3;
      p.bos = s.bos;
      p.granularity = gran;
      const CalibResult r = calibrate(*s.model, parse_cache_spec(spec), s.toks, p);
      EXPECT_EQ(r.n_chunks, 3);
      EXPECT_EQ(r.tokens, 384);
      EXPECT_EQ(r.samples, 3 * 32 * s.model->config().n_head);
      EXPECT_GT(r.before, 0) << spec;
      EXPECT_LT(r.after, r.before) << spec << " " << gran;
      const CacheGeometry g = s.model->cache_geometry(128);
      ASSERT_EQ(r.cal.mult.size(), (size_t)g.n_layer * g.n_head);
      if (std::string(gran) == "global") {
        for (float m : r.cal.mult) EXPECT_EQ(m, r.cal.mult[0]);
      }
      if (std::string(gran) == "layer") {
        for (int h = 0; h < g.n_head; ++h) EXPECT_EQ(r.cal.at(0, h), r.cal.at(0, 0));
      }
    }
  }
}

TEST(Calibrate, FileAppliesToTheModelsCache) {
  Stories s = load_stories();
  CalibParams p;
  p.n_ctx = 128;
  p.max_chunks = 2;
  p.bos = s.bos;
  const CacheSpec spec = parse_cache_spec("h1b:bits=128");
  const CalibResult r = calibrate(*s.model, spec, s.toks, p);
  CalibrationFile f;
  f.model_id = s.model->cache_geometry(128).model_id;
  f.cache = calib_spec_string(spec);
  f.cal = r.cal;
  const std::string path = ::testing::TempDir() + "calib_stories.json";
  save_calibration(path, f);
  auto cache = make_cache(spec, s.model->cache_geometry(128));
  apply_calibration_file(*cache, path);
  EXPECT_EQ(get_h1b_calibration(*cache).mult, r.cal.mult);
  std::remove(path.c_str());
}

TEST(Calibrate, LmObjectiveDoesNotRaiseLoss) {
  Stories s = load_stories();
  CalibParams p;
  p.n_ctx = 128;
  p.max_chunks = 2;
  p.bos = s.bos;
  p.objective = "lm";
  p.granularity = "global";
  p.lm_evals = 6;
  const CalibResult r = calibrate(*s.model, parse_cache_spec("h1b:bits=64"), s.toks, p);
  EXPECT_LE(r.after, r.before);
  p.granularity = "head";
  EXPECT_THROW(calibrate(*s.model, parse_cache_spec("h1b"), s.toks, p), Error);
  p.objective = "kl";
  EXPECT_THROW(calibrate(*s.model, parse_cache_spec("f16"), s.toks, p), Error);
}
