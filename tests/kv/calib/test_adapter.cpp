// The h1b adapter file (kv/calib/adapter.h): round trip in F32 and F16, every malformed header
// refused with a one-line error naming the file, model/cache/shape mismatches refused, JSON and
// adapter told apart by content, and the applied parameters change the cache as documented.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "error_of.h"
#include "kv/calib/adapter.h"
#include "kv/calib/h1b_calibration.h"
#include "kv/caches/h1b.h"
#include "kv/random.h"
#include "kv/registry.h"

using namespace h1bkv;
using test::error_of;

namespace {

const CacheGeometry kGeom{2, 6, 2, 64, 300, "model-a"};
const char* const kSpec = "h1b:bits=128,est=qjl,center=1,ridge=0.01";

std::string tmp_path(const std::string& name) { return ::testing::TempDir() + name; }

AdapterTensor tensor(std::vector<int64_t> shape, uint32_t seed) {
  size_t n = 1;
  for (int64_t s : shape) n *= (size_t)s;
  return AdapterTensor{shape, randn(n, seed)};
}

// Every tensor kind on layer 1, k_mean/q_proj on both (center=1 needs a mean on every layer).
Adapter sample_adapter() {
  Adapter a;
  a.model_id = "model-a";
  a.cache = calib_spec_string(parse_cache_spec(kSpec));
  a.stage = "1a";
  a.text = "sotu.txt";
  a.tokens = 4096;
  a.layers.resize(2);
  for (int L = 0; L < 2; ++L) {
    a.layers[L].k_mean = tensor({2, 64}, 10 + L);
    a.layers[L].q_proj = tensor({2, 128, 64}, 20 + L);
  }
  a.layers[1].k_proj = tensor({2, 128, 64}, 30);
  a.layers[1].logit_mult = AdapterTensor{{6}, {0.5f, 1, 1.5f, 2, 2.5f, 3}};
  a.layers[1].v_scale = tensor({6, 64}, 31);
  a.layers[1].v_bias = tensor({6, 64}, 32);
  a.temperature = AdapterTensor{{1}, {0.7f}};
  return a;
}

void expect_same(const AdapterTensor& a, const AdapterTensor& b, float tol) {
  ASSERT_EQ(a.shape, b.shape);
  ASSERT_EQ(a.data.size(), b.data.size());
  for (size_t i = 0; i < a.data.size(); ++i) ASSERT_NEAR(a.data[i], b.data[i], tol * (1 + std::fabs(a.data[i])));
}

std::string write_bytes(const std::string& name, const std::string& bytes) {
  const std::string p = tmp_path(name);
  std::ofstream(p, std::ios::binary) << bytes;
  return p;
}

// A file from a JSON header and data bytes.
std::string safetensors(const std::string& header, const std::string& data) {
  std::string s;
  for (int i = 0; i < 8; ++i) s.push_back((char)((uint64_t)header.size() >> (8 * i) & 0xff));
  return s + header + data;
}

const std::string kMeta = R"("__metadata__":{"format":"h1bkv-adapter","version":"1","model_id":"model-a","cache":"h1b:bits=128"})";

}  // namespace

TEST(Adapter, RoundTripF32AndF16) {
  const Adapter a = sample_adapter();
  for (bool f16 : {false, true}) {
    const std::string p = tmp_path(f16 ? "adapter16.safetensors" : "adapter32.safetensors");
    save_adapter(p, a, f16);
    EXPECT_TRUE(is_adapter_file(p));
    const Adapter b = load_adapter(p);
    EXPECT_EQ(b.model_id, a.model_id);
    EXPECT_EQ(b.cache, a.cache);
    EXPECT_EQ(b.stage, "1a");
    EXPECT_EQ(b.text, "sotu.txt");
    EXPECT_EQ(b.tokens, 4096);
    ASSERT_EQ(b.layers.size(), 2u);
    const float tol = f16 ? 1e-3f : 0.0f;  // fp16: 11-bit mantissa
    for (int L = 0; L < 2; ++L) {
      expect_same(a.layers[L].k_mean, b.layers[L].k_mean, tol);
      expect_same(a.layers[L].q_proj, b.layers[L].q_proj, tol);
    }
    expect_same(a.layers[1].k_proj, b.layers[1].k_proj, tol);
    expect_same(a.layers[1].logit_mult, b.layers[1].logit_mult, tol);
    expect_same(a.layers[1].v_scale, b.layers[1].v_scale, tol);
    expect_same(a.layers[1].v_bias, b.layers[1].v_bias, tol);
    EXPECT_FALSE(b.layers[0].k_proj.present());
    expect_same(a.temperature, b.temperature, tol);
    EXPECT_EQ(error_of([&] { check_adapter(b, p, parse_cache_spec(kSpec), kGeom); }), "");
    std::remove(p.c_str());
  }
}

TEST(Adapter, MalformedFilesAreOneLineErrors) {
  const std::string t = R"("t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
  const std::string one(reinterpret_cast<const char*>(&(const float&)1.0f), 4);
  float nan = std::nanf("");
  const std::string bad_value(reinterpret_cast<const char*>(&nan), 4);
  auto with = [&](const std::string& tensors) { return "{" + tensors + (tensors.empty() ? "" : ",") + kMeta + "}"; };
  struct Case {
    const char* name;
    std::string bytes, needle;
  };
  const std::vector<Case> cases = {
      {"empty", "", "shorter than the 8-byte header length"},
      {"short", "abc", "shorter than the 8-byte header length"},
      {"length past end", std::string("\xff\x00\x00\x00\x00\x00\x00\x00{}", 10), "exceeds the file"},
      {"huge length", std::string("\xff\xff\xff\xff\xff\xff\xff\xff{}", 10), "exceeds the file"},
      {"not json", safetensors("{nope", ""), "not valid JSON"},
      {"not object", safetensors("[1,2]", ""), "not a JSON object"},
      {"no metadata", safetensors("{}", ""), "no __metadata__"},
      {"metadata not string", safetensors(R"({"__metadata__":{"format":1}})", ""), "not a string"},
      {"wrong format", safetensors(R"({"__metadata__":{"format":"gguf"}})", ""), "not an h1bkv adapter"},
      {"wrong version", safetensors(R"({"__metadata__":{"format":"h1bkv-adapter","version":"2"}})", ""), "version '2'"},
      {"no model id", safetensors(R"({"__metadata__":{"format":"h1bkv-adapter","version":"1","cache":"h1b"}})", ""),
       "needs model_id and cache"},
      {"bad tokens", safetensors(R"({"__metadata__":{"format":"h1bkv-adapter","version":"1","model_id":"m","cache":"h1b","tokens":"-3"}})", ""),
       "is not a count"},
      {"unknown name", safetensors(with(R"("blk.0.wq":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})"), one), "unknown tensor name"},
      {"layer leading zero", safetensors(with(R"("blk.01.k_mean":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})"), one), "unknown tensor name"},
      {"layer too large", safetensors(with(R"("blk.99999.k_mean":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})"), one), "unknown tensor name"},
      {"missing fields", safetensors(with(R"("temperature":{"dtype":"F32"})"), one), "needs dtype, shape and data_offsets"},
      {"bad dtype", safetensors(with(R"("temperature":{"dtype":"I8","shape":[1],"data_offsets":[0,1]})"), one), "dtype I8"},
      {"empty shape", safetensors(with(R"("temperature":{"dtype":"F32","shape":[],"data_offsets":[0,0]})"), one), "1 to 4 dimensions"},
      {"negative dim", safetensors(with(R"("temperature":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]})"), one), "not in [1, 2^24]"},
      {"float dim", safetensors(with(R"("temperature":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]})"), one), "not in [1, 2^24]"},
      {"shape past data", safetensors(with(R"("temperature":{"dtype":"F32","shape":[65536,65536],"data_offsets":[0,4]})"), one),
       "more values than the file"},
      {"negative offset", safetensors(with(R"("temperature":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]})"), one), "non-negative integer"},
      {"offset past data", safetensors(with(R"("temperature":{"dtype":"F32","shape":[1],"data_offsets":[4,8]})"), one), "outside the 4 data bytes"},
      {"reversed offsets", safetensors(with(R"("temperature":{"dtype":"F32","shape":[1],"data_offsets":[4,0]})"), one + one), "outside"},
      {"size mismatch", safetensors(with(R"("temperature":{"dtype":"F32","shape":[1],"data_offsets":[0,8]})"), one + one), "shape needs 4"},
      {"overlap", safetensors(with(R"("temperature":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"blk.0.logit_mult":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})"), one),
       "overlap"},
      {"nan value", safetensors(with(R"("temperature":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})"), bad_value), "not finite"},
  };
  (void)t;
  for (const Case& c : cases) {
    const std::string p = write_bytes("bad_adapter.safetensors", c.bytes);
    const std::string e = error_of([&] { load_adapter(p); });
    EXPECT_NE(e.find(p + ": "), std::string::npos) << c.name << ": " << e;
    EXPECT_NE(e.find(c.needle), std::string::npos) << c.name << ": " << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << c.name;
    std::remove(p.c_str());
  }
}

TEST(Adapter, MismatchesAreErrorsNamingTheFile) {
  const std::string p = tmp_path("mismatch.safetensors");
  const CacheSpec spec = parse_cache_spec(kSpec);
  auto err = [&](const Adapter& a, const CacheSpec& s, const CacheGeometry& g) {
    return error_of([&] { check_adapter(a, p, s, g); });
  };
  const Adapter a = sample_adapter();
  CacheGeometry other = kGeom;
  other.model_id = "model-b";
  EXPECT_NE(err(a, spec, other).find("made for another model"), std::string::npos);
  EXPECT_NE(err(a, parse_cache_spec("h1b:bits=256,est=qjl,center=1,ridge=0.01"), kGeom).find("bits=128, the cache has bits=256"),
            std::string::npos);
  EXPECT_NE(err(a, parse_cache_spec("h1b:bits=128,est=qjl,ridge=0.01"), kGeom).find("center=1, the cache has center=0"),
            std::string::npos);
  EXPECT_NE(err(a, parse_cache_spec("f16"), kGeom).find("h1b caches only"), std::string::npos);
  CacheGeometry one_layer = kGeom;
  one_layer.n_layer = 1;
  EXPECT_NE(err(a, spec, one_layer).find("has layer 1; the model has 1 layers"), std::string::npos);
  Adapter s = a;
  s.layers[1].k_proj = tensor({2, 64, 64}, 3);
  EXPECT_NE(err(s, spec, kGeom).find("blk.1.k_proj has shape [2,64,64], the cache needs [2,128,64]"), std::string::npos);
  s = a;
  s.layers[0].k_mean = AdapterTensor{};
  EXPECT_NE(err(s, spec, kGeom).find("center=1 but no blk.0.k_mean"), std::string::npos);
  s = a;
  s.layers[1].logit_mult.data[2] = -1;
  EXPECT_NE(err(s, spec, kGeom).find("value <= 0"), std::string::npos);
  s = a;
  s.temperature.data[0] = 0;
  EXPECT_NE(err(s, spec, kGeom).find("temperature"), std::string::npos);
  s = a;
  s.cache = "h1b:bits=128,est=angle,center=1";
  EXPECT_NE(err(s, parse_cache_spec("h1b:bits=128,est=angle,center=1"), kGeom).find("q_proj (a qjl decoder) needs est=qjl"),
            std::string::npos);
  s = a;
  s.cache = "nope:x=1";
  EXPECT_NE(err(s, spec, kGeom).find("bad cache spec"), std::string::npos);
  for (const std::string& e : {err(a, spec, other), err(s, spec, kGeom)}) {
    EXPECT_EQ(e.rfind(p + ": ", 0), 0u) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
  // through make_cache: an adapter for another model, and center=1 without one
  save_adapter(p, a);
  EXPECT_NE(error_of([&] { make_cache(spec, other, p); }).find("made for another model"), std::string::npos);
  EXPECT_NE(error_of([&] { make_cache(spec, kGeom); }).find("needs an adapter"), std::string::npos);
  std::remove(p.c_str());
}

TEST(Adapter, JsonCalibrationAndAdapterToldApartByContent) {
  const CacheSpec spec = parse_cache_spec("h1b:bits=128,est=qjl");
  CalibrationFile f;
  f.model_id = "model-a";
  f.cache = calib_spec_string(spec);
  f.cal = H1bCalibration::identity(kGeom);
  for (float& m : f.cal.mult) m = 2.0f;
  const std::string json = tmp_path("calib.safetensors");  // the name says nothing
  save_calibration(json, f);
  EXPECT_FALSE(is_adapter_file(json));
  Adapter a;
  a.model_id = "model-a";
  a.cache = f.cache;
  a.layers.resize(2);
  for (auto& l : a.layers) l.logit_mult = AdapterTensor{{6}, std::vector<float>(6, 2.0f)};
  const std::string st = tmp_path("adapter.json");
  save_adapter(st, a);
  EXPECT_TRUE(is_adapter_file(st));
  // both set the same multipliers
  auto c1 = make_cache(spec, kGeom, json), c2 = make_cache(spec, kGeom, st);
  EXPECT_EQ(get_h1b_calibration(*c1).mult, get_h1b_calibration(*c2).mult);
  EXPECT_EQ(get_h1b_calibration(*c2).mult, std::vector<float>(12, 2.0f));
  std::remove(json.c_str());
  std::remove(st.c_str());
}

// The value affine: every output of the adapted cache is v_scale * out + v_bias of the plain one.
TEST(Adapter, ValueAffineMapsHeadOutputs) {
  const CacheSpec spec = parse_cache_spec("h1b:bits=128,est=qjl,sink=2,window=8");
  Adapter a;
  a.model_id = "model-a";
  a.cache = calib_spec_string(spec);
  a.layers.resize(1);
  a.layers[0].v_scale = AdapterTensor{{6, 64}, randn(6 * 64, 5)};
  a.layers[0].v_bias = AdapterTensor{{6, 64}, randn(6 * 64, 6)};
  const std::string p = tmp_path("affine.safetensors");
  save_adapter(p, a);
  auto plain = make_cache(spec, kGeom), adapted = make_cache(spec, kGeom, p);
  const int n = 40, kv = 2 * 64, qd = 6 * 64;
  const auto k = randn(n * kv, 1), v = randn(n * kv, 2), q = randn(n * qd, 3);
  std::vector<int32_t> pos(n);
  for (int i = 0; i < n; ++i) pos[i] = i;
  std::vector<float> o1(n * qd), o2(n * qd);
  for (auto* c : {plain.get(), adapted.get()}) c->layer(0).append(n, pos.data(), k.data(), v.data());
  plain->layer(0).attend(n, pos.data(), q.data(), 0.125f, o1.data());
  adapted->layer(0).attend(n, pos.data(), q.data(), 0.125f, o2.data());
  for (int i = 0; i < n; ++i)
    for (int e = 0; e < qd; ++e)
      ASSERT_FLOAT_EQ(o2[i * qd + e], std::fma(a.layers[0].v_scale.data[e], o1[i * qd + e], a.layers[0].v_bias.data[e]));
  std::remove(p.c_str());
}

// qhead=1: q_proj [n_head][b][d], one decoder per query head. Heads whose decoder equals their KV
// head's attend bit for bit as with the per-KV-head adapter; head 4 reads its own decoder (the
// per-KV-head adapter with that decoder on KV head 1 gives head 4 the same output). A q_proj of
// the other shape is refused, and qhead=1 needs kl.
TEST(Adapter, PerQueryHeadDecoderIsTheHeadsOwn) {
  const CacheSpec kv_spec = parse_cache_spec("h1b:bits=192,est=qjl,kl=1,sink=2,window=8");
  const CacheSpec qh_spec = parse_cache_spec("h1b:bits=192,est=qjl,kl=1,qhead=1,sink=2,window=8");
  const size_t per = 192 * 64;
  const std::vector<float> A0 = randn(per, 11), A1 = randn(per, 12), A2 = randn(per, 13);
  auto adapter = [&](const CacheSpec& spec, std::vector<const std::vector<float>*> heads) {
    Adapter a;
    a.model_id = "model-a";
    a.cache = calib_spec_string(spec);
    a.layers.resize(1);
    a.layers[0].q_proj.shape = {(int64_t)heads.size(), 192, 64};
    for (const auto* h : heads) a.layers[0].q_proj.data.insert(a.layers[0].q_proj.data.end(), h->begin(), h->end());
    return a;
  };
  const std::string pk = tmp_path("kv.safetensors"), pq = tmp_path("qh.safetensors"), p2 = tmp_path("kv2.safetensors");
  save_adapter(pk, adapter(kv_spec, {&A0, &A1}));
  save_adapter(p2, adapter(kv_spec, {&A0, &A2}));
  save_adapter(pq, adapter(qh_spec, {&A0, &A0, &A0, &A1, &A2, &A1}));
  auto ck = make_cache(kv_spec, kGeom, pk), c2 = make_cache(kv_spec, kGeom, p2), cq = make_cache(qh_spec, kGeom, pq);
  const int n = 40, kv = 2 * 64, qd = 6 * 64;
  const auto k = randn(n * kv, 1), v = randn(n * kv, 2), q = randn(n * qd, 3);
  std::vector<int32_t> pos(n);
  for (int i = 0; i < n; ++i) pos[i] = i;
  std::vector<float> ok(n * qd), o2(n * qd), oq(n * qd);
  for (auto* c : {ck.get(), c2.get(), cq.get()}) c->layer(0).append(n, pos.data(), k.data(), v.data());
  ck->layer(0).attend(n, pos.data(), q.data(), 0.125f, ok.data());
  c2->layer(0).attend(n, pos.data(), q.data(), 0.125f, o2.data());
  cq->layer(0).attend(n, pos.data(), q.data(), 0.125f, oq.data());
  int differ = 0;
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < 6; ++h)
      for (int j = 0; j < 64; ++j) {
        const size_t e = (size_t)i * qd + h * 64 + j;
        ASSERT_EQ(oq[e], h == 4 ? o2[e] : ok[e]) << i << " " << h << " " << j;
        differ += h == 4 && oq[e] != ok[e];
      }
  EXPECT_GT(differ, 0);  // head 4's own decoder changed its output
  // qhead is a key option: an adapter fitted without it does not load with it
  EXPECT_NE(error_of([&] { make_cache(qh_spec, kGeom, pk); }).find("made for cache option qhead=0, the cache has qhead=1"),
            std::string::npos);
  // shapes: per-KV-head q_proj for qhead=1 and the reverse are refused; qhead=1 needs kl
  save_adapter(p2, adapter(qh_spec, {&A0, &A1}));
  EXPECT_NE(error_of([&] { make_cache(qh_spec, kGeom, p2); }).find("has shape [2,192,64], the cache needs [6,192,64]"),
            std::string::npos);
  save_adapter(pq, adapter(kv_spec, {&A0, &A0, &A0, &A1, &A2, &A1}));
  EXPECT_NE(error_of([&] { make_cache(kv_spec, kGeom, pq); }).find("the cache needs [2,192,64]"), std::string::npos);
  EXPECT_NE(error_of([] { parse_cache_spec("h1b:est=qjl,qhead=1"); }).find("option 'qhead'"), std::string::npos);
  for (const auto& p : {pk, pq, p2}) std::remove(p.c_str());
}
