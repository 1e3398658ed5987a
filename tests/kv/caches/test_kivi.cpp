// The kivi cache (kv/kivi_cache.h, kv/kivi_quant.h): bits=16 == exact attention, 2/4/8-bit
// reconstruction within the min/max bound, the residual boundary exactly as specified, batched ==
// token-by-token (and after a rewind), bytes == formula, option errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kv/cache.h"
#include "kv/codecs/kivi_quant.h"
#include "kv/registry.h"
#include "util/error.h"
#include "util/fp16.h"

#include "kv/random.h"
#include "kv/reference_attention.h"

using namespace h1bkv;

namespace {

CacheGeometry geom(int d, int64_t ctx = 256) { return CacheGeometry{1, 4, 2, d, ctx}; }  // 2 query heads per KV head

std::vector<float> f16_round(std::vector<float> x) {
  for (float& v : x) v = fp16_to_f32(f32_to_fp16(v));
  return x;
}

std::vector<int32_t> positions(int n) {
  std::vector<int32_t> p(n);
  for (int i = 0; i < n; ++i) p[i] = i;
  return p;
}

// Keys with a per-channel offset and scale (the outlier channels KIVI quantizes per channel).
std::vector<float> keys(int n, int nkv, int d, uint32_t seed) {
  auto k = randn((size_t)n * nkv * d, seed);
  for (size_t r = 0; r < (size_t)n * nkv; ++r)
    for (int c = 0; c < d; ++c) k[r * d + c] = k[r * d + c] * (1 + c % 5) + (c % 7 == 0 ? 4.0f : 0.0f);
  return k;
}

// All n queries, appended in chunks of `chunk` tokens, each chunk's queries attended after it.
std::vector<float> run(const std::string& spec, const CacheGeometry& g, const std::vector<float>& k,
                       const std::vector<float>& v, const std::vector<float>& q, int n, int chunk) {
  auto cache = make_cache(parse_cache_spec(spec), g);
  const auto pos = positions(n);
  const size_t kr = (size_t)g.n_kv_head * g.head_dim, qr = (size_t)g.n_head * g.head_dim;
  std::vector<float> out(n * qr);
  const float scale = 1.0f / std::sqrt((float)g.head_dim);
  for (int t = 0; t < n; t += chunk) {
    const int m = std::min(chunk, n - t);
    cache->layer(0).append(m, &pos[t], &k[t * kr], &v[t * kr]);
    cache->layer(0).attend(m, &pos[t], &q[t * qr], scale, &out[t * qr]);
  }
  return out;
}

}  // namespace

TEST(Kivi, Bits16EqualsExactAttention) {
  for (int d : {8, 64}) {
    const CacheGeometry g = geom(d);
    const int n = 70;
    const auto k = keys(n, 2, d, 1), v = randn((size_t)n * 2 * d, 2), q = randn((size_t)n * 4 * d, 3);
    const auto out = run("kivi:bits=16,group=8,residual=16", g, k, v, q, n, n);
    const auto pos = positions(n);
    const float scale = 1.0f / std::sqrt((float)d);
    const auto exact16 = naive_attention(g, f16_round(k), f16_round(v), q, pos, pos, scale);
    const auto exact = naive_attention(g, k, v, q, pos, pos, scale);
    const auto f16 = run("f16", g, k, v, q, n, n);  // the same f16 data through the plain cache
    for (size_t j = 0; j < out.size(); ++j) {
      ASSERT_NEAR(out[j], f16[j], 1e-5) << "d " << d << " at " << j;
      ASSERT_NEAR(out[j], exact16[j], 2e-5) << "d " << d << " at " << j;
      ASSERT_NEAR(out[j], exact[j], 5e-3) << "d " << d << " at " << j;
    }
  }
}

// |x - x^| <= s/2 with s the stored scale, and s covers the group's range: s <= (range + the
// rounding of the minimum down to fp16) / (2^bits - 1), rounded up by at most 2^-9 relative.
// So |x - x^| <= (range + 2^-10 |min| + 2^-24) / (2^bits - 1) / 2 * (1 + 2^-9), plus the f32
// rounding of the code arithmetic (1e-6 of the magnitudes).
TEST(Kivi, ReconstructionWithinMinMaxBound) {
  for (int bits : {2, 4, 8})
    for (int vg : {8, 32, 64}) {
      const int d = 64, G = 32, levels = (1 << bits) - 1;
      const KiviLayout L = kivi_layout(d, bits, G, vg);
      const auto k = keys(G, 1, d, 10 + bits), v = randn((size_t)G * d, 20 + bits);
      std::vector<uint8_t> grp(L.head_bytes());
      kivi_quantize_group(L, k.data(), v.data(), grp.data());
      std::vector<float> kh((size_t)G * d), vh(d);
      kivi_decode_keys(L, grp.data(), kh.data());
      auto bound = [&](const float* x, int n, size_t stride) {
        float mn = x[0], mx = x[0];
        for (int i = 1; i < n; ++i) mn = std::min(mn, x[i * stride]), mx = std::max(mx, x[i * stride]);
        return ((double)mx - mn + std::fabs(mn) / 1024 + 6e-8) / levels / 2 * (1 + 1.0 / 512) +
               1e-6 * (std::fabs(mn) + std::fabs(mx));
      };
      double worst = 0;  // largest error / bound seen
      for (int c = 0; c < d; ++c) {  // keys: per channel over the G tokens
        const double b = bound(&k[c], G, d);
        for (int t = 0; t < G; ++t) {
          const double e = std::fabs(k[t * d + c] - kh[t * d + c]);
          ASSERT_LE(e, b) << "bits " << bits << " key channel " << c << " token " << t;
          worst = std::max(worst, e / b);
        }
      }
      for (int t = 0; t < G; ++t) {  // values: per token over groups of vg channels
        kivi_decode_value(L, grp.data(), t, vh.data());
        for (int c = 0; c < d; ++c) {
          const double b = bound(&v[t * d + c / vg * vg], vg, 1);
          ASSERT_LE(std::fabs(v[t * d + c] - vh[c]), b) << "bits " << bits << " value token " << t << " channel " << c;
        }
      }
      EXPECT_GT(worst, 0.5);  // the bound is not loose by orders of magnitude
    }
}

// For a query at index i, token t comes from the quantized store iff (t/G + 1) G <= (i+1) - R.
// Expected outputs: exact attention over that mix of decoded quantized tokens and f16 tokens.
// Moving the boundary by one group changes the outputs, so the test sees an off-by-one.
TEST(Kivi, ResidualBoundaryExactlyAsSpecified) {
  for (int d : {8, 64})
    for (int R : {0, 5, 6}) {
      const int G = 4, n = 40, nkv = 2;
      const CacheGeometry g = geom(d);
      const std::string spec = "kivi:bits=2,group=4,vgroup=8,residual=" + std::to_string(R);
      const auto k = keys(n, nkv, d, 7), v = randn((size_t)n * nkv * d, 8), q = randn((size_t)n * 4 * d, 9);
      const auto out = run(spec, g, k, v, q, n, n);
      const auto kf = f16_round(k), vf = f16_round(v);
      // decoded quantized copies of every complete group, from the f16 copies (as the cache does)
      const KiviLayout L = kivi_layout(d, 2, G, 8);
      std::vector<float> kq(kf.size()), vq(vf.size());
      std::vector<float> gk((size_t)G * d), gv((size_t)G * d), dec((size_t)G * d);
      std::vector<uint8_t> grp(L.head_bytes());
      for (int gi = 0; gi < n / G; ++gi)
        for (int hk = 0; hk < nkv; ++hk) {
          for (int j = 0; j < G; ++j)
            for (int c = 0; c < d; ++c) {
              gk[j * d + c] = kf[((gi * G + j) * nkv + hk) * d + c];
              gv[j * d + c] = vf[((gi * G + j) * nkv + hk) * d + c];
            }
          kivi_quantize_group(L, gk.data(), gv.data(), grp.data());
          kivi_decode_keys(L, grp.data(), dec.data());
          for (int j = 0; j < G; ++j) {
            std::copy(&dec[j * d], &dec[(j + 1) * d], &kq[((gi * G + j) * nkv + hk) * d]);
            kivi_decode_value(L, grp.data(), j, &vq[((gi * G + j) * nkv + hk) * d]);
          }
        }
      const float scale = 1.0f / std::sqrt((float)d);
      int moved_differs = 0;
      for (int i = 0; i < n; ++i) {
        auto expect = [&](int shift) {  // boundary moved by `shift` groups
          std::vector<float> km = kf, vm = vf;
          for (int t = 0; t <= i; ++t)
            if ((t / G + 1 + shift) * G <= (i + 1) - R)
              for (int c = 0; c < nkv * d; ++c) km[t * nkv * d + c] = kq[t * nkv * d + c], vm[t * nkv * d + c] = vq[t * nkv * d + c];
          const std::vector<float> qi(&q[(size_t)i * 4 * d], &q[(size_t)(i + 1) * 4 * d]);
          return naive_attention(g, km, vm, qi, positions(n), {i}, scale);
        };
        const auto want = expect(0);
        for (int j = 0; j < 4 * d; ++j)
          ASSERT_NEAR(out[(size_t)i * 4 * d + j], want[j], 2e-5) << "d " << d << " R " << R << " query " << i;
        for (int shift : {-1, 1}) {
          const auto other = expect(shift);
          double diff = 0;
          for (int j = 0; j < 4 * d; ++j) diff = std::max(diff, (double)std::fabs(other[j] - want[j]));
          moved_differs += diff > 1e-3;
        }
      }
      EXPECT_GT(moved_differs, n / 2) << "d " << d << " R " << R;
    }
}

TEST(Kivi, BatchedEqualsTokenByToken) {
  for (const char* spec : {"kivi", "kivi:bits=4,group=8,residual=16,vgroup=16", "kivi:bits=2,group=5,residual=0"}) {
    const int d = 64, n = 150;
    const CacheGeometry g = geom(d);
    const auto k = keys(n, 2, d, 4), v = randn((size_t)n * 2 * d, 5), q = randn((size_t)n * 4 * d, 6);
    const auto one = run(spec, g, k, v, q, n, 1);
    for (int chunk : {n, 7, 64}) {
      const auto batched = run(spec, g, k, v, q, n, chunk);
      for (size_t j = 0; j < one.size(); ++j)
        ASSERT_EQ(batched[j], one[j]) << spec << " chunk " << chunk << " at " << j;
    }
  }
}

// Rewinding within the last batch appended and re-appending gives the same outputs; a deeper
// rewind, once the f16 copies it needs are gone, is an Error.
TEST(Kivi, TruncateWithinLastBatch) {
  const int d = 8, n = 120, G = 8;
  const CacheGeometry g = geom(d);
  const auto k = keys(n, 2, d, 11), v = randn((size_t)n * 2 * d, 12), q = randn((size_t)n * 4 * d, 13);
  const std::string spec = "kivi:bits=2,group=8,residual=16";
  const auto one = run(spec, g, k, v, q, n, 1);
  const auto pos = positions(n);
  const float scale = 1.0f / std::sqrt((float)d);
  for (int back : {1, 5, 8, 20}) {
    auto cache = make_cache(parse_cache_spec(spec), g);
    LayerCache& c = cache->layer(0);
    c.append(60, pos.data(), k.data(), v.data());
    c.append(20, &pos[60], &k[60 * 2 * d], &v[60 * 2 * d]);  // last batch: 20 tokens
    c.truncate(80 - back);
    const int m = 80 - back;
    EXPECT_EQ(c.n_tokens(), m);
    std::vector<float> out((size_t)(n - m) * 4 * d);
    for (int t = m; t < n; ++t) {
      c.append(1, &pos[t], &k[t * 2 * d], &v[t * 2 * d]);
      c.attend(1, &pos[t], &q[t * 4 * d], scale, &out[(size_t)(t - m) * 4 * d]);
    }
    for (size_t j = 0; j < out.size(); ++j) ASSERT_EQ(out[j], one[(size_t)m * 4 * d + j]) << "back " << back;
  }
  auto cache = make_cache(parse_cache_spec(spec), g);
  for (int t = 0; t < 100; ++t) cache->layer(0).append(1, &pos[t], &k[t * 2 * d], &v[t * 2 * d]);
  EXPECT_NO_THROW(cache->layer(0).truncate(99));
  EXPECT_THROW(cache->layer(0).truncate(50), Error);  // f16 copies of tokens < 96 - 16 are gone
  EXPECT_EQ(cache->layer(0).n_tokens(), 99);
  cache->clear();
  EXPECT_EQ(cache->n_tokens(), 0);
  EXPECT_EQ(cache->bytes(), 0u);
  (void)G;
}

TEST(Kivi, BytesMatchFormula) {
  const CacheGeometry smol{30, 9, 3, 64, 2048};  // SmolLM2-135M
  // keys 64*2/8 + 4*64/32, values 64*2/8 + 4*64/32 = 48 bytes per token and KV head
  EXPECT_DOUBLE_EQ(cache_bytes_per_token(parse_cache_spec("kivi"), smol), 48.0 * 90);
  EXPECT_DOUBLE_EQ(cache_bytes_per_token(parse_cache_spec("kivi:bits=4,vgroup=64"), smol), (32 + 8 + 32 + 4) * 90.0);
  EXPECT_DOUBLE_EQ(cache_bytes_per_token(parse_cache_spec("kivi:bits=16"), smol), 256.0 * 90);
  // the equal-bytes rows of h1b b=128 / b=256 with est=qjl (54 / 70 bytes per layer and KV head):
  // 2- or 4-bit keys over 128-token groups, 4-bit values over the whole head
  EXPECT_DOUBLE_EQ(cache_bytes_per_token(parse_cache_spec("kivi:bits=2,group=128,vbits=4,vgroup=64"), smol), 54.0 * 90);
  EXPECT_DOUBLE_EQ(cache_bytes_per_token(parse_cache_spec("h1b:bits=128,est=qjl"), smol), 54.0 * 90);
  EXPECT_DOUBLE_EQ(cache_bytes_per_token(parse_cache_spec("kivi:bits=4,group=128,vgroup=64"), smol), 70.0 * 90);
  EXPECT_DOUBLE_EQ(cache_bytes_per_token(parse_cache_spec("h1b:bits=256,est=qjl"), smol), 70.0 * 90);
  EXPECT_DOUBLE_EQ(cache_fixed_bytes(parse_cache_spec("kivi"), smol), (128 + 31) * 256.0 * 90);
  for (const char* spec : {"kivi:bits=2,group=8,residual=16,vgroup=16", "kivi:bits=4,group=6,residual=3",
                           "kivi:bits=16,group=4,residual=10", "kivi:bits=2,group=8,residual=4,vbits=8"}) {
    const int d = 32, n = 100;
    const CacheGeometry g{2, 4, 2, d, 256};
    const CacheSpec cs = parse_cache_spec(spec);
    const int64_t G = cs.get_int("group"), R = cs.get_int("residual");
    const double per_tok = cache_bytes_per_token(cs, g);  // all layers
    const double fixed = cache_fixed_bytes(cs, g);
    auto cache = make_cache(cs, g);
    const auto k = keys(n, 2, d, 1), v = randn((size_t)n * 2 * d, 2);
    const auto pos = positions(n);
    double max_f16 = 0;
    for (int t = 0; t < n; ++t) {
      for (int il = 0; il < 2; ++il) cache->layer(il).append(1, &pos[t], &k[t * 2 * d], &v[t * 2 * d]);
      const int64_t held = t + 1, quant = held / G * G;
      const int64_t f16 = held - std::max<int64_t>(0, held - R) / G * G;  // the residual of the next query
      const double f16_bytes = (double)f16 * 4 * d * 2 * 2;               // K + V, 2 KV heads, 2 layers
      ASSERT_DOUBLE_EQ((double)cache->bytes(), quant * per_tok + f16_bytes) << spec << " at " << held;
      ASSERT_GE(cache->capacity_bytes(), cache->bytes());
      max_f16 = std::max(max_f16, f16_bytes);
    }
    EXPECT_DOUBLE_EQ(max_f16, fixed) << spec;  // steady decoding holds at most R + G - 1 f16 tokens
  }
}

TEST(Kivi, BadOptionsNameTheOption) {
  auto message = [](const std::string& spec, int d = 64) {
    try {
      make_cache(parse_cache_spec(spec), geom(d));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("kivi:group=0").find("'group'"), std::string::npos) << message("kivi:group=0");
  EXPECT_NE(message("kivi:residual=-1").find("'residual'"), std::string::npos) << message("kivi:residual=-1");
  EXPECT_NE(message("kivi:vgroup=0").find("'vgroup'"), std::string::npos);
  EXPECT_NE(message("kivi:vgroup=24").find("'vgroup'"), std::string::npos) << message("kivi:vgroup=24");
  EXPECT_NE(message("kivi:bits=3").find("'bits'"), std::string::npos);
  EXPECT_NE(message("kivi:bits=2", 6).find("head_dim 6"), std::string::npos) << message("kivi:bits=2", 6);
  EXPECT_EQ(message("kivi:vgroup=128"), "no error");  // clamped to head_dim
  EXPECT_EQ(message("kivi:residual=0,group=1"), "no error");
}
