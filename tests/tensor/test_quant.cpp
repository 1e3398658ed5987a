// dequantize_row: hand-built blocks with known values per type, and quantize -> dequantize
// round trips through the test-side encoders in ref_quant.h.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "io/ggml_type.h"
#include "ref_quant.h"
#include "tensor/quant.h"
#include "util/error.h"

using namespace h1bkv;
using namespace h1bkv::testing;

namespace {
constexpr uint32_t T(GgmlType t) { return static_cast<uint32_t>(t); }
}  // namespace

TEST(Quant, SupportedTypes) {
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0,
                     GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q4_K, GgmlType::Q6_K})
    EXPECT_TRUE(weight_type_supported(T(t))) << ggml_type_name(T(t));
  for (GgmlType t : {GgmlType::Q8_1, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q5_K, GgmlType::Q8_K,
                     GgmlType::I8, GgmlType::I32, GgmlType::F64})
    EXPECT_FALSE(weight_type_supported(T(t))) << ggml_type_name(T(t));
  EXPECT_FALSE(weight_type_supported(99));
}

TEST(Quant, UnsupportedTypeAndBadLengthThrow) {
  uint8_t buf[256] = {};
  float out[256];
  EXPECT_THROW(dequantize_row(T(GgmlType::Q2_K), buf, out, 256), Error);
  EXPECT_THROW(dequantize_row(77, buf, out, 32), Error);
  EXPECT_THROW(dequantize_row(T(GgmlType::Q4_0), buf, out, 16), Error);  // not a whole block
}

TEST(Quant, PlainFloatTypes) {
  const uint16_t f16[4] = {0x3C00, 0xC000, 0x3800, 0x7BFF};  // 1, -2, 0.5, 65504
  const uint16_t bf16[3] = {0x3F80, 0xC000, 0x4049};          // 1, -2, 3.140625
  const float f32[2] = {1.25f, -7.5f};
  float out[4];
  dequantize_row(T(GgmlType::F16), f16, out, 4);
  EXPECT_EQ(out[0], 1.0f); EXPECT_EQ(out[1], -2.0f); EXPECT_EQ(out[2], 0.5f); EXPECT_EQ(out[3], 65504.0f);
  dequantize_row(T(GgmlType::BF16), bf16, out, 3);
  EXPECT_EQ(out[0], 1.0f); EXPECT_EQ(out[1], -2.0f); EXPECT_EQ(out[2], 3.140625f);
  dequantize_row(T(GgmlType::F32), f32, out, 2);
  EXPECT_EQ(out[0], 1.25f); EXPECT_EQ(out[1], -7.5f);
}

TEST(Quant, Q4_0Block) {  // d = 0.5 (0x3800); qs[j] = j | (15-j)<<4
  uint8_t b[18] = {0x00, 0x38};
  for (int j = 0; j < 16; ++j) b[2 + j] = (uint8_t)(j | ((15 - j) << 4));
  float y[32];
  dequantize_row(T(GgmlType::Q4_0), b, y, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], (j - 8) * 0.5f) << j;
    EXPECT_EQ(y[j + 16], (15 - j - 8) * 0.5f) << j;
  }
}

TEST(Quant, Q4_1Block) {  // d = 0.25 (0x3400), m = -1 (0xBC00)
  uint8_t b[20] = {0x00, 0x34, 0x00, 0xBC};
  for (int j = 0; j < 16; ++j) b[4 + j] = (uint8_t)(j | ((15 - j) << 4));
  float y[32];
  dequantize_row(T(GgmlType::Q4_1), b, y, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], j * 0.25f - 1.0f) << j;
    EXPECT_EQ(y[j + 16], (15 - j) * 0.25f - 1.0f) << j;
  }
}

TEST(Quant, Q5_0AndQ5_1Blocks) {
  // qh = 0xF00FA5C3 little endian: bit j is the 5th bit of element j.
  const uint32_t qh = 0xF00FA5C3u;
  uint8_t b0[22] = {0x00, 0x38};  // Q5_0, d = 0.5
  uint8_t b1[24] = {0x00, 0x34, 0x00, 0x40};  // Q5_1, d = 0.25, m = 2
  std::memcpy(b0 + 2, &qh, 4);
  std::memcpy(b1 + 4, &qh, 4);
  for (int j = 0; j < 16; ++j) b0[6 + j] = b1[8 + j] = (uint8_t)(((3 * j) & 15) | ((j ^ 5) << 4));
  float y0[32], y1[32];
  dequantize_row(T(GgmlType::Q5_0), b0, y0, 32);
  dequantize_row(T(GgmlType::Q5_1), b1, y1, 32);
  for (int e = 0; e < 32; ++e) {
    const int lo = e < 16 ? ((3 * e) & 15) : ((e - 16) ^ 5);
    const int q = lo | (int)(((qh >> e) & 1) << 4);
    EXPECT_EQ(y0[e], (q - 16) * 0.5f) << e;
    EXPECT_EQ(y1[e], q * 0.25f + 2.0f) << e;
  }
}

TEST(Quant, Q8_0Block) {  // d = 2 (0x4000), qs[j] = j - 16
  uint8_t b[34] = {0x00, 0x40};
  for (int j = 0; j < 32; ++j) b[2 + j] = (uint8_t)(int8_t)(j - 16);
  float y[32];
  dequantize_row(T(GgmlType::Q8_0), b, y, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], (j - 16) * 2.0f) << j;
}

TEST(Quant, Q4_KScaleUnpackingAndBlock) {
  // scales sc = {1,2,3,4,17,18,35,63}, mins mn = {5,6,7,8,20,33,49,62}, packed by hand:
  //   bytes 0..3  = sc[j] | (sc[j+4]>>4)<<6      = 65, 66, 131, 196
  //   bytes 4..7  = mn[j] | (mn[j+4]>>4)<<6      = 69, 134, 199, 200
  //   bytes 8..11 = (sc[j+4]&15) | (mn[j+4]&15)<<4 = 65, 18, 19, 239
  const int sc[8] = {1, 2, 3, 4, 17, 18, 35, 63}, mn[8] = {5, 6, 7, 8, 20, 33, 49, 62};
  const uint8_t scales[12] = {65, 66, 131, 196, 69, 134, 199, 200, 65, 18, 19, 239};
  uint8_t packed[12];
  pack_q4k_scales(sc, mn, packed);
  ASSERT_EQ(0, std::memcmp(packed, scales, 12));  // the test encoder agrees with the hand packing
  uint8_t b[144] = {0x00, 0x3C, 0x00, 0x38};  // d = 1, dmin = 0.5
  std::memcpy(b + 4, scales, 12);
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) b[16 + 32 * c + l] = (uint8_t)((l % 16) | ((15 - l % 16) << 4));
  float y[256];
  dequantize_row(T(GgmlType::Q4_K), b, y, 256);
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      EXPECT_EQ(y[64 * c + l], sc[2 * c] * (l % 16) - 0.5f * mn[2 * c]) << c << " " << l;
      EXPECT_EQ(y[64 * c + 32 + l], sc[2 * c + 1] * (15 - l % 16) - 0.5f * mn[2 * c + 1]) << c << " " << l;
    }
}

TEST(Quant, Q6_KBlock) {
  // 6-bit values v(e) = 7e mod 64, scales[j] = (j odd ? -1 : 1) * (j + 1), d = 0.25.
  int q[256];
  for (int e = 0; e < 256; ++e) q[e] = (7 * e) % 64;
  uint8_t b[210];
  pack_q6_k(q, b);
  for (int j = 0; j < 16; ++j) b[192 + j] = (uint8_t)(int8_t)((j % 2 ? -1 : 1) * (j + 1));
  b[208] = 0x00; b[209] = 0x34;  // 0.25
  // spot-check the packing against the layout by hand: e = 0..3 live in ql[0] and qh[0]
  EXPECT_EQ(b[0], (uint8_t)((q[0] & 15) | ((q[64] & 15) << 4)));
  EXPECT_EQ(b[128], (uint8_t)((q[0] >> 4) | ((q[32] >> 4) << 2) | ((q[64] >> 4) << 4) | ((q[96] >> 4) << 6)));
  float y[256];
  dequantize_row(T(GgmlType::Q6_K), b, y, 256);
  for (int e = 0; e < 256; ++e) {
    const int s = (e / 16 % 2 ? -1 : 1) * (e / 16 + 1);
    EXPECT_EQ(y[e], 0.25f * s * (q[e] - 32)) << e;
  }
}

// Round trips: quantize random rows, dequantize, error within one quantization step.
class RoundTrip : public ::testing::TestWithParam<GgmlType> {};

TEST_P(RoundTrip, WithinStep) {
  const uint32_t type = T(GetParam());
  const int64_t cols = 512, rows = 3;
  const std::vector<float> x = random_normal(rows * cols, 11 + type);
  size_t rb;
  const std::vector<uint8_t> q = quantize_matrix(type, x, rows, cols, &rb);
  std::vector<float> y(cols);
  // step = range / levels of each type's block; error must stay below ~half a step, plus slack
  // for scales rounded to fp16 / 6 bits (K types).
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row(type, q.data() + r * rb, y.data(), cols);
    const float* xr = x.data() + r * cols;
    const int be = ggml_type_info(type)->block_elems;
    const int blk = be == 1 ? 32 : (GetParam() == GgmlType::Q4_K ? 32 : GetParam() == GgmlType::Q6_K ? 16 : be);
    for (int64_t b0 = 0; b0 < cols; b0 += blk) {
      float lo = 0, hi = 0;
      for (int j = 0; j < blk; ++j) lo = std::min(lo, xr[b0 + j]), hi = std::max(hi, xr[b0 + j]);
      float tol;
      switch (GetParam()) {
        case GgmlType::F32: tol = 0; break;
        case GgmlType::F16: tol = std::max(-lo, hi) * 0x1p-11f; break;
        case GgmlType::BF16: tol = std::max(-lo, hi) * 0x1p-8f; break;
        case GgmlType::Q8_0: tol = 0.51f * std::max(-lo, hi) / 127; break;
        case GgmlType::Q4_0: tol = 0.51f * std::max(-lo, hi) / 7; break;
        case GgmlType::Q5_0: tol = 0.51f * std::max(-lo, hi) / 15; break;
        case GgmlType::Q4_1: tol = 0.51f * (hi - lo) / 15; break;
        case GgmlType::Q5_1: tol = 0.51f * (hi - lo) / 31; break;
        case GgmlType::Q4_K: tol = 1.0f * (hi - lo) / 15; break;  // 6-bit scale/min rounding
        default: tol = 1.0f * std::max(-lo, hi) / 31; break;      // Q6_K, 8-bit scales
      }
      for (int j = 0; j < blk; ++j)
        ASSERT_LE(std::fabs(y[b0 + j] - xr[b0 + j]), tol + 1e-6f)
            << ggml_type_name(type) << " row " << r << " col " << b0 + j;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, RoundTrip,
                         ::testing::Values(GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0,
                                           GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
                                           GgmlType::Q4_K, GgmlType::Q6_K),
                         [](const auto& info) { return std::string(ggml_type_name(T(info.param))); });
