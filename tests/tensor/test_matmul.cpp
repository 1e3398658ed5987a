// matmul / matmul_ref against a float reference (dequantized W, double dots), every kernel path
// (tensor/isa.h: scalar, avx2, avx512, neon; unsupported ones skipped) vs the scalar references,
// token tiling (n = 1 vs n > 1), odd row counts and thread counts, activation quantizers.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "io/ggml_type.h"
#include "ref_quant.h"
#include "tensor/isa_paths.h"
#include "tensor/blocks.h"
#include "tensor/kernels.h"
#include "tensor/matmul.h"
#include "tensor/pack.h"
#include "tensor/quant.h"
#include "util/error.h"

using namespace h1bkv;
using namespace h1bkv::testing;

namespace {

constexpr uint32_t T(GgmlType t) { return static_cast<uint32_t>(t); }

struct Case {
  uint32_t type;
  int64_t rows, cols;
  std::vector<uint8_t> data;
  WeightView w;
  std::vector<float> deq;  // [rows][cols] dequantized weights
};

Case make_case(uint32_t type, int64_t rows, int64_t cols, uint32_t seed) {
  Case c{type, rows, cols, {}, {}, {}};
  const std::vector<float> wf = random_normal(rows * cols, seed, 0.05f);
  size_t rb;
  c.data = quantize_matrix(type, wf, rows, cols, &rb);
  c.w = WeightView{type, rows, cols, rb, c.data.data()};
  c.deq.resize(rows * cols);
  for (int64_t r = 0; r < rows; ++r) dequantize_row(type, c.data.data() + r * rb, c.deq.data() + r * cols, cols);
  return c;
}

// Bound on |y - exact| for one dot, from the activation quantization: element j of x is
// represented with error <= d_x/2 (d_x = amax of its block / 127), the scales d_x (and s_x for
// Q8_1) are rounded to fp16 (relative 2^-11 each), plus f32 accumulation.
double error_bound(uint32_t type, const float* w, const float* x, int64_t cols) {
  const GgmlType t = static_cast<GgmlType>(type);
  const int blk = (t == GgmlType::Q4_K || t == GgmlType::Q6_K) ? 256 : 32;
  const bool quant_x = !(t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16);
  double bound = 0, sum_abs = 0, wmax = 0;
  for (int64_t j = 0; j < cols; ++j) wmax = std::max(wmax, (double)std::fabs(w[j]));
  for (int64_t b = 0; b < cols; b += blk) {
    double amax = 0;
    for (int j = 0; j < blk; ++j) amax = std::max(amax, (double)std::fabs(x[b + j]));
    for (int j = 0; j < blk; ++j) {
      const double wa = std::fabs(w[b + j]), xa = std::fabs(x[b + j]);
      sum_abs += wa * xa;
      if (quant_x) bound += wa * (amax / 127 / 2) + (wa + wmax) * xa * 0x1p-10;
    }
  }
  return bound + 1e-5 * sum_abs + 1e-7;
}

// Expected rms of that error: each quantized x_j is off by a roughly uniform amount in
// [-d_x/2, d_x/2], variance d_x^2/12, so sigma_y^2 = sum_j w_j^2 d_x^2 / 12.
double error_sigma(uint32_t type, const float* w, const float* x, int64_t cols) {
  const GgmlType t = static_cast<GgmlType>(type);
  const int blk = (t == GgmlType::Q4_K || t == GgmlType::Q6_K) ? 256 : 32;
  double var = 0;
  for (int64_t b = 0; b < cols; b += blk) {
    double amax = 0;
    for (int j = 0; j < blk; ++j) amax = std::max(amax, (double)std::fabs(x[b + j]));
    const double d = amax / 127;
    for (int j = 0; j < blk; ++j) var += (double)w[b + j] * w[b + j] * d * d / 12;
  }
  return std::sqrt(var);
}

double sum_abs_products(const float* w, const float* x, int64_t cols) {
  double s = 0;
  for (int64_t j = 0; j < cols; ++j) s += std::fabs((double)w[j] * x[j]);
  return s;
}

const GgmlType kAllTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0,
                              GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
                              GgmlType::Q4_K, GgmlType::Q6_K};

// (weight type, kernel path)
class Matmul : public ::testing::TestWithParam<std::tuple<GgmlType, Isa>> {
 protected:
  void SetUp() override { H1BKV_SKIP_UNSUPPORTED_ISA(isa()); }
  GgmlType type() const { return std::get<0>(GetParam()); }
  Isa isa() const { return std::get<1>(GetParam()); }
};

}  // namespace

TEST_P(Matmul, MatchesFloatReferenceAndScalarPath) {
  const IsaScope path(isa());
  const uint32_t type = T(this->type());
  const int64_t rows = 7, cols = 512, n = 6;
  Case c = make_case(type, rows, cols, 100 + type);
  const std::vector<float> x = random_normal(n * cols, 200 + type);
  std::vector<float> y(n * rows), yr(n * rows);
  matmul(c.w, x.data(), y.data(), n);
  matmul_ref(c.w, x.data(), yr.data(), n);
  const GgmlType gt = this->type();
  const bool quant_x = !(gt == GgmlType::F32 || gt == GgmlType::F16 || gt == GgmlType::BF16);
  double z2 = 0;  // mean of (error / sigma)^2 over all outputs: ~1 when errors are as expected
  for (int64_t t = 0; t < n; ++t)
    for (int64_t r = 0; r < rows; ++r) {
      const float* wr = c.deq.data() + r * cols;
      const float* xt = x.data() + t * cols;
      double exact = 0;
      for (int64_t j = 0; j < cols; ++j) exact += (double)wr[j] * xt[j];
      const double bound = error_bound(type, wr, xt, cols);
      if (quant_x) z2 += std::pow((y[t * rows + r] - exact) / error_sigma(type, wr, xt, cols), 2) / (n * rows);
      EXPECT_LE(std::fabs(y[t * rows + r] - exact), bound) << "t " << t << " r " << r;
      EXPECT_LE(std::fabs(yr[t * rows + r] - exact), bound) << "t " << t << " r " << r;
      // same quantized activations, same integer block dots: only f32 summation order differs
      EXPECT_LE(std::fabs(y[t * rows + r] - yr[t * rows + r]), 1e-5 * sum_abs_products(wr, xt, cols) + 1e-7)
          << "t " << t << " r " << r;
    }
  // statistical check, much tighter than the worst case: rms error within 2 sigma
  if (quant_x) {
    EXPECT_LE(z2, 4.0);
  }
}

TEST_P(Matmul, TilingAndThreadsDoNotChangeResults) {
  const IsaScope path(isa());
  const uint32_t type = T(this->type());
  const int64_t rows = 13, cols = 256, n = 7;  // 7 tokens = tiles of 4 + 3
  Case c = make_case(type, rows, cols, 300 + type);
  const std::vector<float> x = random_normal(n * cols, 400 + type);
  for (auto fn : {&matmul, &matmul_ref}) {
    std::vector<float> y2(n * rows), y1(n * rows), ysingle(rows);
    omp_set_num_threads(2);
    fn(c.w, x.data(), y2.data(), n);
    omp_set_num_threads(1);
    fn(c.w, x.data(), y1.data(), n);
    EXPECT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * 4)) << "1 vs 2 threads";
    omp_set_num_threads(2);
    for (int64_t t = 0; t < n; ++t) {
      fn(c.w, x.data() + t * cols, ysingle.data(), 1);
      for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(ysingle[r], y2[t * rows + r]) << "t " << t << " r " << r;
    }
  }
}

// The tile kernels (Q4_1, Q8_0 on avx512: 16 rows x up to 8 tokens per call) at shapes that
// leave partial tiles both ways: 37 rows (16 + 16 + 5), 11 tokens (8 + 3), 3 blocks per row (odd);
// the other types' row kernels at the same shapes.
// Every token's outputs equal those of a one-token call bit for bit, and the scalar path's
// within f32 rounding.
TEST_P(Matmul, PartialTilesMatchOneTokenCallsAndScalar) {
  const IsaScope path(isa());
  const uint32_t type = T(this->type());
  const int64_t rows = 37, cols = 3 * ggml_type_info(type)->block_elems, n = 11;
  Case c = make_case(type, rows, cols, 500 + type);
  const std::vector<float> x = random_normal(n * cols, 600 + type);
  std::vector<float> y(n * rows), yr(n * rows), y1(rows);
  matmul(c.w, x.data(), y.data(), n);
  matmul_ref(c.w, x.data(), yr.data(), n);
  for (int64_t t = 0; t < n; ++t) {
    matmul(c.w, x.data() + t * cols, y1.data(), 1);
    for (int64_t r = 0; r < rows; ++r) {
      ASSERT_EQ(y1[r], y[t * rows + r]) << "t " << t << " r " << r;
      const double tol = 1e-5 * sum_abs_products(c.deq.data() + r * cols, x.data() + t * cols, cols) + 1e-7;
      ASSERT_LE(std::fabs(y[t * rows + r] - yr[t * rows + r]), tol) << "t " << t << " r " << r;
    }
  }
}

// matmul_many (one job for a layer's Q/K/V or gate/up) gives what separate calls give, bit for
// bit, for 1 and 11 tokens, and falls back to separate calls for weights of different types.
TEST_P(Matmul, ManyEqualsSeparateCalls) {
  const IsaScope path(isa());
  const uint32_t type = T(this->type());
  const int64_t cols = 2 * ggml_type_info(type)->block_elems;
  Case a = make_case(type, 21, cols, 700 + type), b = make_case(type, 5, cols, 800 + type);
  Case other = make_case(T(type == T(GgmlType::F32) ? GgmlType::F16 : GgmlType::F32), 3, cols, 900);
  for (const int64_t n : {1, 11}) {
    const std::vector<float> x = random_normal(n * cols, 1000 + type + n);
    std::vector<float> ya(n * 21), yb(n * 5), yo(n * 3), ma(n * 21), mb(n * 5), mo(n * 3);
    matmul(a.w, x.data(), ya.data(), n);
    matmul(b.w, x.data(), yb.data(), n);
    matmul(other.w, x.data(), yo.data(), n);
    matmul_many({{&a.w, ma.data()}, {&b.w, mb.data()}}, x.data(), n);
    EXPECT_EQ(0, std::memcmp(ya.data(), ma.data(), ya.size() * 4)) << "n " << n;
    EXPECT_EQ(0, std::memcmp(yb.data(), mb.data(), yb.size() * 4)) << "n " << n;
    std::fill(ma.begin(), ma.end(), 0.0f);
    matmul_many({{&a.w, ma.data()}, {&other.w, mo.data()}}, x.data(), n);
    EXPECT_EQ(0, std::memcmp(ya.data(), ma.data(), ya.size() * 4)) << "mixed types, n " << n;
    EXPECT_EQ(0, std::memcmp(yo.data(), mo.data(), yo.size() * 4)) << "mixed types, n " << n;
  }
}

// Weights packed at load (tensor/pack.h) give the bits of the file's layout on every path (the
// packed kernels on avx512, ignored elsewhere), at 37 rows (two packed groups + 5 rows read from
// the file), padded rows and 1, 5 and 11 tokens; repack_wanted says yes exactly where packed
// kernels exist.
TEST_P(Matmul, PackedWeightsGiveTheFileLayoutsBits) {
  const IsaScope path(isa());
  const uint32_t type = T(this->type());
  const bool lanes = type == T(GgmlType::Q4_1) || type == T(GgmlType::Q8_0) || type == T(GgmlType::Q4_K) ||
                     type == T(GgmlType::Q6_K);
  EXPECT_EQ(repack_wanted(type), lanes && isa() == Isa::avx512);
  const int64_t rows = 37, cols = 3 * ggml_type_info(type)->block_elems;
  Case c = make_case(type, rows, cols, 1100 + type);
  // the same rows with 64 bytes of padding after each
  const size_t rb = c.w.row_bytes + 64;
  std::vector<uint8_t> padded(rows * rb, 0xA5);
  for (int64_t r = 0; r < rows; ++r) std::memcpy(&padded[r * rb], &c.data[r * c.w.row_bytes], c.w.row_bytes);
  for (const WeightView& file : {c.w, WeightView{type, rows, cols, rb, padded.data()}}) {
    PackedBytes pk = pack_lanes(file);
    EXPECT_EQ(pk.size, lanes ? 2 * packed_group_bytes(type, cols) : 0);
    WeightView w = file;
    w.packed = pk.data.get();
    for (const int64_t n : {1, 5, 11}) {
      const std::vector<float> x = random_normal(n * cols, 1200 + type + n);
      std::vector<float> yf(n * rows), yp(n * rows);
      matmul(file, x.data(), yf.data(), n);
      matmul(w, x.data(), yp.data(), n);
      EXPECT_EQ(0, std::memcmp(yf.data(), yp.data(), yf.size() * 4)) << "n " << n << " row_bytes " << file.row_bytes;
    }
    if (repack_wanted(type)) {  // the packed copy is what is read: a changed quant byte of row 0 shows
      pk.data.get()[3] ^= 0x11;  // row 0, first chunk read, byte 3
      const std::vector<float> x = random_normal(cols, 1300);
      std::vector<float> yf(rows), yp(rows);
      matmul(file, x.data(), yf.data(), 1);
      matmul(w, x.data(), yp.data(), 1);
      EXPECT_NE(yf[0], yp[0]);
      EXPECT_EQ(0, std::memcmp(yf.data() + 1, yp.data() + 1, (rows - 1) * 4));
    }
  }
  setenv("H1BKV_REPACK", "0", 1);
  EXPECT_FALSE(repack_wanted(type));
  unsetenv("H1BKV_REPACK");
}

INSTANTIATE_TEST_SUITE_P(AllTypes, Matmul,
                         ::testing::Combine(::testing::ValuesIn(kAllTypes), ::testing::ValuesIn(kAllIsas)),
                         [](const auto& info) {
                           return std::string(ggml_type_name(T(std::get<0>(info.param)))) + "_" +
                                  isa_name(std::get<1>(info.param));
                         });

// The SmolLM shapes on each path; the scalar path is matmul_ref itself, so it is left out.
class MatmulShapes : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override { H1BKV_SKIP_UNSUPPORTED_ISA(GetParam()); }
};
INSTANTIATE_TEST_SUITE_P(Paths, MatmulShapes, ::testing::Values(Isa::avx2, Isa::avx512, Isa::neon),
                         [](const auto& info) { return std::string(isa_name(info.param)); });

// The model's shapes (SmolLM2-135M: 576 wide, 1536 FFN) for its types, odd token counts.
TEST_P(MatmulShapes, SmolLMShapesVsScalar) {
  const IsaScope path(GetParam());
  struct S { GgmlType t; int64_t rows, cols, n; };
  for (const S s : {S{GgmlType::Q4_1, 192, 576, 1}, S{GgmlType::Q4_1, 1536, 576, 5},
                    S{GgmlType::Q4_1, 576, 1536, 3}, S{GgmlType::Q8_0, 333, 576, 9},
                    S{GgmlType::F16, 65, 576, 2}, S{GgmlType::Q4_0, 31, 96, 5},  // 96: odd block count
                    S{GgmlType::Q5_1, 31, 96, 2}, S{GgmlType::Q4_K, 33, 512, 5}}) {
    Case c = make_case(T(s.t), s.rows, s.cols, 7);
    const std::vector<float> x = random_normal(s.n * s.cols, 8);
    std::vector<float> y(s.n * s.rows), yr(s.n * s.rows);
    matmul(c.w, x.data(), y.data(), s.n);
    matmul_ref(c.w, x.data(), yr.data(), s.n);
    for (int64_t t = 0; t < s.n; ++t)
      for (int64_t r = 0; r < s.rows; ++r) {
        const double tol = 1e-5 * sum_abs_products(c.deq.data() + r * s.cols, x.data() + t * s.cols, s.cols) + 1e-7;
        ASSERT_LE(std::fabs(y[t * s.rows + r] - yr[t * s.rows + r]), tol)
            << ggml_type_name(T(s.t)) << " " << s.rows << "x" << s.cols << " t " << t << " r " << r;
      }
  }
}

TEST(MatmulRows, RowBytesLargerThanRowIsRespected) {  // padded rows (row_bytes > packed size)
  Case c = make_case(T(GgmlType::Q4_1), 5, 64, 9);
  const size_t rb = c.w.row_bytes, padded = rb + 24;
  std::vector<uint8_t> buf(padded * 5, 0xAB);
  for (int r = 0; r < 5; ++r) std::memcpy(buf.data() + r * padded, c.data.data() + r * rb, rb);
  WeightView w = c.w;
  w.row_bytes = padded;
  w.data = buf.data();
  const std::vector<float> x = random_normal(64, 10);
  float y1[5], y2[5];
  matmul(c.w, x.data(), y1, 1);
  matmul(w, x.data(), y2, 1);
  EXPECT_EQ(0, std::memcmp(y1, y2, sizeof y1));
}

TEST(MatmulRows, ZeroActivationsGiveZero) {
  for (GgmlType t : kAllTypes) {
    Case c = make_case(T(t), 3, 256, 12);
    std::vector<float> x(256, 0.0f), y(3, 1.0f);
    matmul(c.w, x.data(), y.data(), 1);
    for (float v : y) EXPECT_EQ(v, 0.0f) << ggml_type_name(T(t));
  }
}

TEST(MatmulRows, BadInputsThrow) {
  uint8_t buf[1024] = {};
  float x[64] = {}, y[4];
  EXPECT_THROW(matmul(WeightView{T(GgmlType::Q2_K), 1, 256, 84, buf}, x, y, 1), Error);
  EXPECT_THROW(matmul(WeightView{T(GgmlType::Q4_0), 1, 48, 36, buf}, x, y, 1), Error);  // 48 % 32
  EXPECT_THROW(matmul(WeightView{T(GgmlType::Q4_0), 1, 64, 30, buf}, x, y, 1), Error);  // row too short
  EXPECT_NO_THROW(matmul(WeightView{T(GgmlType::Q4_0), 1, 64, 36, buf}, x, y, 0));
}

// The dispatched and scalar activation quantizers must produce identical blocks (so matmul and
// matmul_ref differ only in f32 summation order), including ties and all-zero blocks.
TEST_P(MatmulShapes, ActQuantMatchesScalarBitwise) {
  const IsaScope path(GetParam());
  using detail::ActKind;
  std::vector<float> x = random_normal(1024, 21, 3.0f);
  for (int j = 0; j < 32; ++j) x[j] = 0.0f;              // zero block
  for (int j = 32; j < 64; ++j) x[j] = (j - 48) * 0.5f;  // exact .5 ties: x*127/amax
  for (ActKind k : {ActKind::Q8_0, ActKind::Q8_1, ActKind::Q8_K}) {
    const size_t nb = detail::act_row_bytes(k, 1024);
    std::vector<uint8_t> a(nb), b(nb);
    detail::quantize_act_row(k, x.data(), a.data(), 1024, true);
    detail::quantize_act_row(k, x.data(), b.data(), 1024, false);
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), nb)) << (int)k;
  }
  // Q8_0 block semantics: d = fp16(amax/127), q = round(x*127/amax), Q8_1 s = fp16(d*sum q)
  std::vector<uint8_t> q(detail::act_row_bytes(ActKind::Q8_1, 1024));
  detail::quantize_act_row(ActKind::Q8_1, x.data(), q.data(), 1024, true);
  const auto* blk = reinterpret_cast<const detail::ActQ8_1*>(q.data());
  EXPECT_EQ(blk[0].d, 0.0f);
  EXPECT_EQ(blk[1].d, f16_round(8.0f / 127.0f));
  EXPECT_EQ(blk[1].qs[0], -127);
  EXPECT_EQ(blk[1].qs[31], (int)std::nearbyint(7.5f * 127.0f / 8.0f));
  int sum = 0;
  for (int j = 0; j < 32; ++j) sum += blk[1].qs[j];
  EXPECT_EQ(blk[1].s, f16_round(8.0f / 127.0f * sum));
}

TEST(KernelPath, NamesParseAndUnknownIsRefused) {
  EXPECT_EQ(isa_from_name("scalar"), Isa::scalar);
  for (Isa i : supported_isas()) EXPECT_EQ(isa_from_name(isa_name(i)), i);
  EXPECT_THROW(isa_from_name("avx9"), Error);
  EXPECT_THROW(isa_from_name(""), Error);
  for (Isa i : kAllIsas) {
    if (!isa_supported(i)) {
      EXPECT_THROW(isa_from_name(isa_name(i)), Error) << isa_name(i);
    }
  }
  EXPECT_EQ(supported_isas().front(), Isa::scalar);
  const IsaScope path(Isa::scalar);
  EXPECT_EQ(active_isa(), Isa::scalar);
}

// Every vector path has its own F32 / F16 / BF16 / Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 / Q4_K / Q6_K kernels (not the references
// under another name), and the paths a CPU cannot run are named as skipped.
TEST(KernelPath, VectorPathsHaveTheirOwnKernels) {
  detail::KernelSet ref{};
  detail::fill_q8_kernels(Isa::scalar, ref);
  detail::fill_k_kernels(Isa::scalar, ref);
  detail::fill_float_kernels(Isa::scalar, ref);
  std::string skipped;
  for (Isa i : kAllIsas) {
    if (i == Isa::scalar) continue;
    if (!isa_supported(i)) {
      skipped += std::string(" ") + isa_name(i);
      continue;
    }
    const IsaScope path(i);
    detail::KernelSet ks{};
    detail::fill_q8_kernels(i, ks);
    detail::fill_k_kernels(i, ks);
    detail::fill_float_kernels(i, ks);
    EXPECT_NE(ks.f32, ref.f32) << isa_name(i);
    EXPECT_NE(ks.f16, ref.f16) << isa_name(i);
    EXPECT_NE(ks.bf16, ref.bf16) << isa_name(i);
    EXPECT_NE(ks.q4_k, ref.q4_k) << isa_name(i);
    EXPECT_NE(ks.q6_k, ref.q6_k) << isa_name(i);
    EXPECT_NE(ks.q4_0, ref.q4_0) << isa_name(i);
    EXPECT_NE(ks.q5_0, ref.q5_0) << isa_name(i);
    EXPECT_NE(ks.q5_1, ref.q5_1) << isa_name(i);
    EXPECT_NE(ks.q4_1, ref.q4_1) << isa_name(i);
    EXPECT_NE(ks.q8_0, ref.q8_0) << isa_name(i);
  }
  if (!skipped.empty()) std::printf("paths not on this CPU or build:%s\n", skipped.c_str());
}
