// The h1b cache: batched == token-by-token for every estimator with and without sinks/window,
// all-exact window == f16 cache, bytes formula == allocation, rewind, calibration hook, spec errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kv/cache.h"
#include "kv/caches/h1b.h"
#include "kv/codecs/int4.h"
#include "kv/registry.h"
#include "tensor/isa.h"
#include "util/error.h"
#include "util/fp16.h"

#include "kv/random.h"

using namespace h1bkv;

namespace {

std::vector<int32_t> iota_pos(int n, int start = 0) {
  std::vector<int32_t> p(n);
  for (int i = 0; i < n; ++i) p[i] = start + i;
  return p;
}

const CacheGeometry kGeom{2, 6, 2, 64, 400};

std::string error_of(const std::string& spec) {
  try {
    parse_cache_spec(spec);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

class H1bBatchTest : public ::testing::TestWithParam<std::string> {};

// Query i sees exactly the tokens at positions <= pos[i]; exact/compressed depends only on
// positions, so one batch of n equals n single-token steps bit for bit. Positions have a gap.
TEST_P(H1bBatchTest, BatchedEqualsTokenByToken) {
  const CacheGeometry g = kGeom;
  auto a = make_cache(parse_cache_spec(GetParam()), g);
  auto b = make_cache(parse_cache_spec(GetParam()), g);
  const int n = 100, n1 = 70, d = g.head_dim, kvs = g.n_kv_head * d, qs = g.n_head * d;
  auto k = randn((size_t)n * kvs, 6), v = randn((size_t)n * kvs, 7), q = randn((size_t)n * qs, 8);
  auto pos = iota_pos(n);
  for (int i = 60; i < n; ++i) pos[i] += 5;
  std::vector<float> oa(q.size()), ob(q.size());
  a->layer(1).append(n1, pos.data(), k.data(), v.data());  // two batches: 70 + 30
  a->layer(1).attend(n1, pos.data(), q.data(), 0.125f, oa.data());
  a->layer(1).append(n - n1, pos.data() + n1, k.data() + n1 * kvs, v.data() + n1 * kvs);
  a->layer(1).attend(n - n1, pos.data() + n1, q.data() + n1 * qs, 0.125f, oa.data() + n1 * qs);
  for (int i = 0; i < n; ++i) {
    b->layer(1).append(1, &pos[i], k.data() + i * kvs, v.data() + i * kvs);
    b->layer(1).attend(1, &pos[i], q.data() + i * qs, 0.125f, ob.data() + i * qs);
  }
  for (size_t i = 0; i < oa.size(); ++i) ASSERT_EQ(oa[i], ob[i]) << i;
  for (float x : oa) ASSERT_TRUE(std::isfinite(x));
}

INSTANTIATE_TEST_SUITE_P(
    Specs, H1bBatchTest,
    ::testing::Values("h1b", "h1b:est=angle", "h1b:est=qjl", "h1b:bits=64,proj=head",
                      "h1b:sink=4,window=16", "h1b:est=angle,sink=3,window=33,group=32",
                      "h1b:est=qjl,bits=512,sink=1,window=50", "h1b:est=qjl,window=1",
                      "h1b:est=qjl,bits=192,sink=2,window=20", "h1b:est=angle,bits=448",
                      "plain:k=f16,v=int4"));

// Every token exact (window >= n, or sink >= n): the same arithmetic as the f16 cache.
TEST(H1bCache, AllExactEqualsF16Cache) {
  const CacheGeometry g = kGeom;
  const int n = 130, d = g.head_dim, kvs = g.n_kv_head * d;
  auto k = randn((size_t)n * kvs, 1), v = randn((size_t)n * kvs, 2), q = randn((size_t)n * g.n_head * d, 3);
  auto pos = iota_pos(n);
  auto ref = make_cache(parse_cache_spec("f16"), g);
  std::vector<float> o_ref(q.size());
  ref->layer(0).append(n, pos.data(), k.data(), v.data());
  ref->layer(0).attend(n, pos.data(), q.data(), 0.125f, o_ref.data());
  for (const char* spec : {"h1b:window=130", "h1b:est=qjl,window=1000", "h1b:sink=130",
                           "h1b:est=angle,sink=64,window=70"}) {
    auto c = make_cache(parse_cache_spec(spec), g);
    std::vector<float> o(q.size());
    c->layer(0).append(n, pos.data(), k.data(), v.data());
    c->layer(0).attend(n, pos.data(), q.data(), 0.125f, o.data());
    EXPECT_EQ(o, o_ref) << spec;
  }
}

// int4 values in the plain cache == f32 values holding the decoded int4 vectors (to rounding).
TEST(H1bCache, PlainInt4MatchesDecodedValues) {
  const CacheGeometry g = kGeom;
  const int n = 90, d = g.head_dim, kvs = g.n_kv_head * d;
  auto k = randn((size_t)n * kvs, 4), v = randn((size_t)n * kvs, 5), q = randn((size_t)n * g.n_head * d, 6);
  std::vector<float> vdec(v.size());
  std::vector<uint8_t> code(int4_bytes(d, 0));
  double s_max = 0;  // the largest value scale
  for (size_t r = 0; r < v.size() / d; ++r) {
    int4_encode(&v[r * d], d, 0, code.data());
    int4_decode(code.data(), d, 0, &vdec[r * d]);
    uint16_t sh;
    std::memcpy(&sh, &code[d / 2], 2);
    s_max = std::max(s_max, (double)fp16_to_f32_scalar(sh));
  }
  auto pos = iota_pos(n);
  auto a = make_cache(parse_cache_spec("plain:k=f32,v=int4"), g);
  auto b = make_cache(parse_cache_spec("plain:k=f32,v=f32"), g);
  std::vector<float> oa(q.size()), ob(q.size());
  a->layer(0).append(n, pos.data(), k.data(), v.data());
  b->layer(0).append(n, pos.data(), k.data(), vdec.data());
  a->layer(0).attend(n, pos.data(), q.data(), 0.125f, oa.data());
  b->layer(0).attend(n, pos.data(), q.data(), 0.125f, ob.data());
  // the integer path rounds each softmax weight (<= 1) times a scale to half a unit of the
  // largest such product / 32767, times a code <= 15 (int4.h): at most 15 / 2 s_max / 32767 a token
  double tol = 1e-5;
  if (int4_integer_path(active_isa(), d, 0)) tol += n * 7.5 * s_max / 32767;
  for (size_t i = 0; i < oa.size(); ++i) ASSERT_NEAR(oa[i], ob[i], tol) << i;
}

// SmolLM2-135M geometry (30 layers, 3 KV heads, d = 64): per layer and KV head
// b/8 + (2 angle/qjl) + 32 nibble bytes + 4 per value group.
TEST(H1bCache, BytesFormulaEqualsAllocation) {
  const CacheGeometry g{30, 9, 3, 64, 1000};
  struct Case { const char* spec; double per_head; };
  for (const Case& c : {Case{"h1b:bits=64", 8 + 32 + 4}, Case{"h1b:bits=128", 16 + 36},
                        Case{"h1b", 32 + 36}, Case{"h1b:bits=512", 64 + 36},
                        Case{"h1b:est=qjl", 34 + 36}, Case{"h1b:est=angle,bits=512", 66 + 36},
                        Case{"h1b:group=32", 32 + 32 + 8}, Case{"h1b:bits=192,est=qjl", 24 + 2 + 36},
                        Case{"h1b:bits=320", 40 + 36}, Case{"plain:k=f16,v=int4", 128 + 36}}) {
    const CacheSpec s = parse_cache_spec(c.spec);
    EXPECT_EQ(cache_bytes_per_token(s, g), c.per_head * 3 * 30) << c.spec;
    EXPECT_EQ(cache_fixed_bytes(s, g), 0.0) << c.spec;
    auto cache = make_cache(s, g);
    const int n = 100, kvs = 3 * 64;
    auto k = randn((size_t)n * kvs, 1);
    auto pos = iota_pos(n);
    for (int il = 0; il < g.n_layer; ++il) cache->layer(il).append(n, pos.data(), k.data(), k.data());
    EXPECT_EQ(cache->bytes(), (size_t)(c.per_head * 90 * n)) << c.spec;
    EXPECT_EQ(cache->capacity_bytes(), (size_t)(c.per_head * 90 * 128)) << c.spec;  // 2 blocks
  }
  // the exact tier: f16 K + V = 4 * 64 bytes per layer and KV head and token, not per token
  const CacheSpec s = parse_cache_spec("h1b:sink=4,window=16");
  EXPECT_EQ(cache_bytes_per_token(s, g), 68.0 * 90);
  EXPECT_EQ(cache_fixed_bytes(s, g), 20.0 * 256 * 90);
  auto cache = make_cache(s, g);
  const int kvs = 3 * 64;
  auto k = randn((size_t)100 * kvs, 2);
  auto pos = iota_pos(100);
  for (int il = 0; il < g.n_layer; ++il) cache->layer(il).append(2, pos.data(), k.data(), k.data());
  EXPECT_EQ(cache->bytes(), (size_t)(68 * 90 * 2 + 2 * 256 * 90));  // 2 sinks held
  for (int il = 0; il < g.n_layer; ++il)
    for (int i = 2; i < 100; ++i) cache->layer(il).append(1, &pos[i], k.data() + i * kvs, k.data() + i * kvs);
  // 4 sinks + window - 1 + largest batch (2) = 17 recent tokens exact
  EXPECT_EQ(cache->bytes(), (size_t)(68 * 90 * 100 + 21 * 256 * 90));
  EXPECT_EQ(cache->capacity_bytes(), (size_t)(68 * 90 * 128 + 21 * 256 * 90));
  cache->settle();  // the window's 16 only, and their slots
  EXPECT_EQ(cache->bytes(), (size_t)(68 * 90 * 100 + 20 * 256 * 90));
  EXPECT_EQ(cache->capacity_bytes(), (size_t)(68 * 90 * 128 + 20 * 256 * 90));
  auto one = make_cache(s, g);  // decoding one token at a time from the start: sink + window
  for (int i = 0; i < 100; ++i) one->layer(0).append(1, &pos[i], k.data() + i * kvs, k.data() + i * kvs);
  EXPECT_EQ(one->bytes(), (size_t)((68 * 100 + 20 * 256) * 3));
}

namespace {

// The bytes per token of `spec` by the formula and held after 70 appended tokens.
void expect_bytes_per_token(const char* spec, const CacheGeometry& g, double bytes) {
  const CacheSpec s = parse_cache_spec(spec);
  EXPECT_EQ(cache_bytes_per_token(s, g), bytes) << spec;
  auto cache = make_cache(s, g);
  const int n = 70, kvs = 3 * 64;
  auto k = randn((size_t)n * kvs, 1);
  auto pos = iota_pos(n);
  for (int il = 0; il < g.n_layer; ++il) cache->layer(il).append(n, pos.data(), k.data(), k.data());
  EXPECT_EQ(cache->bytes(), (size_t)(bytes * n)) << spec;
}

// `spec` (over kGeom's 2 layers) keeps layer `exact`'s keys exact: it attends there as
// plain:k=f16,v=int4 and on the other layer as plain h1b, and only the other takes multipliers.
void expect_one_exact_layer(const char* spec, int exact) {
  const int other = 1 - exact;
  const int n = 50, kvs = kGeom.n_kv_head * 64, qs = kGeom.n_head * 64;
  auto k = randn((size_t)n * kvs, 2), v = randn((size_t)n * kvs, 3), q = randn((size_t)n * qs, 4);
  auto pos = iota_pos(n);
  auto h = make_cache(parse_cache_spec(spec), kGeom);
  auto f = make_cache(parse_cache_spec("plain:k=f16,v=int4"), kGeom);
  auto s = make_cache(parse_cache_spec("h1b:bits=128,est=qjl"), kGeom);
  std::vector<float> oh(q.size()), of(q.size()), os(q.size()), oh_other(q.size());
  for (auto* c : {h.get(), f.get(), s.get()})
    for (int il = 0; il < 2; ++il) c->layer(il).append(n, pos.data(), k.data(), v.data());
  h->layer(exact).attend(n, pos.data(), q.data(), 0.125f, oh.data());
  f->layer(exact).attend(n, pos.data(), q.data(), 0.125f, of.data());
  EXPECT_EQ(oh, of) << spec;
  h->layer(other).attend(n, pos.data(), q.data(), 0.125f, oh_other.data());
  s->layer(other).attend(n, pos.data(), q.data(), 0.125f, os.data());
  EXPECT_EQ(oh_other, os) << spec;
  H1bCalibration cal = H1bCalibration::identity(kGeom);
  for (float& m : cal.mult) m = 2.0f;
  set_h1b_calibration(*h, cal);
  const H1bCalibration got = get_h1b_calibration(*h);
  for (int hd = 0; hd < 6; ++hd) {
    EXPECT_EQ(got.at(exact, hd), 1.0f) << spec;
    EXPECT_EQ(got.at(other, hd), 2.0f) << spec;
  }
}

}  // namespace

// exact_layers: the first L layers' keys in f16 (2d bytes) or q4_0 (18 d / 32), counted per layer;
// such a layer attends exactly as plain:k=f16,v=int4 (same codecs), the rest as plain h1b.
TEST(H1bCache, ExactLayersCountedAndExact) {
  const CacheGeometry g{30, 9, 3, 64, 1000};
  struct Case { const char* spec; double bytes; };
  for (const Case& c : {Case{"h1b:bits=128,est=qjl,exact_layers=2", (2 * (128 + 36) + 28 * (18 + 36)) * 3.0},
                        Case{"h1b:bits=128,est=qjl,exact_layers=2,exact_type=q4", (2 * (36 + 36) + 28 * (18 + 36)) * 3.0},
                        Case{"h1b:bits=256,exact_layers=40", 30 * (128 + 36) * 3.0}}) {  // >= n_layer: all
    expect_bytes_per_token(c.spec, g, c.bytes);
  }
  expect_one_exact_layer("h1b:bits=128,est=qjl,exact_layers=1", 0);
  EXPECT_NE(error_of("h1b:exact_type=q8"), "");
  EXPECT_NE(error_of("h1b:exact_layers=-1"), "");
  EXPECT_NE(error_of("h1b:est=angle,ridge=0.1").find("needs est=qjl"), std::string::npos);
  EXPECT_NE(error_of("h1b:est=hamming,kl=10").find("option 'kl': the attention-KL fit trains the qjl decoder A (needs est=qjl)"),
            std::string::npos);
  EXPECT_NE(error_of("h1b:est=qjl,kl=-1"), "");
}

// exact=LIST: the listed layers' keys exact (any layers, not only the first), counted as such; a
// listed layer attends as plain:k=f16,v=int4, the others as plain h1b and take the multipliers.
TEST(H1bCache, ExactLayerListCountedAndExact) {
  const CacheGeometry g{30, 9, 3, 64, 1000};
  struct Case { const char* spec; double bytes; };
  for (const Case& c : {Case{"h1b:bits=192,est=qjl,exact=0+1+29", (3 * (128 + 36) + 27 * (26 + 36)) * 3.0},
                        Case{"h1b:bits=192,est=qjl,exact=7+3,exact_type=q4", (2 * (36 + 36) + 28 * (26 + 36)) * 3.0},
                        Case{"h1b:bits=128,est=qjl,exact=5", (1 * (128 + 36) + 29 * (18 + 36)) * 3.0}}) {
    expect_bytes_per_token(c.spec, g, c.bytes);
  }
  const H1bOptions o = h1b_options(parse_cache_spec("h1b:exact=4+2"));
  for (int il = 0; il < 6; ++il) EXPECT_EQ(h1b_exact_key_layer(o, il), il == 2 || il == 4) << il;
  expect_one_exact_layer("h1b:bits=128,est=qjl,exact=1", 1);  // the second layer only
  for (const char* bad : {"h1b:exact=1+", "h1b:exact=+1", "h1b:exact=1++2", "h1b:exact=a", "h1b:exact=-1",
                          "h1b:exact=2+2", "h1b:exact=4096", "h1b:exact=1 2"})
    EXPECT_NE(error_of(bad).find("option 'exact': '"), std::string::npos) << bad;
  EXPECT_NE(error_of("h1b:exact_layers=2,exact=5").find("not both"), std::string::npos);
  try {  // a layer past the model: at make time, and in the bytes formula
    make_cache(parse_cache_spec("h1b:exact=0+2"), kGeom);
    ADD_FAILURE() << "no error for layer 2 of 2";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "cache 'h1b' option 'exact': layer 2 is past the model's 2 layers (0..1)");
  }
  EXPECT_THROW(cache_bytes_per_token(parse_cache_spec("h1b:exact=30"), g), Error);
  EXPECT_EQ(parse_cache_spec("h1b:exact=0+1+5").str(), "h1b:exact=0+1+5");
}

// Rewinding by up to the largest batch keeps the window's exact copies; deeper rewinds throw.
TEST(H1bCache, TruncateWithinWindow) {
  const CacheGeometry g = kGeom;
  const int n = 120, d = g.head_dim, kvs = g.n_kv_head * d;
  auto k = randn((size_t)n * kvs, 9), v = randn((size_t)n * kvs, 10), k2 = randn((size_t)n * kvs, 12);
  auto q = randn(g.n_head * d, 11);
  auto pos = iota_pos(n);
  const CacheSpec s = parse_cache_spec("h1b:est=qjl,sink=2,window=8");
  auto a = make_cache(s, g), b = make_cache(s, g);
  a->layer(0).append(100, pos.data(), k.data(), v.data());
  a->layer(0).append(20, pos.data() + 100, k.data() + 100 * kvs, v.data() + 100 * kvs);
  a->truncate(105);  // within the last batch
  a->layer(0).append(15, pos.data() + 105, k2.data() + 105 * kvs, v.data() + 105 * kvs);
  b->layer(0).append(105, pos.data(), k.data(), v.data());
  b->layer(0).append(15, pos.data() + 105, k2.data() + 105 * kvs, v.data() + 105 * kvs);
  std::vector<float> oa(g.n_head * d), ob(g.n_head * d);
  const int32_t qp = n - 1;
  a->layer(0).attend(1, &qp, q.data(), 0.125f, oa.data());
  b->layer(0).attend(1, &qp, q.data(), 0.125f, ob.data());
  EXPECT_EQ(oa, ob);
  auto c = make_cache(s, g);
  for (int i = 0; i < 50; ++i) c->layer(0).append(1, &pos[i], k.data() + i * kvs, v.data() + i * kvs);
  EXPECT_NO_THROW(c->truncate(49));
  EXPECT_THROW(c->truncate(20), Error);
  EXPECT_NO_THROW(c->truncate(2));  // only sinks remain: nothing of the window needed
  c->clear();
  EXPECT_EQ(c->n_tokens(), 0);
}

// Random appends and rewinds (by at most the batch just appended) == a fresh cache fed the surviving
// tokens one at a time; exact-tier bytes stay within sink + window - 1 + largest batch.
TEST(H1bCache, RandomRewindsEqualFresh) {
  const CacheGeometry g = kGeom;
  const int d = g.head_dim, kvs = g.n_kv_head * d, qs = g.n_head * d;
  const CacheSpec s = parse_cache_spec("h1b:est=angle,sink=3,window=10");
  auto a = make_cache(s, g);
  auto k = randn((size_t)400 * kvs, 21), v = randn((size_t)400 * kvs, 22);
  std::vector<int> src;  // source row of each held token
  std::mt19937 rng(5);
  int next = 0, max_batch = 0;
  for (int step = 0; step < 60; ++step) {
    const int nb = 1 + (int)(rng() % 6);
    max_batch = std::max(max_batch, nb);
    std::vector<int32_t> pos(nb);
    std::vector<float> kb((size_t)nb * kvs), vb((size_t)nb * kvs);
    for (int i = 0; i < nb; ++i, ++next) {
      pos[i] = (int32_t)src.size();
      std::copy_n(&k[(size_t)next * kvs], kvs, &kb[(size_t)i * kvs]);
      std::copy_n(&v[(size_t)next * kvs], kvs, &vb[(size_t)i * kvs]);
      src.push_back(next);
    }
    a->layer(0).append(nb, pos.data(), kb.data(), vb.data());
    if (rng() % 3 == 0) {
      const int back = (int)(rng() % (nb + 1));
      a->truncate((int64_t)src.size() - back);
      src.resize(src.size() - back);
    }
    const size_t codes = src.size() * 2 * (34 + 36);  // 2 KV heads x (sketch + norm + int4)
    EXPECT_LE(a->layer(0).bytes() - codes, (size_t)(3 + 10 - 1 + max_batch) * 2 * 4 * d);
  }
  auto b = make_cache(s, g);
  for (size_t i = 0; i < src.size(); ++i) {
    const int32_t p = (int32_t)i;
    b->layer(0).append(1, &p, &k[(size_t)src[i] * kvs], &v[(size_t)src[i] * kvs]);
  }
  auto q = randn((size_t)qs, 23);
  std::vector<float> oa(qs), ob(qs);
  const int32_t qp = (int32_t)src.size() - 1;
  a->layer(0).attend(1, &qp, q.data(), 0.125f, oa.data());
  b->layer(0).attend(1, &qp, q.data(), 0.125f, ob.data());
  EXPECT_EQ(oa, ob);
}

TEST(H1bCache, CalibrationMultipliesLogits) {
  const CacheGeometry g = kGeom;
  const int n = 70, d = g.head_dim, kvs = g.n_kv_head * d;
  auto k = randn((size_t)n * kvs, 1), v = randn((size_t)n * kvs, 2), q = randn(g.n_head * d, 3);
  auto pos = iota_pos(n);
  // hamming with T = 1 and multiplier 4 on every head == T = 0.25 (exact in binary)
  auto a = make_cache(parse_cache_spec("h1b:T=0.25"), g);
  auto b = make_cache(parse_cache_spec("h1b:T=1"), g);
  H1bCalibration cal = H1bCalibration::identity(g);
  for (float& m : cal.mult) m = 4;
  set_h1b_calibration(*b, cal);
  EXPECT_EQ(get_h1b_calibration(*b).mult, cal.mult);
  std::vector<float> oa(g.n_head * d), ob(g.n_head * d);
  const int32_t qp = n - 1;
  for (auto* c : {a.get(), b.get()}) c->layer(1).append(n, pos.data(), k.data(), v.data());
  a->layer(1).attend(1, &qp, q.data(), 0.125f, oa.data());
  b->layer(1).attend(1, &qp, q.data(), 0.125f, ob.data());
  EXPECT_EQ(oa, ob);
  // a multiplier on one head changes that head only
  cal.at(1, 2) = 0.5f;
  set_h1b_calibration(*b, cal);
  b->layer(1).attend(1, &qp, q.data(), 0.125f, ob.data());
  for (int h = 0; h < g.n_head; ++h)
    for (int c = 0; c < d; ++c) {
      if (h == 2) continue;
      ASSERT_EQ(oa[h * d + c], ob[h * d + c]);
    }
  EXPECT_NE(std::vector<float>(oa.begin() + 2 * d, oa.begin() + 3 * d),
            std::vector<float>(ob.begin() + 2 * d, ob.begin() + 3 * d));
  auto f16 = make_cache(parse_cache_spec("f16"), g);
  EXPECT_THROW(set_h1b_calibration(*f16, cal), Error);
  H1bCalibration wrong = H1bCalibration::identity(CacheGeometry{3, 6, 2, 64, 10});
  EXPECT_THROW(set_h1b_calibration(*b, wrong), Error);
}

TEST(H1bRegistry, SpecsAndErrorsListValidValues) {
  EXPECT_EQ(parse_cache_spec("h1b").str(), "h1b");
  EXPECT_EQ(parse_cache_spec("h1b:bits=512,est=qjl,window=64").str(), "h1b:bits=512,est=qjl,window=64");
  EXPECT_EQ(parse_cache_spec("h1b:bits=192,est=qjl").str(), "h1b:bits=192,est=qjl");
  EXPECT_NE(error_of("h1b:bits=100").find("not one of 64, 128, 192, 256, 320, 384, 448, 512"), std::string::npos);
  EXPECT_NE(error_of("h1b:est=cos").find("not one of hamming, angle, qjl"), std::string::npos);
  EXPECT_NE(error_of("h1b:group=48").find("not one of 0, 32, 64"), std::string::npos);
  EXPECT_NE(error_of("h1b:proj=token").find("not one of layer, head"), std::string::npos);
  EXPECT_NE(error_of("h1b:b=3").find("valid: bits, est, T, group, proj, seed, sink, window"),
            std::string::npos) << error_of("h1b:b=3");
  EXPECT_NE(error_of("h1b:T=0").find("out of range (valid: (0, 1000000])"), std::string::npos);
  EXPECT_NE(error_of("h1b:T=nan").find("not a finite number"), std::string::npos);
  EXPECT_NE(error_of("h1b:sink=-1").find("out of range (valid: [0, 2147483647])"), std::string::npos);
  EXPECT_NE(error_of("h1b:window=x").find("not an integer"), std::string::npos);
  EXPECT_NE(error_of("plain:v=int2").find("not one of f32, f16, int4"), std::string::npos);
  EXPECT_NE(error_of("h2b").find("h1b"), std::string::npos);
  // group must divide head_dim (checked when the geometry is known)
  EXPECT_THROW(make_cache(parse_cache_spec("h1b:group=64"), CacheGeometry{1, 2, 1, 32, 10}), Error);
}
