// `h1bkv compare` on stories260K: every cache type produces its row, with the numbers that must
// hold whatever the text (f16 against itself, exact byte formulas, exact caches agreeing).
#include <gtest/gtest.h>

#include <cstdio>

#include "eval/calibrate_loki.h"
#include "eval/compare.h"
#include "kv/registry.h"
#include "model/model.h"
#include "tokenize/tokenizer.h"
#include "util/file.h"
#include "util/paths.h"

using namespace h1bkv;

TEST(Compare, EveryCacheTypeProducesItsRow) {
  auto model = Model::load(shared_dir() + "/models/stories260K.gguf");
  auto tok = Tokenizer::from_gguf(model->gguf());
  const auto toks = tok->encode(read_file(shared_dir() + "/data/tinystories/sample.txt"), true, false);
  const int64_t ctx = 128;
  const CacheGeometry g = model->cache_geometry(ctx);

  CalibParams cp;  // a Loki basis from the first chunks of the same text (a test, not a result)
  cp.n_ctx = ctx;
  cp.max_chunks = 2;
  LokiBasis basis = calibrate_loki(*model, toks, cp).basis;
  basis.model_id = g.model_id;
  const std::string loki = testing::TempDir() + "compare_loki.json";
  save_loki_basis(loki, basis);

  const std::vector<std::pair<std::string, std::string>> specs = {
      {"f16", ""}, {"f32", ""}, {"q8_0", ""}, {"q4_0", ""}, {"plain:k=q8_0,v=q4_0", ""},
      {"kivi:bits=16", ""}, {"kivi:bits=2,group=16,residual=16", ""}, {"evict:keep=1", ""}, {"evict:keep=0.25", ""},
      {"loki:r=8,k=1", loki}, {"loki:r=2,k=0.25", loki}, {"h1b:bits=256,est=qjl", ""}};
  std::vector<std::unique_ptr<KvCache>> owned;
  std::vector<CompareCache> caches;
  for (const auto& [s, calib] : specs) {
    owned.push_back(make_cache(parse_cache_spec(s), g, calib));
    caches.push_back({s, owned.back().get()});
  }
  auto base = make_cache(parse_cache_spec("f16"), g);
  PplParams p;
  p.n_ctx = p.n_batch = ctx;
  p.max_chunks = 2;
  p.bos = tok->add_bos() ? tok->bos() : -1;
  const CompareResult r = compare_caches(*model, *base, caches, toks, p);
  std::remove(loki.c_str());

  ASSERT_EQ(r.rows.size(), specs.size());
  EXPECT_EQ(r.n_chunks, 2);
  const std::string md = compare_markdown(r, ctx), svg = compare_svg(r, "t");
  for (size_t i = 0; i < specs.size(); ++i) {
    const CompareRow& row = r.rows[i];
    EXPECT_EQ(row.label, specs[i].first);
    EXPECT_NE(md.find("| " + row.label + " |"), std::string::npos) << row.label;
    EXPECT_DOUBLE_EQ(row.bytes_per_token, cache_bytes_per_token(parse_cache_spec(row.spec), g)) << row.label;
    EXPECT_GT(row.ppl, 1.0) << row.label;
    EXPECT_GE(row.kl.kl_mean, 0.0) << row.label;
  }
  auto row = [&](const std::string& label) {
    for (const auto& x : r.rows)
      if (x.label == label) return x;
    return CompareRow{};
  };
  // the f16 row is the base itself
  EXPECT_EQ(row("f16").ppl, r.base_ppl);
  EXPECT_EQ(row("f16").kl.kl_mean, 0.0);
  EXPECT_EQ(row("f16").kl.top1_agree, 1.0);
  EXPECT_EQ(row("f16").bits_per_element, 16.0);
  // caches that hold every token at (near) full precision agree with it
  for (const char* exact : {"f32", "kivi:bits=16", "evict:keep=1", "loki:r=8,k=1"}) {
    EXPECT_LT(row(exact).kl.kl_mean, 1e-4) << exact;
    EXPECT_NEAR(row(exact).dppl_pct, 0.0, 0.1) << exact;
  }
  // lossy caches lose something, and their bytes are what they claim against f16
  for (const char* lossy : {"q4_0", "kivi:bits=2,group=16,residual=16", "evict:keep=0.25", "loki:r=2,k=0.25", "h1b:bits=256,est=qjl"})
    EXPECT_GT(row(lossy).kl.kl_mean, row("q8_0").kl.kl_mean) << lossy;
  EXPECT_EQ(row("f32").bits_per_element, 32.0);
  EXPECT_EQ(row("loki:r=2,k=0.25").bytes_per_token, row("f16").bytes_per_token);  // holds everything
  EXPECT_LT(row("evict:keep=0.25").bytes_per_token, 0.3 * row("f16").bytes_per_token);
  // one marker per row in the plot; rows with KLD 0 (f16) are drawn as a reference line
  auto count = [&](const std::string& what) {
    size_t n = 0;
    for (size_t at = 0; (at = svg.find(what, at)) != std::string::npos; ++at) ++n;
    return n;
  };
  EXPECT_GE(count("(reference)"), 1u);
  EXPECT_EQ(count("r=\"4\"") + count("(reference)"), specs.size());
}

TEST(Compare, CompressionColumnNeedsNoF16Row) {
  CompareResult r;
  r.n_ctx = 512;
  CompareRow row;
  row.label = row.spec = "q4_0";
  row.bits_per_element = 4.5;  // q4_0: 18 bytes per 32 elements
  row.bytes_per_token = 1000;
  r.rows.push_back(row);
  EXPECT_NE(compare_markdown(r, 512).find("| 3.56x |"), std::string::npos) << compare_markdown(r, 512);
}
