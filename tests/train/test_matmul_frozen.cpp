// matmul_backward_x: dx = dy W for an f32 weight (central finite differences of x W^T in double)
// and for a Q8_0 weight (against the dequantized matrix in double).
#include <gtest/gtest.h>

#include <cstring>

#include "fd.h"
#include "io/ggml_type.h"
#include "train/matmul_frozen.h"
#include "util/fp16.h"

using namespace h1bkv;

TEST(TrainMatmul, BackwardOfF32WeightMatchesFiniteDifferences) {
  const int rows = 40, cols = 32, n = 5;  // rows > kRowChunk: two chunks
  auto wd = randn_d(rows * cols, 1);
  std::vector<float> w(wd.begin(), wd.end());
  WeightView W{(uint32_t)GgmlType::F32, rows, cols, cols * sizeof(float), reinterpret_cast<const uint8_t*>(w.data())};
  auto x = randn_d(n * cols, 2), c = randn_d(n * rows, 3);
  auto loss = [&] {  // c . (x W^T) in double
    double s = 0;
    for (int t = 0; t < n; ++t)
      for (int r = 0; r < rows; ++r)
        for (int j = 0; j < cols; ++j) s += c[t * rows + r] * x[t * cols + j] * w[r * cols + j];
    return s;
  };
  std::vector<float> cf(c.begin(), c.end()), dxf(n * cols, 0.5f);  // backward accumulates
  train::matmul_backward_x(W, cf.data(), dxf.data(), n);
  std::vector<double> dx(dxf.begin(), dxf.end());
  for (auto& e : dx) e -= 0.5;
  EXPECT_LT(fd_rel_error(loss, x.data(), dx.data(), dx.size()), 1e-6);  // float accumulation
}

TEST(TrainMatmul, BackwardOfQ8_0WeightUsesTheDequantizedRows) {
  const int rows = 3, cols = 64, n = 2;
  std::vector<uint8_t> blocks(rows * 2 * 34);
  std::vector<double> wd(rows * cols);
  for (int r = 0; r < rows; ++r)
    for (int bl = 0; bl < 2; ++bl) {
      uint8_t* blk = blocks.data() + (r * 2 + bl) * 34;
      const float d = 0.01f * (1 + r + bl);
      const uint16_t dh = f32_to_fp16(d);
      std::memcpy(blk, &dh, 2);
      for (int i = 0; i < 32; ++i) {
        const int8_t qv = (int8_t)((r * 37 + bl * 11 + i * 5) % 255 - 127);
        blk[2 + i] = (uint8_t)qv;
        wd[r * cols + bl * 32 + i] = (double)fp16_to_f32(dh) * qv;
      }
    }
  WeightView W{(uint32_t)GgmlType::Q8_0, rows, cols, 68, blocks.data()};
  std::vector<float> dy{1.f, -2.f, 0.5f, 0.25f, 3.f, -1.f}, dx(n * cols, 0.f);
  train::matmul_backward_x(W, dy.data(), dx.data(), n);
  for (int t = 0; t < n; ++t)
    for (int j = 0; j < cols; ++j) {
      double want = 0;
      for (int r = 0; r < rows; ++r) want += dy[t * rows + r] * wd[r * cols + j];
      EXPECT_NEAR(dx[t * cols + j], want, 1e-5 * (1 + std::fabs(want)));
    }
}
