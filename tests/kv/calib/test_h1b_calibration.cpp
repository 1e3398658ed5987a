// H1B calibration: the KL fit recovers a known multiplier, grid interpolation vs direct KL, the
// recording cache attends like the f16 cache, calibration files round trip and mismatches fail.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <vector>

#include "error_of.h"
#include "kv/calib/h1b_calibration.h"
#include "kv/calib/h1b_record.h"
#include "kv/caches/h1b.h"
#include "kv/registry.h"
#include "util/error.h"

using namespace h1bkv;

namespace {

std::vector<float> randn(size_t n, uint32_t seed, float sd = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// KL(softmax(e) || softmax(l)), l_t = e_t (exact) or m s_t, in double
double direct_kl(const std::vector<float>& e, const std::vector<float>& s,
                 const std::vector<uint8_t>& ex, double m) {
  const size_t n = e.size();
  std::vector<double> l(n);
  double me = -1e300, ml = -1e300;
  for (size_t t = 0; t < n; ++t) {
    l[t] = ex[t] ? e[t] : m * s[t];
    me = std::max(me, (double)e[t]), ml = std::max(ml, l[t]);
  }
  double ze = 0, zl = 0;
  for (size_t t = 0; t < n; ++t) ze += std::exp(e[t] - me), zl += std::exp(l[t] - ml);
  double kl = 0;
  for (size_t t = 0; t < n; ++t) {
    const double lp = e[t] - me - std::log(ze), lq = l[t] - ml - std::log(zl);
    kl += std::exp(lp) * (lp - lq);
  }
  return kl;
}

const CacheGeometry kGeom{2, 4, 2, 64, 300, "model-a"};

std::string tmp_path(const char* name) { return ::testing::TempDir() + name; }

using test::error_of;

}  // namespace

// H1B logits an exact multiple of the true ones: s = e / m_true, so m = m_true gives KL 0.
TEST(Calibration, FitRecoversExactMultiplier) {
  for (double m_true : {0.3, 1.0, 2.7, 9.0}) {
    KlCurve c;
    for (int q = 0; q < 40; ++q) {
      const int n = 5 + q * 7;
      std::vector<float> e = randn(n, 100 + q, 2.f), s(n);
      std::vector<uint8_t> ex(n, 0);
      for (int t = 0; t < n; ++t) s[t] = (float)(e[t] / m_true);
      if (q % 2) ex[0] = ex[n - 1] = 1;  // sink and window tokens stay exact
      add_kl_sample(c, e.data(), s.data(), ex.data(), n);
    }
    const KlFit f = fit_kl_curve(c);
    EXPECT_NEAR(f.m, m_true, 2e-3 * m_true) << m_true;
    EXPECT_LT(f.kl_after, 1e-5);
    if (m_true != 1.0) {
      EXPECT_GT(f.kl_before, 1e-3);
    }
  }
}

// Noisy estimates: the fitted m minimises the direct KL and the interpolated KL matches it.
TEST(Calibration, NoisyFitMinimisesDirectKl) {
  KlCurve c;
  std::vector<std::vector<float>> es, ss;
  std::vector<std::vector<uint8_t>> exs;
  for (int q = 0; q < 30; ++q) {
    const int n = 64 + 5 * q;
    std::vector<float> e = randn(n, 7 + q, 3.f), noise = randn(n, 1000 + q), s(n);
    std::vector<uint8_t> ex(n, 0);
    for (int t = 0; t < n; ++t) s[t] = 0.5f * e[t] + noise[t];
    for (int t = 0; t < 4; ++t) ex[n - 1 - t] = 1;
    add_kl_sample(c, e.data(), s.data(), ex.data(), n);
    es.push_back(e), ss.push_back(s), exs.push_back(ex);
  }
  auto mean_kl = [&](double m) {
    double k = 0;
    for (size_t i = 0; i < es.size(); ++i) k += direct_kl(es[i], ss[i], exs[i], m);
    return k / es.size();
  };
  const KlFit f = fit_kl_curve(c);
  EXPECT_NEAR(f.kl_before, mean_kl(1.0), 1e-4);
  EXPECT_NEAR(f.kl_after, mean_kl(f.m), 1e-4);
  EXPECT_LT(f.kl_after, f.kl_before);
  for (double r : {0.97, 1.03}) EXPECT_LT(mean_kl(f.m), mean_kl(f.m * r) + 1e-7) << r;
  for (double m : {0.2, 0.77, 1.6, 5.0}) EXPECT_NEAR(kl_at(c, m), mean_kl(m), 1e-4 * (1 + mean_kl(m)));
}

// The recording cache attends exactly like the f16 cache and samples every stride-th position.
TEST(Calibration, RecordingCacheIsExactAndSamples) {
  for (const char* spec : {"h1b:est=angle", "h1b:est=qjl,sink=2,window=8"}) {
    auto rec = make_recording_cache(parse_cache_spec(spec), kGeom, 4);
    auto f16 = make_cache(parse_cache_spec("f16"), kGeom);
    const int n = 100, nkv = kGeom.n_kv_head, nh = kGeom.n_head, d = kGeom.head_dim;
    const auto k = randn((size_t)n * nkv * d, 1), v = randn((size_t)n * nkv * d, 2);
    const auto q = randn((size_t)n * nh * d, 3);
    std::vector<int32_t> pos(n);
    for (int i = 0; i < n; ++i) pos[i] = i;
    std::vector<float> o1((size_t)n * nh * d), o2(o1.size());
    for (int il = 0; il < kGeom.n_layer; ++il) {
      rec->layer(il).append(n, pos.data(), k.data(), v.data());
      f16->layer(il).append(n, pos.data(), k.data(), v.data());
      rec->layer(il).attend(n, pos.data(), q.data(), 0.125f, o1.data());
      f16->layer(il).attend(n, pos.data(), q.data(), 0.125f, o2.data());
      for (size_t i = 0; i < o1.size(); ++i) ASSERT_EQ(o1[i], o2[i]);
    }
    const auto curves = recorded_curves(*rec);
    ASSERT_EQ(curves.size(), 2u);
    for (const auto& layer : curves)
      for (const auto& c : layer) {
        EXPECT_EQ(c.n, 25);  // positions 3, 7, ..., 99
        const KlFit f = fit_kl_curve(c);
        EXPECT_GT(f.kl_before, 0);
        EXPECT_LE(f.kl_after, f.kl_before);
      }
    reset_recorded_curves(*rec);
    EXPECT_EQ(recorded_curves(*rec)[0][0].n, 0);
  }
  auto plain = make_cache(parse_cache_spec("f16"), kGeom);
  EXPECT_NE(error_of([&] { recorded_curves(*plain); }).find("not a calibration recording cache"), std::string::npos);
}

CalibrationFile sample_file(const std::string& spec) {
  CalibrationFile f;
  f.model_id = kGeom.model_id;
  f.model = "/some/dir/model.gguf";
  f.cache = calib_spec_string(parse_cache_spec(spec));
  f.text = {"a.txt", "b.txt"};
  f.tokens = 1024;
  f.cal = H1bCalibration::identity(kGeom);
  for (size_t i = 0; i < f.cal.mult.size(); ++i) f.cal.mult[i] = 0.5f + 0.25f * i;
  f.before = 0.3, f.after = 0.1;
  return f;
}

TEST(Calibration, FileRoundTripAndApply) {
  EXPECT_EQ(calib_spec_string(parse_cache_spec("h1b:est=qjl")),
            "h1b:bits=256,est=qjl,T=0.1,group=0,proj=layer,seed=42,sink=0,window=0,orth=0,center=0,itq=0,ridge=0,kl=0,"
            "qhead=0,exact_layers=0,exact=,exact_type=f16");
  const std::string path = tmp_path("calib_roundtrip.json");
  const CalibrationFile f = sample_file("h1b:est=qjl,window=16");
  save_calibration(path, f);
  const CalibrationFile g = load_calibration(path);
  EXPECT_EQ(g.model_id, f.model_id);
  EXPECT_EQ(g.model, "model.gguf");
  EXPECT_EQ(g.cache, f.cache);
  EXPECT_EQ(g.text, f.text);
  EXPECT_EQ(g.tokens, 1024);
  EXPECT_EQ(g.cal.n_layer, 2);
  EXPECT_EQ(g.cal.n_head, 4);
  EXPECT_EQ(g.cal.mult, f.cal.mult);
  EXPECT_DOUBLE_EQ(g.before, 0.3);
  EXPECT_DOUBLE_EQ(g.after, 0.1);
  // group (values only) may differ; the multipliers land in the cache
  auto cache = make_cache(parse_cache_spec("h1b:est=qjl,window=16,group=32"), kGeom);
  apply_calibration_file(*cache, path);
  EXPECT_EQ(get_h1b_calibration(*cache).mult, f.cal.mult);
  std::remove(path.c_str());
}

TEST(Calibration, HammingTemperatureRescales) {
  const std::string path = tmp_path("calib_T.json");
  save_calibration(path, sample_file("h1b:T=0.1"));
  auto cache = make_cache(parse_cache_spec("h1b:T=0.2"), kGeom);
  apply_calibration_file(*cache, path);
  const auto m = get_h1b_calibration(*cache).mult;
  for (size_t i = 0; i < m.size(); ++i) EXPECT_FLOAT_EQ(m[i], 2.0f * (0.5f + 0.25f * i));
  std::remove(path.c_str());
}

TEST(Calibration, MismatchesAreErrors) {
  const std::string path = tmp_path("calib_mismatch.json");
  save_calibration(path, sample_file("h1b:bits=256,seed=42"));
  auto err = [&](const std::string& spec, CacheGeometry g = kGeom) {
    return error_of([&] {
      auto c = make_cache(parse_cache_spec(spec), g);
      apply_calibration_file(*c, path);
    });
  };
  EXPECT_EQ(err("h1b"), "");
  CacheGeometry other = kGeom;
  other.model_id = "model-b";
  EXPECT_NE(err("h1b", other).find("another model"), std::string::npos) << err("h1b", other);
  EXPECT_NE(err("h1b:bits=128").find("bits=256"), std::string::npos) << err("h1b:bits=128");
  EXPECT_NE(err("h1b:seed=7").find("seed"), std::string::npos);
  EXPECT_NE(err("h1b:est=qjl").find("est"), std::string::npos);
  EXPECT_NE(err("h1b:proj=head").find("proj"), std::string::npos);
  EXPECT_NE(err("h1b:window=4").find("window"), std::string::npos);
  EXPECT_NE(err("f16").find("h1b caches only"), std::string::npos) << err("f16");
  CacheGeometry bigger = kGeom;
  bigger.n_layer = 3;
  EXPECT_NE(err("h1b", bigger).find("2 layers x 4 heads"), std::string::npos) << err("h1b", bigger);
  std::remove(path.c_str());
}

TEST(Calibration, BadFilesAreErrors) {
  EXPECT_NE(error_of([] { load_calibration("/nonexistent/calib.json"); }).find("cannot open"),
            std::string::npos);
  const std::string path = tmp_path("calib_bad.json");
  auto write = [&](const std::string& text) {
    std::ofstream(path) << text;
    return error_of([&] { load_calibration(path); });
  };
  EXPECT_NE(write("{ not json").find("not valid JSON"), std::string::npos);
  EXPECT_NE(write("{\"format\":\"other\"}").find("not an h1bkv calibration file"), std::string::npos);
  EXPECT_NE(write("{\"format\":\"h1bkv-calib\",\"version\":2}").find("version"), std::string::npos);
  EXPECT_NE(write("{\"format\":\"h1bkv-calib\",\"version\":1,\"model_id\":\"x\",\"cache\":\"h1b\","
                  "\"mult\":[[1,2],[3]]}").find("rows differ"), std::string::npos);
  EXPECT_NE(write("{\"format\":\"h1bkv-calib\",\"version\":1,\"model_id\":\"x\",\"cache\":\"h1b\","
                  "\"mult\":[[1,-2]]}").find("not a number > 0"), std::string::npos);
  EXPECT_NE(write("{\"format\":\"h1bkv-calib\",\"version\":1,\"cache\":\"h1b\",\"mult\":[[1]]}")
                .find("bad calibration file"), std::string::npos);
  std::remove(path.c_str());
}
