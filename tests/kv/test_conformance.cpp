// The conformance test: every cache type of the registry, each spec of its CacheTypeDef's
// `examples` (a calibration made with its hook where the type takes one), must keep the seam's
// promises (kv/cache.h):
//   batched == token by token, bit for bit (batches that span attention chunks and a position gap)
//   1 thread == 2 threads, bit for bit
//   bytes() after token-by-token decoding to n_ctx: bytes_per_token x n_ctx, plus at most the
//     type's fixed bytes (exactly the product when it has none)
//   bytes() after every settled batch (append, attend, settle) of any size: what one-token
//     batches hold at that many tokens, and within the formula for n_ctx (what serve reserves)
//   truncate by the last batch: exact (the same outputs after appending the tokens again) or an Error
//   appending past n_ctx: Error "context overflow", nothing appended
// and every spec of `exact_examples` equals exact attention within f16 rounding.
// A new type registered in kv/registry.cpp is checked here with no other edit.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

#include "kv/cache.h"
#include "kv/caches/h1b.h"
#include "kv/random.h"
#include "kv/reference_attention.h"
#include "kv/registry.h"
#include "util/error.h"

using namespace h1bkv;

namespace {

// 2 layers, GQA 3 query heads per KV head; chunks of the tiered cache are 256 tokens.
const CacheGeometry kGeom{2, 6, 2, 64, 320};
constexpr int kTokens = 300, kKv = 2 * 64, kQ = 6 * 64;
constexpr float kScale = 0.125f;

struct Data {
  std::vector<float> k, v, q;
  std::vector<int32_t> pos;
};

const Data& data() {
  static const Data d = [] {
    Data x{randn((size_t)kGeom.n_ctx * kKv, 31), randn((size_t)kGeom.n_ctx * kKv, 32),
           randn((size_t)kGeom.n_ctx * kQ, 33), std::vector<int32_t>(kGeom.n_ctx)};
    for (int i = 0; i < kGeom.n_ctx; ++i) x.pos[i] = i + (i >= 150 ? 7 : 0);  // a gap
    return x;
  }();
  return d;
}

// Every spec of every type (exact_only: the exact_examples).
std::vector<std::string> specs(bool exact_only) {
  std::vector<std::string> c;
  for (const auto& t : cache_types()) {
    if (!exact_only) c.insert(c.end(), t.examples.begin(), t.examples.end());
    c.insert(c.end(), t.exact_examples.begin(), t.exact_examples.end());
  }
  return c;
}

TEST(ConformanceList, EveryTypeListsExamples) {
  for (const auto& t : cache_types()) EXPECT_FALSE(t.examples.empty()) << t.name;
}

// A calibration file for spec (types that take one): random tokens through the hook's recorder.
std::string calibration_for(const CacheSpec& spec) {
  const CacheTypeDef& t = cache_type(spec.type);
  if (t.calib == CalibUse::none) return "";
  EXPECT_TRUE(t.calibration.make_recorder && t.calibration.save) << t.name << " has no calibration hook";
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("h1bkv_conformance_" + spec.type + "_" + std::to_string(::getpid()) + ".json")).string();
  auto rec = t.calibration.make_recorder(spec, kGeom, 2);
  const Data& d = data();
  std::vector<float> out((size_t)256 * kQ);
  for (int il = 0; il < kGeom.n_layer; ++il) {
    rec->layer(il).append(256, d.pos.data(), d.k.data(), d.v.data());
    rec->layer(il).attend(256, d.pos.data(), d.q.data(), kScale, out.data());
  }
  t.calibration.save(*rec, spec, "test", {"random"}, path);
  return path;
}

class Conformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    spec_ = parse_cache_spec(GetParam());
    calib_ = calibration_for(spec_);
  }
  void TearDown() override {
    if (!calib_.empty()) std::remove(calib_.c_str());
  }
  std::unique_ptr<KvCache> make() const { return make_cache(spec_, kGeom, calib_); }

  // Layer 0 fed in batches of the given sizes (append, then attend its queries); outputs [n][kQ].
  std::vector<float> batched(const std::vector<int>& sizes) const {
    auto c = make();
    const Data& d = data();
    std::vector<float> out((size_t)kTokens * kQ);
    int t = 0;
    for (int n : sizes) {
      c->layer(0).append(n, &d.pos[t], &d.k[(size_t)t * kKv], &d.v[(size_t)t * kKv]);
      c->layer(0).attend(n, &d.pos[t], &d.q[(size_t)t * kQ], kScale, &out[(size_t)t * kQ]);
      t += n;
    }
    return out;
  }

  CacheSpec spec_;
  std::string calib_;
};

TEST_P(Conformance, BatchedEqualsTokenByTokenAnyThreads) {
  const int saved = omp_get_max_threads();
  const std::vector<int> sizes = {1, 149, 7, 100, 43};  // 300 tokens; batches span 2 chunks and the gap
  omp_set_num_threads(1);
  const std::vector<float> one = batched(sizes);
  omp_set_num_threads(2);
  const std::vector<float> two = batched(sizes), steps = batched(std::vector<int>(kTokens, 1));
  omp_set_num_threads(saved);
  for (size_t i = 0; i < two.size(); ++i)
    ASSERT_EQ(two[i], steps[i]) << GetParam() << ": token " << i / kQ << " batched != token by token";
  EXPECT_EQ(one, two) << GetParam() << ": 1 thread != 2 threads";
}

TEST_P(Conformance, BytesFollowTheFormulaAndOverflowIsAnError) {
  auto c = make();
  const Data& d = data();
  std::vector<float> out(kQ);
  for (int il = 0; il < kGeom.n_layer; ++il)
    for (int t = 0; t < kGeom.n_ctx; ++t) {
      c->layer(il).append(1, &d.pos[t], &d.k[(size_t)t * kKv], &d.v[(size_t)t * kKv]);
      c->layer(il).attend(1, &d.pos[t], &d.q[(size_t)t * kQ], kScale, out.data());
    }
  const double per_token = cache_bytes_per_token(spec_, kGeom), fixed = cache_fixed_bytes(spec_, kGeom);
  const double formula = per_token * kGeom.n_ctx, held = (double)c->bytes();
  EXPECT_EQ(c->bytes_per_token(), per_token);
  if (fixed == 0) {
    EXPECT_NEAR(held, formula, 1e-9 * formula) << GetParam();
  } else {
    EXPECT_GE(held, formula * (1 - 1e-9)) << GetParam();
    EXPECT_LE(held, (formula + fixed) * (1 + 1e-9)) << GetParam();
  }
  EXPECT_GE(c->capacity_bytes(), c->bytes()) << GetParam();
  // one more token than the context holds
  const int32_t next = d.pos.back() + 1;
  try {
    c->layer(0).append(1, &next, d.k.data(), d.v.data());
    ADD_FAILURE() << GetParam() << ": no error past the context";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("context overflow"), std::string::npos) << e.what();
  }
  EXPECT_EQ(c->layer(0).n_tokens(), kGeom.n_ctx);
}

// What serve relies on: a prompt run in chunks of any size holds, between steps, what decoding
// one token at a time holds; never more than the formula for the context. h1b: exactly the
// formula, bytes_per_token x t + f16 K and V of min(t, sink + window) tokens.
TEST_P(Conformance, SettledBytesDoNotDependOnTheBatchSizes) {
  const Data& d = data();
  const int n = kGeom.n_ctx;
  const double per_token = cache_bytes_per_token(spec_, kGeom), fixed = cache_fixed_bytes(spec_, kGeom);
  const double reserved = per_token * n + fixed;
  auto feed = [&](const std::vector<int>& sizes, std::vector<size_t>& held) {  // held[t]
    auto c = make();
    std::vector<float> out((size_t)n * kQ);
    held.assign(n + 1, 0);
    int t = 0;
    for (int b : sizes) {
      for (int il = 0; il < kGeom.n_layer; ++il) {
        c->layer(il).append(b, &d.pos[t], &d.k[(size_t)t * kKv], &d.v[(size_t)t * kKv]);
        c->layer(il).attend(b, &d.pos[t], &d.q[(size_t)t * kQ], kScale, out.data());
      }
      c->settle();
      t += b;
      held[t] = c->bytes();
      EXPECT_LE((double)held[t], reserved * (1 + 1e-9)) << GetParam() << " at " << t << " tokens";
    }
  };
  std::vector<size_t> one, chunked;
  feed(std::vector<int>(n, 1), one);
  for (const std::vector<int>& sizes : {std::vector<int>{64, 64, 64, 64, 64}, {1, 149, 7, 100, 63}, {n}}) {
    feed(sizes, chunked);
    int t = 0;
    for (int b : sizes) {
      t += b;
      EXPECT_EQ(chunked[t], one[t]) << GetParam() << " at " << t << " tokens, batch of " << b;
    }
  }
  if (spec_.type != "h1b") return;
  const H1bOptions o = h1b_options(spec_);
  const double f16_token = 4.0 * kGeom.head_dim * kGeom.n_kv_head * kGeom.n_layer;
  for (int t = 1; t <= n; ++t) {
    const double formula = per_token * t + (double)std::min<int64_t>(t, o.sink + o.window) * f16_token;
    ASSERT_NEAR((double)one[t], formula, 1e-9 * formula) << GetParam() << " at " << t << " tokens";
  }
}

TEST_P(Conformance, TruncateIsExactOrAnError) {
  auto c = make();
  const Data& d = data();
  const int n0 = 200, n1 = 40;  // rewind the last batch of n1 tokens
  std::vector<float> first((size_t)n1 * kQ), again((size_t)n1 * kQ);
  c->layer(0).append(n0, d.pos.data(), d.k.data(), d.v.data());
  std::vector<float> scratch((size_t)n0 * kQ);
  c->layer(0).attend(n0, d.pos.data(), d.q.data(), kScale, scratch.data());
  auto step = [&](std::vector<float>& out) {
    c->layer(0).append(n1, &d.pos[n0], &d.k[(size_t)n0 * kKv], &d.v[(size_t)n0 * kKv]);
    c->layer(0).attend(n1, &d.pos[n0], &d.q[(size_t)n0 * kQ], kScale, out.data());
  };
  step(first);
  try {
    c->layer(0).truncate(n0);
  } catch (const Error&) {
    EXPECT_EQ(c->layer(0).n_tokens(), n0 + n1) << "a refused truncate keeps the tokens";
    return;  // the documented error (the type cannot rewind)
  }
  ASSERT_EQ(c->layer(0).n_tokens(), n0);
  step(again);
  EXPECT_EQ(first, again) << GetParam();
  c->clear();
  EXPECT_EQ(c->n_tokens(), 0);
}

class ExactConformance : public Conformance {};

TEST_P(ExactConformance, FullPrecisionSettingsEqualExactAttention) {
  const Data& d = data();
  const int n = 160;
  std::vector<float> out = batched({n, kTokens - n});
  const std::vector<float> k(d.k.begin(), d.k.begin() + (size_t)kTokens * kKv),
      v(d.v.begin(), d.v.begin() + (size_t)kTokens * kKv), q(d.q.begin(), d.q.begin() + (size_t)kTokens * kQ);
  const std::vector<int32_t> pos(d.pos.begin(), d.pos.begin() + kTokens);
  const std::vector<float> ref = naive_attention(kGeom, k, v, q, pos, pos, kScale);
  const double tol = spec_.str() == "f32" || spec_.str() == "plain:k=f32,v=f32" ? 1e-5 : 5e-3;  // f16 rounding
  for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(out[i], ref[i], tol) << GetParam() << " " << i;
}

std::string test_name(const ::testing::TestParamInfo<std::string>& i) {
  std::string s = std::to_string(i.index) + "_" + i.param;
  for (char& ch : s)
    if (!isalnum((unsigned char)ch)) ch = '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(Registry, Conformance, ::testing::ValuesIn(specs(false)), test_name);
INSTANTIATE_TEST_SUITE_P(Registry, ExactConformance, ::testing::ValuesIn(specs(true)), test_name);

}  // namespace
