// q8_0 / q4_0 codecs (kv/block_quant_codec.h): codes bit-exact with an independent scalar
// re-implementation of ggml's quantize_row_q8_0_ref / quantize_row_q4_0_ref, reconstruction error
// within the format's bound, AVX2 == scalar, bytes per token, cache attention vs exact attention.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kv/codecs/block_quant.h"
#include "kv/codecs/codec.h"
#include "kv/registry.h"
#include "tensor/isa_paths.h"
#include "util/error.h"
#include "util/fp16.h"

#include "kv/random.h"
#include "kv/reference_attention.h"

using namespace h1bkv;

namespace {

// ggml's block structs (sizes 34 and 18), for blocks of qk <= 32 values.
struct BlockQ8 {
  uint16_t d;
  int8_t qs[32];
};
struct BlockQ4 {
  uint16_t d;
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ8) == 34 && sizeof(BlockQ4) == 18);

// f32 ops written in double: a product or sum of two floats is exact in double, so rounding it to
// float is the one f32 rounding of the C source, whatever the compiler contracts.
float mul_f32(float a, float b) { return (float)((double)a * (double)b); }
float add_f32(float a, float b) { return (float)((double)a + (double)b); }

// quantize_row_q8_0_ref, one block of qk values (qk = 32 in ggml).
std::vector<uint8_t> ggml_q8_0(const float* x, int k, int qk) {
  std::vector<uint8_t> out;
  for (int i = 0; i < k / qk; ++i) {
    BlockQ8 y{};
    float amax = 0.0f;
    for (int j = 0; j < qk; ++j) amax = std::max(amax, std::fabs(x[i * qk + j]));
    const float d = amax / ((1 << 7) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    y.d = f32_to_fp16_scalar(d);
    for (int j = 0; j < qk; ++j) y.qs[j] = (int8_t)std::roundf(mul_f32(x[i * qk + j], id));
    const uint8_t* p = reinterpret_cast<const uint8_t*>(&y);
    out.insert(out.end(), p, p + 2 + qk);
  }
  return out;
}

// quantize_row_q4_0_ref, one block of qk values.
std::vector<uint8_t> ggml_q4_0(const float* x, int k, int qk) {
  std::vector<uint8_t> out;
  for (int i = 0; i < k / qk; ++i) {
    BlockQ4 y{};
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < qk; ++j) {
      const float v = x[i * qk + j];
      if (amax < std::fabs(v)) amax = std::fabs(v), max = v;
    }
    const float d = max / -8;
    const float id = d ? 1.0f / d : 0.0f;
    y.d = f32_to_fp16_scalar(d);
    for (int j = 0; j < qk / 2; ++j) {
      const float x0 = mul_f32(x[i * qk + j], id), x1 = mul_f32(x[i * qk + qk / 2 + j], id);
      const uint8_t xi0 = (uint8_t)std::min<int>(15, (int8_t)add_f32(x0, 8.5f));
      const uint8_t xi1 = (uint8_t)std::min<int>(15, (int8_t)add_f32(x1, 8.5f));
      y.qs[j] = (uint8_t)(xi0 | xi1 << 4);
    }
    const uint8_t* p = reinterpret_cast<const uint8_t*>(&y);
    out.insert(out.end(), p, p + 2 + qk / 2);
  }
  return out;
}

// Random vectors with per-vector magnitudes from 1e-3 to 1e2, some exact ties and zeros.
std::vector<float> test_data(int n_vec, int d, uint32_t seed) {
  std::vector<float> x = randn((size_t)n_vec * d, seed);
  for (int i = 0; i < n_vec; ++i)
    for (int j = 0; j < d; ++j) x[i * d + j] *= std::pow(10.0f, (float)(i % 6) - 3);
  for (int j = 0; j < d; ++j) x[j] = 0;                    // all-zero vector
  if (n_vec > 1) x[d] = 2.0f, x[d + 1] = -2.0f;            // equal magnitudes, both signs
  if (n_vec > 2) for (int j = 0; j < d; ++j) x[2 * d + j] = (float)(j % 17) - 8;  // integers
  return x;
}

const BlockQuant kTypes[] = {BlockQuant::q8_0, BlockQuant::q4_0};

}  // namespace

TEST(BlockQuant, CodesMatchGgmlReference) {
  for (BlockQuant t : kTypes)
    for (int d : {8, 16, 32, 64, 128}) {
      const int n = 200;
      const auto x = test_data(n, d, 11 + d);
      const size_t vb = block_quant_bytes(t, d);
      for (int i = 0; i < n; ++i) {
        std::vector<uint8_t> got(vb);
        block_quant_encode(t, &x[i * d], d, got.data());
        const auto want = t == BlockQuant::q8_0 ? ggml_q8_0(&x[i * d], d, std::min(d, 32))
                                                : ggml_q4_0(&x[i * d], d, std::min(d, 32));
        ASSERT_EQ(want.size(), vb);
        ASSERT_EQ(0, std::memcmp(want.data(), got.data(), vb)) << "d " << d << " vector " << i;
      }
    }
}

// Bound per element, d = the f32 block scale, dh = the stored fp16 one:
//   q8_0: |x - x^| <= |d|/2 + 127 |d - dh|   (|code| <= 127)
//   q4_0: |x - x^| <= |d|/2 + 8 |d - dh|, except where x/d > 7.5 (the code 16 clamped to 15,
//         values of the opposite sign to the largest-magnitude one): |d| + 8 |d - dh|.
// plus 1e-6 |d| for the f32 rounding of x * (1/d).
TEST(BlockQuant, ReconstructionErrorWithinBound) {
  for (BlockQuant t : kTypes)
    for (int d : {8, 32, 64}) {
      const int n = 300, B = std::min(d, 32);
      const auto x = test_data(n, d, 5 + d);
      std::vector<uint8_t> code(block_quant_bytes(t, d));
      std::vector<float> y(d);
      int clamped = 0;
      for (int i = 0; i < n; ++i) {
        block_quant_encode(t, &x[i * d], d, code.data());
        block_quant_decode(t, code.data(), d, y.data());
        for (int b = 0; b < d / B; ++b) {
          const float* xb = &x[i * d + b * B];
          float amax = 0, max = 0;
          for (int j = 0; j < B; ++j)
            if (amax < std::fabs(xb[j])) amax = std::fabs(xb[j]), max = xb[j];
          const float sc = t == BlockQuant::q8_0 ? amax / 127 : max / -8;
          const float dd = std::fabs(sc - fp16_to_f32(f32_to_fp16(sc)));
          for (int j = 0; j < B; ++j) {
            const bool top = t == BlockQuant::q4_0 && sc != 0 && xb[j] / sc > 7.5f;
            clamped += top;
            const double bound = (top ? 1.0 : 0.5) * std::fabs(sc) +
                                 (t == BlockQuant::q8_0 ? 127 : 8) * dd + 1e-6 * std::fabs(sc);
            ASSERT_LE(std::fabs(xb[j] - y[b * B + j]), bound) << "d " << d << " i " << i << " j " << j;
          }
        }
      }
      if (t == BlockQuant::q4_0) {
        EXPECT_GT(clamped, 0);  // the exception is exercised
      }
    }
}

// Every kernel path (tensor/isa.h) against the scalar references; paths this CPU lacks are skipped.
class BlockQuantPaths : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override { H1BKV_SKIP_UNSUPPORTED_ISA(GetParam()); }
};
INSTANTIATE_TEST_SUITE_P(Paths, BlockQuantPaths, ::testing::ValuesIn(h1bkv::testing::kAllIsas),
                         [](const auto& info) { return std::string(isa_name(info.param)); });

TEST_P(BlockQuantPaths, KernelsMatchScalar) {
  const h1bkv::testing::IsaScope path(GetParam());
  for (BlockQuant t : kTypes)
    for (int d : {8, 32, 64, 128}) {
      const int n = 37;
      const auto x = test_data(n, d, 3), q = randn(d, 4), w = randn(n, 5);
      const size_t vb = block_quant_bytes(t, d);
      std::vector<uint8_t> codes(n * vb);
      for (int i = 0; i < n; ++i) block_quant_encode(t, &x[i * d], d, &codes[i * vb]);
      std::vector<float> s1(n), s2(n);
      block_quant_score(t, q.data(), codes.data(), n, d, s1.data());
      block_quant_score_ref(t, q.data(), codes.data(), n, d, s2.data());
      std::vector<float> dec(d);
      for (int i = 0; i < n; ++i) {
        block_quant_decode(t, &codes[i * vb], d, dec.data());
        double exact = 0, mag = 0;
        for (int e = 0; e < d; ++e) exact += (double)q[e] * dec[e], mag += std::fabs(q[e] * dec[e]);
        EXPECT_NEAR(s1[i], s2[i], 1e-5 * mag + 1e-30);
        EXPECT_NEAR(s1[i], exact, 1e-5 * mag + 1e-30);
      }
      std::vector<float> a1(d, 0.25f), a2(d, 0.25f);
      block_quant_accumulate(t, w.data(), codes.data(), n, d, a1.data());
      block_quant_accumulate_ref(t, w.data(), codes.data(), n, d, a2.data());
      for (int e = 0; e < d; ++e) {
        double exact = 0.25, mag = 0.25;
        for (int i = 0; i < n; ++i) {
          block_quant_decode(t, &codes[i * vb], d, dec.data());
          exact += (double)w[i] * dec[e], mag += std::fabs(w[i] * dec[e]);
        }
        EXPECT_NEAR(a1[e], a2[e], 1e-5 * mag);
        EXPECT_NEAR(a1[e], exact, 1e-5 * mag);
      }
    }
}

TEST(BlockQuant, BytesPerToken) {
  const CacheGeometry smol{30, 9, 3, 64, 2048};  // SmolLM2-135M: 30 layers x 3 KV heads x 64
  EXPECT_EQ(block_quant_bytes(BlockQuant::q8_0, 64), 68u);
  EXPECT_EQ(block_quant_bytes(BlockQuant::q4_0, 64), 36u);
  EXPECT_EQ(block_quant_bytes(BlockQuant::q8_0, 8), 10u);  // stories260K: one block of 8
  EXPECT_EQ(block_quant_bytes(BlockQuant::q4_0, 8), 6u);
  EXPECT_DOUBLE_EQ(cache_bytes_per_token(parse_cache_spec("q8_0"), smol), (68 + 68) * 90.0);
  EXPECT_DOUBLE_EQ(cache_bytes_per_token(parse_cache_spec("q4_0"), smol), (36 + 36) * 90.0);
  EXPECT_DOUBLE_EQ(cache_bytes_per_token(plain_cache_spec("q8_0", "q4_0"), smol), (68 + 36) * 90.0);
  EXPECT_DOUBLE_EQ(cache_bytes_per_token(parse_cache_spec("plain:k=q4_0,v=f16"), smol), (36 + 128) * 90.0);
  auto cache = make_cache(parse_cache_spec("q8_0"), CacheGeometry{2, 4, 2, 64, 100});
  std::vector<float> kv(2 * 64 * 10, 0.5f);
  std::vector<int32_t> pos(10);
  for (int i = 0; i < 10; ++i) pos[i] = i;
  for (int il = 0; il < 2; ++il) cache->layer(il).append(10, pos.data(), kv.data(), kv.data());
  EXPECT_EQ(cache->bytes(), 10u * 2 * 2 * (68 + 68));
}

TEST(BlockQuant, HeadDimErrors) {
  for (const char* name : {"q8_0", "q4_0"}) {
    try {
      make_key_codec(name, 48);
      FAIL() << name;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("head_dim 48"), std::string::npos) << e.what();
    }
    EXPECT_THROW(make_value_codec(name, 80), Error);
    EXPECT_NO_THROW(make_value_codec(name, 96));
  }
  EXPECT_THROW(make_key_codec("q4_0", 7), Error);
}

// Attention through the cache vs exact attention (double). The score of key t moves by at most
// eps_t = scale sum_c |q_c| err_tc, with err_tc the element bound above (from the decoded codes:
// here simply |k_tc - k^_tc|, measured, which that bound caps); then every softmax weight moves
// by a factor within exp(+-2 eps), eps = max_t eps_t, so |out - out^| <= (exp(2 eps) - 1) max|v^|
// + max |v - v^|.
TEST(BlockQuant, CacheAttentionCloseToExact) {
  for (const char* spec : {"q8_0", "q4_0", "plain:k=q8_0,v=q4_0"})
    for (int d : {8, 64}) {
      const CacheGeometry g{1, 4, 2, d, 64};
      const int n = 50;
      const float scale = 1.0f / std::sqrt((float)d);
      const auto k = randn((size_t)n * 2 * d, 21), v = randn((size_t)n * 2 * d, 22);
      const auto q = randn((size_t)n * 4 * d, 23);
      std::vector<int32_t> pos(n);
      for (int i = 0; i < n; ++i) pos[i] = i;
      auto cache = make_cache(parse_cache_spec(spec), g);
      cache->layer(0).append(n, pos.data(), k.data(), v.data());
      std::vector<float> out((size_t)n * 4 * d);
      cache->layer(0).attend(n, pos.data(), q.data(), scale, out.data());
      // decoded keys and values, as the cache holds them
      const CacheSpec cs = parse_cache_spec(spec);
      const BlockQuant kt = cs.type == "q4_0" ? BlockQuant::q4_0 : BlockQuant::q8_0;
      const BlockQuant vt = cs.type == "q8_0" ? BlockQuant::q8_0 : BlockQuant::q4_0;
      std::vector<float> kh(k.size()), vh(v.size());
      std::vector<uint8_t> buf(block_quant_bytes(BlockQuant::q8_0, d));
      for (size_t r = 0; r < k.size() / d; ++r) {
        block_quant_encode(kt, &k[r * d], d, buf.data());
        block_quant_decode(kt, buf.data(), d, &kh[r * d]);
        block_quant_encode(vt, &v[r * d], d, buf.data());
        block_quant_decode(vt, buf.data(), d, &vh[r * d]);
      }
      const auto exact = naive_attention(g, k, v, q, pos, pos, scale);
      const auto on_decoded = naive_attention(g, kh, vh, q, pos, pos, scale);
      double vmax = 0, verr = 0;
      for (size_t j = 0; j < v.size(); ++j) vmax = std::max(vmax, (double)std::fabs(vh[j])), verr = std::max(verr, (double)std::fabs(v[j] - vh[j]));
      for (int i = 0; i < n; ++i)
        for (int h = 0; h < 4; ++h) {
          double eps = 0;
          for (int t = 0; t <= i; ++t) {
            double e = 0;
            for (int c = 0; c < d; ++c)
              e += std::fabs(q[(i * 4 + h) * d + c]) * std::fabs(k[(t * 2 + h / 2) * d + c] - kh[(t * 2 + h / 2) * d + c]);
            eps = std::max(eps, e * scale);
          }
          const double tol = (std::exp(2 * eps) - 1) * vmax + verr + 1e-5;
          for (int c = 0; c < d; ++c) {
            const size_t o = (size_t)(i * 4 + h) * d + c;
            ASSERT_NEAR(out[o], exact[o], tol) << spec << " d " << d << " query " << i;
            ASSERT_NEAR(out[o], on_decoded[o], 1e-4) << spec << " d " << d << " query " << i;
          }
        }
    }
}

// The group kernels (one decode per block for the query heads of a KV head) give exactly what the
// single-head kernels give, head by head.
TEST(BlockQuant, GroupKernelsEqualSingleHead) {
  for (BlockQuant t : {BlockQuant::q8_0, BlockQuant::q4_0})
    for (int d : {8, 64, 128})
      for (int G : {1, 3, 4}) {
        const int64_t n = 37;
        const size_t vb = block_quant_bytes(t, d);
        std::mt19937 rng(d * 10 + G);
        std::normal_distribution<float> nd(0.0f, 1.0f);
        std::vector<uint8_t> codes(n * vb);
        std::vector<float> x(d);
        for (int64_t i = 0; i < n; ++i) {
          for (float& v : x) v = nd(rng);
          block_quant_encode(t, x.data(), d, codes.data() + i * vb);
        }
        std::vector<std::vector<float>> q(G, std::vector<float>(d)), w(G, std::vector<float>(n));
        for (auto& r : q)
          for (float& v : r) v = nd(rng);
        for (auto& r : w)
          for (float& v : r) v = std::fabs(nd(rng));
        std::vector<std::vector<float>> s1(G, std::vector<float>(n)), s2 = s1;
        std::vector<std::vector<float>> a1(G, std::vector<float>(d, 0.5f)), a2 = a1;
        std::vector<const float*> qp(G), wp(G);
        std::vector<float*> s2p(G), a2p(G);
        for (int g = 0; g < G; ++g) {
          qp[g] = q[g].data(), wp[g] = w[g].data(), s2p[g] = s2[g].data(), a2p[g] = a2[g].data();
          block_quant_score(t, q[g].data(), codes.data(), n, d, s1[g].data());
          block_quant_accumulate(t, w[g].data(), codes.data(), n, d, a1[g].data());
        }
        block_quant_score_group(t, qp.data(), G, codes.data(), n, d, s2p.data());
        block_quant_accumulate_group(t, wp.data(), G, codes.data(), n, d, a2p.data());
        EXPECT_EQ(s1, s2) << "d " << d << " G " << G;
        EXPECT_EQ(a1, a2) << "d " << d << " G " << G;
      }
}
